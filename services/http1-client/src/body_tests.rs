//! The body decoder at its limits, and properties over generated bodies.
//! How each framing reads, answer by answer, is in the response table.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::testing::proptest_config;

/// Decodes `input` fed in the given pieces: the body and the bytes left
/// after it, or the error.
fn decode_pieces(start: Decoder, pieces: &[&[u8]]) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
    let mut decoder = start;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pieces = pieces.iter();
    loop {
        match decode(&mut decoder, &mut buf)? {
            Step::Data(d) => out.extend_from_slice(&d),
            Step::Done => {
                let mut left = buf.to_vec();
                pieces.for_each(|p| left.extend_from_slice(p));
                return Ok((out, left));
            }
            Step::NeedMore => match pieces.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return Err("input ended"),
            },
        }
    }
}

fn decode_in_steps(start: Decoder, input: &[u8], step: usize) -> Result<Vec<u8>, &'static str> {
    let pieces: Vec<&[u8]> = input.chunks(step).collect();
    decode_pieces(start, &pieces).map(|(body, _)| body)
}

/// Cuts `input` at the given points (taken modulo its length).
fn cut<'a>(input: &'a [u8], points: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = points.iter().map(|p| p.index(input.len() + 1)).collect();
    at.push(0);
    at.push(input.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

#[test]
fn trailer_lines_ending_at_the_limit_are_counted_with_their_crlf() {
    let section = |line_len: usize| {
        let mut wire = b"0\r\n".to_vec();
        wire.extend(std::iter::repeat_n(b'x', line_len));
        wire.extend_from_slice(b"\r\nx-t: 1\r\n\r\n");
        wire
    };
    for step in [13, 1000, 1 << 20] {
        // The line fits under the limit but its CRLF does not.
        assert_eq!(
            decode_in_steps(Decoder::ChunkSize, &section(MAX_TRAILER_BYTES), step).unwrap_err(),
            "trailer section too long",
            "step {step}"
        );
        let mut exact = b"0\r\n".to_vec();
        exact.extend(std::iter::repeat_n(b'x', MAX_TRAILER_BYTES - 2));
        exact.extend_from_slice(b"\r\n\r\n");
        assert!(
            decode_in_steps(Decoder::ChunkSize, &exact, step).is_ok(),
            "step {step}"
        );
    }
}

#[test]
fn a_size_line_fits_its_limit_wherever_a_read_ends() {
    // A line of exactly the limit, its CR alone at the end of a read.
    let mut line = b"1;".to_vec();
    line.extend(std::iter::repeat_n(b'e', MAX_LINE_BYTES - 2));
    let mut wire = line.clone();
    wire.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
    let crlf = line.len();
    for at in [crlf - 1, crlf, crlf + 1] {
        let got = decode_pieces(Decoder::ChunkSize, &[&wire[..at], &wire[at..]]);
        assert_eq!(got, Ok((b"x".to_vec(), Vec::new())), "split at {at}");
    }
    let mut over = b"1;e".to_vec();
    over.extend_from_slice(&wire[2..]);
    assert_eq!(
        decode_in_steps(Decoder::ChunkSize, &over, 1).unwrap_err(),
        "chunk-size line too long"
    );
}

fn any_decoder() -> impl Strategy<Value = Decoder> {
    prop_oneof![
        (0u64..u64::MAX).prop_map(Decoder::Length),
        Just(Decoder::ChunkSize),
        (1u64..u64::MAX).prop_map(Decoder::ChunkData),
        Just(Decoder::ChunkEnd),
        (0usize..MAX_TRAILER_BYTES + 8).prop_map(Decoder::Trailers),
        Just(Decoder::UntilClose),
    ]
}

/// The chunked encoding of `body` cut into chunks of the given sizes (the
/// rest in one last chunk), with optional extensions and trailers.
fn chunked(body: &[u8], sizes: &[usize], extension: bool, trailers: bool) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut rest = body;
    let mut sizes = sizes.iter();
    while !rest.is_empty() {
        let n = sizes
            .next()
            .map_or(rest.len(), |s| (*s).clamp(1, rest.len()));
        let ext = if extension { ";a=\"b c\"" } else { "" };
        wire.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
        wire.extend_from_slice(&rest[..n]);
        wire.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    wire.extend_from_slice(b"0\r\n");
    if trailers {
        wire.extend_from_slice(b"x-sum: 1\r\nx-more: 2\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    wire
}

proptest! {
    #![proptest_config(proptest_config(500))]

    /// Whatever follows a head, in whatever pieces, decoding answers (data,
    /// more to read, the end, or an error) and never panics or loops.
    #[test]
    fn proptest_arbitrary_bytes_never_panic(
        start in any_decoder(),
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let _ = decode_pieces(start, &cut(&bytes, &points));
    }

    /// Chunk-like input (digits, CRLFs, semicolons) reaches deeper into
    /// the decoder than uniform bytes do.
    #[test]
    fn proptest_chunk_like_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        const ALPHABET: &[u8] = b"\r\n;= 0123456789aAfFgx";
        let bytes: Vec<u8> = bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()]).collect();
        let _ = decode_pieces(Decoder::ChunkSize, &cut(&bytes, &points));
    }

    /// Any body, chunked at any sizes, with or without extensions and
    /// trailers, and read in any pieces, decodes to itself; what follows
    /// the last chunk is left unread.
    #[test]
    fn proptest_chunked_bodies_decode_to_themselves(
        body in prop::collection::vec(any::<u8>(), 0..4096),
        sizes in prop::collection::vec(1usize..600, 0..16),
        extension in any::<bool>(),
        trailers in any::<bool>(),
        after in prop::collection::vec(any::<u8>(), 0..16),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut wire = chunked(&body, &sizes, extension, trailers);
        wire.extend_from_slice(&after);
        let (got, left) = decode_pieces(Decoder::ChunkSize, &cut(&wire, &points)).unwrap();
        prop_assert_eq!(got, body);
        prop_assert_eq!(left, after);
    }

    /// A body of a stated length, read in any pieces, is exactly that
    /// many bytes; what follows is left unread.
    #[test]
    fn proptest_length_bodies_decode_to_themselves(
        body in prop::collection::vec(any::<u8>(), 1..4096),
        after in prop::collection::vec(any::<u8>(), 0..16),
        points in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut wire = body.clone();
        wire.extend_from_slice(&after);
        let start = Decoder::Length(body.len() as u64);
        let (got, left) = decode_pieces(start, &cut(&wire, &points)).unwrap();
        prop_assert_eq!(got, body);
        prop_assert_eq!(left, after);
    }

    /// A chunked body cut anywhere before its end is never complete.
    #[test]
    fn proptest_cut_chunked_bodies_are_never_complete(
        body in prop::collection::vec(any::<u8>(), 0..1024),
        sizes in prop::collection::vec(1usize..300, 0..8),
        at in any::<prop::sample::Index>(),
    ) {
        let wire = chunked(&body, &sizes, false, false);
        let at = at.index(wire.len());
        prop_assert!(decode_pieces(Decoder::ChunkSize, &[&wire[..at]]).is_err());
    }
}
