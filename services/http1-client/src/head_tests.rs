//! Properties of the response-head parser over generated input. The
//! framing rules, answer by answer, are rows of the response table.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::testing::proptest_config;

/// A header line that parses back to itself: a lowercase token name (not
/// `Content-Length`, `Transfer-Encoding` or `Connection`, which change how
/// the answer is read; the table covers those) and a value without
/// surrounding whitespace, which HTTP strips.
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

/// The fields in the order a `HeaderMap` gives them back: lines of one
/// name together, names in first-seen order.
fn grouped(fields: &[(String, String)]) -> Vec<(String, String)> {
    let mut names: Vec<&String> = Vec::new();
    for (name, _) in fields {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
        .iter()
        .flat_map(|name| fields.iter().filter(move |(n, _)| n == *name).cloned())
        .collect()
}

proptest! {
    #![proptest_config(proptest_config(500))]

    /// Whatever a backend sends, parsing answers (a head, more to read,
    /// or an error) and never panics.
    #[test]
    fn proptest_arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
        head_request in any::<bool>(),
    ) {
        let method = if head_request { Method::HEAD } else { Method::GET };
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = parse_buffered(&mut buf, &method);
    }

    /// Bytes that start as a head does and go wrong anywhere after: still
    /// no panic, and a refusal is always `Invalid`.
    #[test]
    fn proptest_mangled_heads_never_panic(
        fields in prop::collection::vec(field(), 0..8),
        at in any::<prop::sample::Index>(),
        junk in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let head = head_bytes(200, &fields, 5);
        let at = at.index(head.len());
        let mut bytes = head[..at].to_vec();
        bytes.extend_from_slice(&junk);
        let mut buf = BytesMut::from(&bytes[..]);
        match parse_buffered(&mut buf, &Method::GET) {
            Ok(_) | Err(Error::Invalid(_)) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    /// A well-formed head gives back its status and every field in order,
    /// consumes exactly the head, and any strict prefix of it is "read
    /// more", never an error.
    #[test]
    fn proptest_well_formed_heads_parse_back(
        status in 200u16..600,
        fields in prop::collection::vec(field(), 0..40),
        length in 0u64..10_000_000_000,
        rest in prop::collection::vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(),
    ) {
        let head = head_bytes(status, &fields, length);
        let prefix = &head[..cut.index(head.len())];
        let mut partial = BytesMut::from(prefix);
        prop_assert!(matches!(parse_buffered(&mut partial, &Method::GET), Ok(None)));
        prop_assert_eq!(&partial[..], prefix);

        let mut buf = BytesMut::from(&head[..]);
        buf.extend_from_slice(&rest);
        let parsed = parse_buffered(&mut buf, &Method::GET);
        let Ok(Some(parsed)) = parsed else {
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
        prop_assert_eq!(got, grouped(&fields));
        prop_assert_eq!(&buf[..], &rest[..]);
    }

    /// Any number of 1xx answers before the final one, in one buffer, are
    /// all consumed and the final one is read.
    #[test]
    fn proptest_informational_answers_are_skipped(
        codes in prop::collection::vec(prop_oneof![Just(100u16), 102u16..200], 0..6),
        fields in prop::collection::vec(field(), 0..4),
    ) {
        let mut wire = Vec::new();
        for code in &codes {
            wire.extend_from_slice(&head_bytes(*code, &fields, 0));
        }
        wire.extend_from_slice(&head_bytes(201, &[], 2));
        let mut buf = BytesMut::from(&wire[..]);
        let head = parse_buffered(&mut buf, &Method::GET).unwrap().unwrap();
        prop_assert_eq!(head.status.as_u16(), 201);
        prop_assert!(buf.is_empty());
    }
}
