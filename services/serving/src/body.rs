//! Reading request bodies into memory with a hard size limit, and the one
//! body framing a message may be passed on with.
//!
//! warp's `content_length_limit` needs a `Content-Length` header and refuses
//! chunked uploads with 411; this counts bytes as they arrive instead, so
//! both framings work and neither can exceed the limit.
//!
//! [`single_chunked`] is the rule both directions of the proxy keep for
//! `Transfer-Encoding`: bodies are re-framed on the way through, so any
//! coding but `chunked` would be lost, and the peer would get its coded
//! bytes labelled as plain ones.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
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

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More than the limit arrived (or was announced).
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed mid-body.
    #[error("could not read the request body: {0}")]
    Read(String),
}

/// Collects `body`, failing as soon as more than `limit` bytes arrive.
pub async fn read_limited<S, B, E>(body: S, limit: usize) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, E>>,
    B: Buf,
    E: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if collected.len() + chunk.remaining() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            collected.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(collected.freeze())
}

/// A warp filter extracting the body, limited to `limit` bytes. A
/// `Content-Length` above the limit is refused before anything is read.
pub fn limited(
    limit: usize,
) -> impl warp::Filter<Extract = (Result<Bytes, BodyError>,), Error = warp::Rejection> + Clone {
    use warp::Filter;
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .then(move |length: Option<u64>, body| async move {
            if length.is_some_and(|l| l > limit as u64) {
                return Err(BodyError::TooLarge(limit));
            }
            read_limited(body, limit).await
        })
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
