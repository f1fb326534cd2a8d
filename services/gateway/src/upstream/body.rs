//! A backend's response body, read off its connection as the client's side
//! asks for it, and the connection handed back to the pool at its end.
//!
//! The body is decoded by the framing its head announced: a known length,
//! chunks (RFC 9112 section 7.1; extensions skipped, trailers read and
//! dropped, as they were never forwarded), or everything until the backend
//! closes. Data frames are slices of the read buffer, not copies.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use http_body::Body;

use super::h1::{Conn, Framing, READ_SIZE};
use super::pool::GiveBack;
use super::BoxError;

/// Longest chunk-size line (with extensions) or trailer section accepted.
const MAX_LINE_BYTES: usize = 4 * 1024;
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Largest read for a long body; more per syscall, bounded memory.
const MAX_READ_SIZE: usize = 64 * 1024;

/// A backend's response body, streamed to the client. Reading it to the end
/// puts its connection back in the pool; dropping it half-way closes it.
pub struct ResponseBody {
    inner: Inner,
}

enum Inner {
    /// A plain-HTTP backend, read here.
    Plain(Plain),
    /// An `https` backend, through reqwest.
    Tls(reqwest::Body),
}

struct Plain {
    /// `None` once the body is finished (or failed) and the connection is
    /// gone back to the pool (or closed).
    conn: Option<Conn>,
    /// Data decoded from what arrived with the head (see `check_buffered`),
    /// handed out first.
    first: Option<Bytes>,
    decoder: Decoder,
    /// Whether the connection can carry another request after this body.
    keep_alive: bool,
    giveback: GiveBack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    /// Bytes still to come.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Bytes left in the current chunk.
    ChunkData(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// Reading trailer lines after the last chunk; bytes read so far.
    Trailers(usize),
    /// Until the backend closes.
    UntilClose,
    Done,
}

/// What one decoding step produced.
enum Step {
    Data(Bytes),
    NeedMore,
    Done,
}

impl ResponseBody {
    pub(super) fn plain(
        conn: Conn,
        framing: Framing,
        keep_alive: bool,
        giveback: GiveBack,
    ) -> ResponseBody {
        let decoder = match framing {
            Framing::Empty | Framing::Length(0) => Decoder::Done,
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::ChunkSize,
            Framing::UntilClose => Decoder::UntilClose,
        };
        let mut plain = Plain {
            conn: Some(conn),
            first: None,
            decoder,
            keep_alive,
            giveback,
        };
        // A response without a body (204, 304, HEAD) may never be polled.
        if decoder == Decoder::Done {
            plain.finish();
        }
        ResponseBody {
            inner: Inner::Plain(plain),
        }
    }

    /// Decodes what arrived with the head, without reading more: a body
    /// whose first bytes are already broken makes the whole answer invalid
    /// while nothing of it has reached the client, so it can still be a 502
    /// (and retried) rather than a response cut short.
    pub(super) fn check_buffered(&mut self) -> Result<(), BoxError> {
        let Inner::Plain(plain) = &mut self.inner else {
            return Ok(());
        };
        let Some(conn) = plain.conn.as_mut() else {
            return Ok(());
        };
        if conn.buf.is_empty() {
            return Ok(());
        }
        match decode(&mut plain.decoder, &mut conn.buf) {
            Err(e) => {
                plain.conn = None;
                Err(e.into())
            }
            Ok(Step::Data(data)) => {
                plain.first = Some(data);
                if plain.decoder == Decoder::Done {
                    plain.finish();
                }
                Ok(())
            }
            Ok(Step::Done) => {
                plain.finish();
                Ok(())
            }
            Ok(Step::NeedMore) => Ok(()),
        }
    }

    pub(super) fn tls(body: reqwest::Body) -> ResponseBody {
        ResponseBody {
            inner: Inner::Tls(body),
        }
    }
}

impl Plain {
    /// The body is complete: the connection goes back to the pool if it can
    /// carry another request and nothing unasked follows the body.
    fn finish(&mut self) {
        self.decoder = Decoder::Done;
        if let Some(mut conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                // Idle connections hold no buffer.
                conn.buf = BytesMut::new();
                self.giveback.release(conn);
            }
        }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match decode(&mut self.decoder, &mut conn.buf) {
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Ok(Step::Data(data)) => {
                    if self.decoder == Decoder::Done {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(Step::Done) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
            }
            let want = match self.decoder {
                Decoder::Length(n) | Decoder::ChunkData(n) => usize::try_from(n)
                    .unwrap_or(MAX_READ_SIZE)
                    .clamp(READ_SIZE, MAX_READ_SIZE),
                Decoder::UntilClose => MAX_READ_SIZE,
                _ => READ_SIZE,
            };
            let read = ready!(conn.poll_read(cx, want));
            match read {
                Ok(0) if self.decoder == Decoder::UntilClose => {
                    self.decoder = Decoder::Done;
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(
                        "backend closed the connection before the end of the body".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }
}

/// One step of body decoding over what is buffered.
fn decode(decoder: &mut Decoder, buf: &mut BytesMut) -> Result<Step, &'static str> {
    loop {
        match *decoder {
            Decoder::Done => return Ok(Step::Done),
            Decoder::Length(_) | Decoder::ChunkData(_) | Decoder::UntilClose if buf.is_empty() => {
                return Ok(Step::NeedMore)
            }
            Decoder::UntilClose => return Ok(Step::Data(buf.split().freeze())),
            Decoder::Length(n) => {
                let take = take_len(n, buf);
                *decoder = if n == take as u64 {
                    Decoder::Done
                } else {
                    Decoder::Length(n - take as u64)
                };
                return Ok(Step::Data(buf.split_to(take).freeze()));
            }
            Decoder::ChunkData(n) => {
                let take = take_len(n, buf);
                *decoder = if n == take as u64 {
                    Decoder::ChunkEnd
                } else {
                    Decoder::ChunkData(n - take as u64)
                };
                return Ok(Step::Data(buf.split_to(take).freeze()));
            }
            Decoder::ChunkSize => {
                let Some(line) = take_line(buf, MAX_LINE_BYTES, "chunk-size line too long")? else {
                    return Ok(Step::NeedMore);
                };
                let size = chunk_size(&line)?;
                *decoder = if size == 0 {
                    Decoder::Trailers(0)
                } else {
                    Decoder::ChunkData(size)
                };
            }
            Decoder::ChunkEnd => {
                if buf.len() < 2 {
                    return Ok(Step::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err("chunk data not followed by CRLF");
                }
                buf.advance(2);
                *decoder = Decoder::ChunkSize;
            }
            Decoder::Trailers(seen) => {
                const TOO_LONG: &str = "trailer section too long";
                let left = MAX_TRAILER_BYTES.saturating_sub(seen);
                let Some(line) = take_line(buf, left, TOO_LONG)? else {
                    return Ok(Step::NeedMore);
                };
                if line.is_empty() {
                    *decoder = Decoder::Done;
                    return Ok(Step::Done);
                }
                // The CRLF counts too, so `seen` may pass the limit here:
                // refused now, never carried into the next subtraction.
                let seen = seen + line.len() + 2;
                if seen > MAX_TRAILER_BYTES {
                    return Err(TOO_LONG);
                }
                *decoder = Decoder::Trailers(seen);
            }
        }
    }
}

fn take_len(n: u64, buf: &BytesMut) -> usize {
    usize::try_from(n).map_or(buf.len(), |n| n.min(buf.len()))
}

/// The next CRLF-terminated line, without its CRLF; `None` until it is all
/// buffered. Longer than `max` is the error `too_long`.
fn take_line(
    buf: &mut BytesMut,
    max: usize,
    too_long: &'static str,
) -> Result<Option<Bytes>, &'static str> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        // A CR at the end may be the start of the CRLF, not line content:
        // whether a line fits must not depend on where a read ended.
        let pending = buf.len() - usize::from(buf.ends_with(b"\r"));
        return if pending > max {
            Err(too_long)
        } else {
            Ok(None)
        };
    };
    if end > max {
        return Err(too_long);
    }
    let line = buf.split_to(end).freeze();
    buf.advance(2);
    Ok(Some(line))
}

/// The hex size at the start of a chunk-size line; extensions after it
/// (`;name=value`) are ignored.
fn chunk_size(line: &[u8]) -> Result<u64, &'static str> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err("invalid chunk size");
    }
    let rest = line[digits..].trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err("invalid chunk size");
    }
    let text = std::str::from_utf8(&line[..digits]).map_err(|_| "invalid chunk size")?;
    u64::from_str_radix(text, 16).map_err(|_| "invalid chunk size")
}

impl Stream for ResponseBody {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.get_mut().inner {
            Inner::Plain(plain) => plain.poll_data(cx),
            Inner::Tls(body) => loop {
                let frame = match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                    None => return Poll::Ready(None),
                    Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    Some(Ok(frame)) => frame,
                };
                // Trailers are not forwarded (HTTP/1 clients rarely ask).
                if let Ok(data) = frame.into_data() {
                    return Poll::Ready(Some(Ok(data)));
                }
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; the body, or the error.
    fn decode_all(
        start: Decoder,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, usize), &'static str> {
        let mut decoder = start;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match decode(&mut decoder, &mut buf)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::Done => return Ok((out, buf.len() + input.len() - fed)),
                Step::NeedMore => {
                    if fed == input.len() {
                        return Err("input ended");
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_boundaries() {
        let wire =
            b"5\r\nhello\r\n1;ext=\"x\"\r\n \r\n6 ; a=b\r\nworld!\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in [1, 2, 3, 7, 1000] {
            let (body, left) = decode_all(Decoder::ChunkSize, wire, step).unwrap();
            assert_eq!(body, b"hello world!", "step {step}");
            assert_eq!(left, 0);
        }
    }

    #[test]
    fn bytes_after_the_body_are_left_unread() {
        let (body, left) =
            decode_all(Decoder::ChunkSize, b"2\r\nok\r\n0\r\n\r\nEXTRA", 1000).unwrap();
        assert_eq!(body, b"ok");
        assert_eq!(left, 5);
        let (body, left) = decode_all(Decoder::Length(2), b"okEXTRA", 1000).unwrap();
        assert_eq!(body, b"ok");
        assert_eq!(left, 5);
    }

    #[test]
    fn broken_chunked_framing_is_an_error() {
        for wire in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5x\r\nhello\r\n0\r\n\r\n",
            b"1000000000000000\r\n",
        ] {
            assert!(
                decode_all(Decoder::ChunkSize, wire, 1000).is_err(),
                "{wire:?}"
            );
        }
        let long_line = vec![b'1'; 1]
            .into_iter()
            .chain(vec![b' '; 5000])
            .collect::<Vec<_>>();
        assert_eq!(
            decode_all(Decoder::ChunkSize, &long_line, 1000).unwrap_err(),
            "chunk-size line too long"
        );
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"x-t: 123456\r\n");
        }
        assert_eq!(
            decode_all(Decoder::ChunkSize, &trailers, 1000).unwrap_err(),
            "trailer section too long"
        );
    }

    #[test]
    fn trailer_lines_ending_at_the_limit_are_counted_with_their_crlf() {
        let section = |line_len: usize| {
            let mut wire = b"0\r\n".to_vec();
            wire.extend(std::iter::repeat_n(b'x', line_len));
            wire.extend_from_slice(b"\r\nx-t: 1\r\n\r\n");
            wire
        };
        for step in [1, 1000, 1 << 20] {
            // The line fits under the limit but its CRLF does not.
            assert_eq!(
                decode_all(Decoder::ChunkSize, &section(MAX_TRAILER_BYTES), step).unwrap_err(),
                "trailer section too long",
                "step {step}"
            );
            let mut exact = b"0\r\n".to_vec();
            exact.extend(std::iter::repeat_n(b'x', MAX_TRAILER_BYTES - 2));
            exact.extend_from_slice(b"\r\n\r\n");
            assert!(
                decode_all(Decoder::ChunkSize, &exact, step).is_ok(),
                "step {step}"
            );
        }
    }
}
