//! A response body, read off its connection as the caller asks for it, and
//! the connection handed back to the pool at its end.
//!
//! The body is decoded by the framing its head announced: a known length,
//! chunks (RFC 9112 section 7.1; extensions skipped, trailers read and
//! dropped), or everything until the backend closes. Data frames are
//! slices of the read buffer, not copies. Depends on [`crate::conn`] (the
//! socket and its buffer), [`crate::pool`] (where the connection goes
//! back) and [`crate::head`] (the framing).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;

use crate::conn::{Conn, READ_SIZE};
use crate::head::Framing;
use crate::pool::GiveBack;
use crate::BoxError;

/// Longest chunk-size line (with extensions) or trailer section accepted.
pub(crate) const MAX_LINE_BYTES: usize = 4 * 1024;
pub(crate) const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Largest read for a long body; more per syscall, bounded memory.
const MAX_READ_SIZE: usize = 64 * 1024;

/// A response body, streamed as [`Stream`] of data frames. Reading it to
/// the end puts its connection back in the pool (when the answer allowed
/// keep-alive and nothing unasked followed it); dropping it half-way
/// closes the connection. A body that breaks (cut short, badly chunked)
/// yields one error and then ends.
pub struct Body {
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

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("decoder", &self.decoder)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoder {
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
#[derive(Debug)]
pub(crate) enum Step {
    Data(Bytes),
    NeedMore,
    Done,
}

impl Body {
    pub(crate) fn new(conn: Conn, framing: Framing, keep_alive: bool, giveback: GiveBack) -> Body {
        let decoder = Decoder::for_framing(framing);
        let mut body = Body {
            conn: Some(conn),
            first: None,
            decoder,
            keep_alive,
            giveback,
        };
        // A response without a body (204, 304, HEAD) may never be polled.
        if decoder == Decoder::Done {
            body.finish();
        }
        body
    }

    /// Decodes what arrived with the head, without reading more: a body
    /// whose first bytes are already broken makes the whole answer invalid
    /// while nothing of it has been passed on, so the caller can still
    /// treat it as a failed exchange rather than a response cut short.
    pub(crate) fn check_buffered(&mut self) -> Result<(), &'static str> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if conn.buf.is_empty() {
            return Ok(());
        }
        match decode(&mut self.decoder, &mut conn.buf) {
            Err(e) => {
                self.conn = None;
                Err(e)
            }
            Ok(Step::Data(data)) => {
                self.first = Some(data);
                if self.decoder == Decoder::Done {
                    self.finish();
                }
                Ok(())
            }
            Ok(Step::Done) => {
                self.finish();
                Ok(())
            }
            Ok(Step::NeedMore) => Ok(()),
        }
    }

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
            match ready!(conn.poll_read(cx, want)) {
                Ok(0) => {
                    self.conn = None;
                    return match self.decoder.end_of_stream() {
                        Ok(()) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(e.into()))),
                    };
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

impl Stream for Body {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_data(cx)
    }
}

impl Decoder {
    pub(crate) fn for_framing(framing: Framing) -> Decoder {
        match framing {
            Framing::Empty | Framing::Length(0) => Decoder::Done,
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::ChunkSize,
            Framing::UntilClose => Decoder::UntilClose,
        }
    }

    /// The backend closed the connection with everything buffered decoded:
    /// the end of a body delimited by the close, any other body cut short.
    pub(crate) fn end_of_stream(&mut self) -> Result<(), &'static str> {
        match *self {
            Decoder::UntilClose | Decoder::Done => {
                *self = Decoder::Done;
                Ok(())
            }
            _ => Err("backend closed the connection before the end of the body"),
        }
    }
}

/// One step of body decoding over what is buffered.
pub(crate) fn decode(decoder: &mut Decoder, buf: &mut BytesMut) -> Result<Step, &'static str> {
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

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
