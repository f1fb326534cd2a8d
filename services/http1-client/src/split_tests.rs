//! Every row of the response table (`tests/table/responses.rs`) read
//! through the head parser and body decoder with its bytes arriving in two
//! reads split at every offset, and one byte per read: the answer must not
//! depend on where the reads end. Driven here, without sockets, the way
//! `conn::read_head` and `Body` drive the same functions.

#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use http::Method;

use crate::body::{decode, Decoder, Step};
use crate::head::parse_buffered;
use crate::response_table::*;
use crate::Error;

/// What the client makes of `reads`, each one what a socket read returned;
/// after the last, the backend closes if the row says so.
fn read(case: &Case, reads: &[&[u8]]) -> Outcome {
    let method = Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut reads = reads.iter();
    let mut buf = BytesMut::new();
    let end = |close| {
        if close {
            Outcome::Closed
        } else {
            Outcome::Other("waits for more".into())
        }
    };
    let head = loop {
        if !buf.is_empty() {
            match parse_buffered(&mut buf, &method) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(Error::Invalid(e)) => return Outcome::Refused(e),
                Err(e) => return Outcome::Other(e.to_string()),
            }
        }
        match reads.next() {
            Some(read) => buf.extend_from_slice(read),
            None => return end(case.close),
        }
    };
    let mut decoder = Decoder::for_framing(head.framing);
    let mut body = Vec::new();
    let response = |body, reused| Outcome::Response {
        status: head.status.as_u16(),
        headers: head
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body,
        reused,
    };
    loop {
        match decode(&mut decoder, &mut buf) {
            Err(e) => return Outcome::Broken(e.into()),
            Ok(Step::Data(data)) => body.extend_from_slice(&data),
            Ok(Step::Done) => {
                // Bytes after the body, now or in a later read, keep the
                // connection out of the pool (a later read is what the
                // pool's check before reuse sees).
                let quiet = buf.is_empty() && reads.len() == 0;
                return response(body, head.keep_alive && quiet);
            }
            Ok(Step::NeedMore) => match reads.next() {
                Some(read) => buf.extend_from_slice(read),
                None if !case.close => return end(false),
                None => {
                    return match decoder.end_of_stream() {
                        Ok(()) => response(body, false),
                        Err(e) => Outcome::Broken(e.into()),
                    }
                }
            },
        }
    }
}

/// Where to split a wire in two: every offset, or for the few rows of
/// tens of KiB every 997th one and all near either end.
fn split_points(len: usize) -> Vec<usize> {
    if len <= 4096 {
        return (1..len).collect();
    }
    let mut points: Vec<usize> = (1..len).step_by(997).collect();
    points.extend(1..64);
    points.extend(len - 64..len);
    points
}

fn check_every_split(case: Case) {
    let wire = &case.wire[..];
    if !wire.is_empty() {
        check(&case, &read(&case, &[wire]));
    }
    for at in split_points(wire.len()) {
        let got = read(&case, &[&wire[..at], &wire[at..]]);
        check(&case, &got);
    }
    // One byte per read (a few hundred for the largest rows: the head
    // parser starts over on each read, as it does on a socket).
    let step = if wire.len() <= 4096 { 1 } else { 509 };
    let pieces: Vec<&[u8]> = wire.chunks(step).collect();
    check(&case, &read(&case, &pieces));
}

macro_rules! split_tests {
    ($($name:ident: $case:expr,)*) => {
        $(
            #[test]
            fn $name() {
                check_every_split($case);
            }
        )*
    };
}

response_table!(split_tests);
