//! The request as written on a connection: its head, with `Host` and
//! framing headers of our own, and a streamed body's framing. Depends on
//! [`crate::head`] (the framing it writes), `http` and tokio's write traits.
//!
//! The caller's `Content-Length` and `Transfer-Encoding` are never copied:
//! the framing is written from the body actually sent (RFC 9112 section 6),
//! so a length that does not match what goes out cannot reach a backend.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::head::Framing;
use crate::{BodyStream, Error};

/// What goes into a request head. Borrowed, so sending the same request
/// again (a retry on another backend) copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// Sent as it is.
    pub method: &'a Method,
    /// Origin-form target (`/path?query`), or `*`; written as it is.
    pub target: &'a str,
    /// The `Host` sent: the backend's, not the one in `headers`.
    pub host: &'a HeaderValue,
    /// Sent in order, except `Host`, `Content-Length`,
    /// `Transfer-Encoding`, and any name that `extra` sets. A
    /// `Content-Length` here still counts: it is the declared length a
    /// streamed body is held to, and an empty body is sent with
    /// `content-length: 0` when one was declared.
    pub headers: &'a HeaderMap,
    /// The caller's own lines (a proxy's `X-Forwarded-For`, a request id),
    /// written after `headers`; each name here replaces that name's lines
    /// in `headers`. Kept apart so the usual request needs no insertion
    /// into `headers` (each costs about as much as parsing a header line).
    /// Framing headers here are skipped too.
    pub extra: &'a [(HeaderName, HeaderValue)],
}

/// What is sent as the request body.
pub enum RequestBody {
    /// No body.
    Empty,
    /// A body held in full: sent with its length, and cloned rather than
    /// taken, so the request can be sent again.
    Full(Bytes),
    /// A body streamed through once: with the `Content-Length` in the
    /// head's `headers` when there is one (and then exactly that many bytes,
    /// or the exchange fails with [`Error::RequestBody`]), else chunked.
    Stream(BodyStream),
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestBody::Empty => f.write_str("Empty"),
            RequestBody::Full(bytes) => f.debug_tuple("Full").field(&bytes.len()).finish(),
            RequestBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// The head, ending with its blank line, framed as `framing` says.
/// `Framing::Empty` writes no framing header unless the caller declared a
/// length (kept as `0`: some servers want one on a POST), and `UntilClose`
/// is not a request framing.
pub(crate) fn encode_head(request: &RequestHead<'_>, framing: Framing) -> Result<BytesMut, Error> {
    let mut head =
        BytesMut::with_capacity(256 + (request.headers.len() + request.extra.len()) * 48);
    head.extend_from_slice(request.method.as_str().as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(request.target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    head.extend_from_slice(request.host.as_bytes());
    head.extend_from_slice(b"\r\n");
    let replaced = |name: &HeaderName| request.extra.iter().any(|(extra, _)| extra == name);
    let headers = request
        .headers
        .iter()
        .filter(|(name, _)| *name != header::HOST && !replaced(name))
        .chain(request.extra.iter().map(|(name, value)| (name, value)))
        // Framing is written below, for the body actually sent.
        .filter(|(name, _)| *name != header::CONTENT_LENGTH && *name != header::TRANSFER_ENCODING);
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Empty if request.headers.contains_key(header::CONTENT_LENGTH) => {
            head.extend_from_slice(b"content-length: 0\r\n")
        }
        Framing::Empty => {}
        Framing::Length(n) => head.extend_from_slice(format!("content-length: {n}\r\n").as_bytes()),
        Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::UntilClose => {
            return Err(Error::RequestBody(
                "a request body cannot be delimited by closing".into(),
            ))
        }
    }
    head.extend_from_slice(b"\r\n");
    Ok(head)
}

/// Writes a streamed body: as it comes when its length was declared (and
/// then exactly that many bytes), else in chunks.
pub(crate) async fn write_stream<W: AsyncWrite + Unpin>(
    io: &mut W,
    stream: &mut BodyStream,
    framing: Framing,
) -> Result<(), Error> {
    let declared = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let mut sent: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes = chunk.map_err(|e| Error::RequestBody(e.to_string()))?;
        if chunk.is_empty() {
            continue;
        }
        sent += chunk.len() as u64;
        match declared {
            Some(n) if sent > n => {
                return Err(Error::RequestBody(format!(
                    "longer than its content-length of {n} bytes"
                )))
            }
            Some(_) => io.write_all(&chunk).await?,
            None => {
                let mut framed = BytesMut::with_capacity(chunk.len() + 20);
                framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                io.write_all(&framed).await?;
            }
        }
    }
    match declared {
        Some(n) if sent != n => Err(Error::RequestBody(format!(
            "ended after {sent} of its {n} declared bytes"
        ))),
        Some(_) => Ok(()),
        None => Ok(io.write_all(b"0\r\n\r\n").await?),
    }
}
