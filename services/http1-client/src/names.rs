//! Response header names, reused per thread instead of parsed for every
//! field. Depends on `http` only.

use http::header::{HeaderName, InvalidHeaderName};

/// How many header names [`interned_name`] remembers per thread.
const NAMES_KEPT: usize = 32;

thread_local! {
    /// Header names parsed recently on this thread, each with the bytes it
    /// was parsed from (as sent, in the sender's case).
    static NAMES: std::cell::RefCell<Vec<(Box<[u8]>, HeaderName)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The header name `raw`, reusing the one parsed before on this thread from
/// the same bytes when there is one. Backends send the same few names in
/// every answer, and building a `HeaderName` from bytes (the standard-name
/// table, then validation and an allocation for any other name) cost about
/// 200 instructions per field; comparing the bytes with the ones seen
/// before costs a few length checks and one `memcmp`. At most
/// [`NAMES_KEPT`] are kept: a backend sending ever new names churns one
/// slot, and still gets correct names.
pub(crate) fn interned_name(raw: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    NAMES.with(|cell| {
        let Ok(mut names) = cell.try_borrow_mut() else {
            return HeaderName::from_bytes(raw);
        };
        if let Some((_, known)) = names.iter().find(|(bytes, _)| **bytes == *raw) {
            return Ok(known.clone());
        }
        let name = HeaderName::from_bytes(raw)?;
        if names.len() == NAMES_KEPT {
            names.pop();
        }
        names.push((raw.into(), name.clone()));
        Ok(name)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn interned_names_are_the_names_from_bytes_whatever_was_seen_before() {
        std::thread::spawn(|| {
            let mut raw: Vec<Vec<u8>> = ["Content-Type", "X-Served-By", "x-served-by", "DATE"]
                .iter()
                .map(|n| n.as_bytes().to_vec())
                .collect();
            // More names than are kept, then the first ones again.
            raw.extend((0..NAMES_KEPT + 5).map(|i| format!("X-Name-{i}").into_bytes()));
            raw.extend(raw.clone());
            for name in &raw {
                let ours = interned_name(name).unwrap();
                assert_eq!(ours, HeaderName::from_bytes(name).unwrap());
                assert_eq!(ours.as_str(), String::from_utf8_lossy(name).to_lowercase());
            }
            for bad in [&b""[..], b"x y", b"x:y", b"\xff", b"caf\xc3\xa9"] {
                assert!(interned_name(bad).is_err(), "{bad:?}");
            }
            assert!(NAMES.with(|n| n.borrow().len()) <= NAMES_KEPT);
        })
        .join()
        .unwrap();
    }
}
