//! Tests of the response-head parser and its helpers: unit cases and
//! properties over generated heads.

#![allow(clippy::unwrap_used)]
use super::*;

fn values(v: &[&'static str]) -> Vec<HeaderValue> {
    v.iter().map(|s| HeaderValue::from_static(s)).collect()
}

#[test]
fn content_length_must_be_digits_and_agree() {
    assert_eq!(parse_content_length(values(&["42"]).iter()), Some(42));
    assert_eq!(parse_content_length(values(&["7, 7"]).iter()), Some(7));
    assert_eq!(parse_content_length(values(&["7", "7"]).iter()), Some(7));
    assert_eq!(parse_content_length(values(&["7", "8"]).iter()), None);
    assert_eq!(parse_content_length(values(&["+7"]).iter()), None);
    assert_eq!(parse_content_length(values(&["-1"]).iter()), None);
    assert_eq!(parse_content_length(values(&[""]).iter()), None);
    assert_eq!(
        parse_content_length(values(&["99999999999999999999"]).iter()),
        None
    );
}

#[test]
fn a_head_over_the_limit_is_invalid_even_when_it_arrived_whole() {
    let big = format!(
        "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n",
        "a".repeat(MAX_HEAD_BYTES)
    );
    let mut buf = BytesMut::from(big.as_bytes());
    assert!(matches!(
        parse_head(&mut buf, &Method::GET),
        Err(H1Error::Invalid(e)) if e.contains("larger than")
    ));
    let fits = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    let mut buf = BytesMut::from(fits.as_bytes());
    assert!(matches!(
        parse_head(&mut buf, &Method::GET),
        Ok(Parsed::Final(_))
    ));
}

mod heads {
    use super::super::*;
    use proptest::prelude::*;

    /// A header line that parses back to itself: a lowercase token name
    /// (not `Content-Length`, `Transfer-Encoding` or `Connection`, which
    /// change how the answer is read; the scripted-backend tests cover
    /// those) and a value without surrounding whitespace, which HTTP
    /// strips.
    fn field() -> impl Strategy<Value = (String, String)> {
        (
            "[a-z][a-z0-9-]{0,20}",
            prop_oneof![Just(String::new()), "[!-~]([ -~]{0,30}[!-~])?"],
        )
            .prop_filter("framing and connection headers", |(name, _)| {
                !matches!(
                    name.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                )
            })
    }

    fn head_bytes(status: u16, fields: &[(String, String)], length: u64) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {status} Whatever\r\n");
        for (name, value) in fields {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("content-length: {length}\r\n\r\n"));
        head.into_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever a backend sends, parsing answers (a head, more to
        /// read, or an error) and never panics.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..1024),
            head_request in any::<bool>(),
        ) {
            let method = if head_request { Method::HEAD } else { Method::GET };
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = parse_head(&mut buf, &method);
        }

        /// A well-formed head gives back its status and every field in
        /// order, consumes exactly the head, and any strict prefix of
        /// it is "read more", never an error.
        #[test]
        fn well_formed_heads_parse_back(
            status in 200u16..600,
            fields in prop::collection::vec(field(), 0..40),
            length in 0u64..10_000_000_000,
            rest in prop::collection::vec(any::<u8>(), 0..64),
            cut in any::<prop::sample::Index>(),
        ) {
            let head = head_bytes(status, &fields, length);
            let prefix = &head[..cut.index(head.len())];
            let mut partial = BytesMut::from(prefix);
            prop_assert!(matches!(parse_head(&mut partial, &Method::GET), Ok(Parsed::Partial)));
            prop_assert_eq!(&partial[..], prefix);

            let mut buf = BytesMut::from(&head[..]);
            buf.extend_from_slice(&rest);
            let parsed = parse_head(&mut buf, &Method::GET);
            let Ok(Parsed::Final(parsed)) = parsed else {
                return Err(TestCaseError::fail(format!("not a final head: {parsed:?}")));
            };
            prop_assert_eq!(parsed.status.as_u16(), status);
            let framing = if status == 204 || status == 304 {
                Framing::Empty
            } else {
                Framing::Length(length)
            };
            prop_assert_eq!(parsed.framing, framing);
            prop_assert!(parsed.keep_alive);
            let got: Vec<(String, String)> = parsed
                .headers
                .iter()
                .filter(|(name, _)| **name != header::CONTENT_LENGTH)
                .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let mut want = fields.clone();
            // The map groups repeated names together, in first-seen order.
            let order: Vec<&String> = want.iter().map(|(n, _)| n).fold(Vec::new(), |mut seen, n| {
                if !seen.contains(&n) {
                    seen.push(n);
                }
                seen
            });
            let grouped: Vec<(String, String)> = order
                .iter()
                .flat_map(|name| want.iter().filter(move |(n, _)| n == *name).cloned())
                .collect();
            want = grouped;
            prop_assert_eq!(got, want);
            prop_assert_eq!(&buf[..], &rest[..]);
        }
    }
}
