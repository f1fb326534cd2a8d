//! The one body framing a message may be passed on with: bodies are
//! re-framed on the way through a proxy, so any `Transfer-Encoding` but a
//! single `chunked` would be lost, and the peer would get its coded bytes
//! labelled as plain ones. The client keeps this rule for answers; a server
//! in front of it (the gateway's) keeps the same rule for requests.
//!
//! Depends on nothing else in the crate.

use http::HeaderValue;

/// A `Transfer-Encoding` that is not a single `chunked` (RFC 9112 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodingError {
    /// A coding other than `chunked` (gzip, say), which re-framing the body
    /// would drop.
    #[error("Transfer-Encoding: {0:?} is not supported; only chunked is")]
    Unsupported(String),
    /// `chunked` more than once, which breaks the framing.
    #[error("Transfer-Encoding: chunked applied more than once")]
    ChunkedTwice,
}

/// Checks the `Transfer-Encoding` field lines of a message: `Ok(true)` for a
/// single `chunked`, `Ok(false)` for none at all, an error for anything else.
pub fn single_chunked<'a>(
    values: impl IntoIterator<Item = &'a HeaderValue>,
) -> Result<bool, CodingError> {
    let mut chunked = false;
    for value in values {
        let codings = value.as_bytes().split(|&b| b == b',');
        for coding in codings.map(<[u8]>::trim_ascii).filter(|c| !c.is_empty()) {
            if !coding.eq_ignore_ascii_case(b"chunked") {
                let coding = String::from_utf8_lossy(coding).into_owned();
                return Err(CodingError::Unsupported(coding));
            }
            if chunked {
                return Err(CodingError::ChunkedTwice);
            }
            chunked = true;
        }
    }
    Ok(chunked)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{single_chunked, CodingError};
    use http::HeaderValue;

    fn check(lines: &[&[u8]]) -> Result<bool, CodingError> {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|l| HeaderValue::from_bytes(l).unwrap())
            .collect();
        single_chunked(&values)
    }

    #[test]
    fn only_one_chunked_and_nothing_else_passes() {
        assert_eq!(check(&[]), Ok(false));
        assert_eq!(check(&[b""]), Ok(false));
        assert_eq!(check(&[b"chunked"]), Ok(true));
        assert_eq!(check(&[b" Chunked , "]), Ok(true));

        let gzip = Err(CodingError::Unsupported("gzip".into()));
        assert_eq!(check(&[b"gzip, chunked"]), gzip);
        assert_eq!(check(&[b"gzip", b"chunked"]), gzip);
        assert_eq!(check(&[b"chunked, gzip"]), gzip);
        assert_eq!(
            check(&[b"identity"]),
            Err(CodingError::Unsupported("identity".into()))
        );
        // Bytes that are not text are named, not skipped.
        assert_eq!(
            check(&[b"gz\xffip, chunked"]),
            Err(CodingError::Unsupported("gz\u{fffd}ip".into()))
        );
        assert_eq!(
            check(&[b"chunked, chunked"]),
            Err(CodingError::ChunkedTwice)
        );
        assert_eq!(
            check(&[b"chunked", b"chunked"]),
            Err(CodingError::ChunkedTwice)
        );
    }
}
