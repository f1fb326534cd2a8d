//! HTTP/1.1 on one upstream connection, spoken by the request that holds it.
//!
//! hyper's client gives every connection a task of its own and hands each
//! request to it over a channel; the answer comes back over another. That is
//! two task wake-ups per request and about 30 KB per pooled connection
//! (channel blocks, write and read buffers), which at 256 client
//! connections was most of the gateway's memory. Here the request's own
//! task writes the request and reads the answer on the socket, and an idle
//! connection in the pool is just its socket: buffers live only while a
//! request uses them.
//!
//! Parsing is httparse's (the parser hyper uses). This module runs the
//! exchange and reads the response head; `request` encodes the request and
//! `body` reads the response body. Message framing follows RFC 9112
//! section 6.

use std::io;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::request::{self, RequestHead};
use super::RequestBody;
use crate::headers::tokens;

/// Longest response head accepted, like hyper's default buffer limit for
/// heads; larger is a broken or hostile backend.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Most response headers accepted (hyper's client default is 100).
const MAX_HEADERS: usize = 128;

/// Bytes asked of the socket per read. A short read tells tokio the socket
/// is drained, so waiting for the next answer costs no extra syscall.
pub(super) const READ_SIZE: usize = 8 * 1024;

/// Request bodies up to this size go out in the same write as the head.
const COALESCE_BODY_BYTES: usize = 8 * 1024;

/// Why an exchange on a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// The socket failed or the backend closed it.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The backend closed the connection before a whole response head.
    #[error("backend closed the connection before a complete response head")]
    Closed,
    /// The backend's answer is not valid HTTP/1.1.
    #[error("invalid response from backend: {0}")]
    Invalid(String),
    /// The client's body ended before its declared length, or broke.
    #[error("request body: {0}")]
    RequestBody(String),
}

/// How the response body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the backend closes the connection.
    UntilClose,
}

/// A response head as read from the backend.
#[derive(Debug)]
pub struct Head {
    /// Final status (1xx answers are skipped before this is built).
    pub status: StatusCode,
    /// As sent, minus a `Content-Length` that `Transfer-Encoding`
    /// overrode and with a repeated one stated once; values share the
    /// head's bytes.
    pub headers: HeaderMap,
    /// How to read the body that follows.
    pub framing: Framing,
    /// Whether the connection may carry another request once the body is
    /// read (HTTP/1.1 without `Connection: close`, or 1.0 with keep-alive).
    pub keep_alive: bool,
}

/// What the front of the read buffer holds.
#[derive(Debug)]
enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A 1xx answer, now consumed; the final one follows.
    Informational,
    Final(Head),
}

/// One plain-TCP connection to a backend.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed. Empty (no allocation) while idle.
    pub(super) buf: BytesMut,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Whether an idle connection can carry a request: the backend has
    /// neither closed it nor sent anything unasked. Costs no syscall unless
    /// the socket was marked readable.
    pub fn is_usable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readiness can be left over from the last answer; only a read
            // that would block says the connection is really quiet.
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Reads into the buffer; `Ok(0)` is end of stream.
    pub(super) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<io::Result<usize>> {
        self.buf.reserve(want);
        tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.stream), cx, &mut self.buf)
    }

    /// Sends the request and reads the final response head. `received` is
    /// set once any byte of an answer arrived, so the caller knows whether
    /// the backend may have acted on the request. A `Full` body is cloned,
    /// not taken, so the request can be sent again on another connection.
    pub async fn exchange(
        &mut self,
        request: &RequestHead<'_>,
        body: &mut RequestBody,
        received: &mut bool,
    ) -> Result<Head, H1Error> {
        let method = request.method;
        match body {
            RequestBody::Empty => {
                let head = request::encode_head(request, Framing::Empty)?;
                self.stream.write_all(&head).await?;
            }
            RequestBody::Full(bytes) => {
                let mut head = request::encode_head(request, Framing::Length(bytes.len() as u64))?;
                if bytes.len() <= COALESCE_BODY_BYTES {
                    head.extend_from_slice(bytes);
                    self.stream.write_all(&head).await?;
                } else {
                    self.stream.write_all(&head).await?;
                    self.stream.write_all(bytes).await?;
                }
            }
            RequestBody::Stream(stream) => {
                let framing = match request.headers.client.get(header::CONTENT_LENGTH) {
                    Some(value) => Framing::Length(
                        parse_content_length(std::iter::once(value))
                            .ok_or_else(|| H1Error::RequestBody("invalid content-length".into()))?,
                    ),
                    None => Framing::Chunked,
                };
                let head = request::encode_head(request, framing)?;
                self.stream.write_all(&head).await?;
                // The backend may answer before it has the whole body: a
                // refusal (413, 401, ...) is passed on at once with the rest
                // of the body unsent, and the connection is not reused. Any
                // other early answer (a backend that streams as it reads)
                // still gets the whole body first.
                let (mut reader, mut writer) = self.stream.split();
                let upload = request::write_stream(&mut writer, stream, framing);
                let answer = read_head(&mut reader, &mut self.buf, method, received);
                tokio::pin!(upload, answer);
                let not_reused = |head: Head| Head {
                    keep_alive: false,
                    ..head
                };
                return tokio::select! {
                    biased;
                    head = &mut answer => match head? {
                        head if head.status.as_u16() >= 400 => Ok(not_reused(head)),
                        head => match upload.await {
                            Ok(()) => Ok(head),
                            Err(_) => Ok(not_reused(head)),
                        },
                    },
                    sent = &mut upload => match sent {
                        Ok(()) => answer.await,
                        // Closed on us: an answer sent before the close is
                        // still readable, and says more than the error.
                        Err(H1Error::Io(e)) => answer.await.map(not_reused).map_err(|_| H1Error::Io(e)),
                        Err(e) => Err(e),
                    },
                };
            }
        }
        read_head(&mut self.stream, &mut self.buf, method, received).await
    }
}

/// Reads the final response head into `buf` (informational 1xx answers
/// are skipped).
async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    method: &Method,
    received: &mut bool,
) -> Result<Head, H1Error> {
    loop {
        if !buf.is_empty() {
            *received = true;
            match parse_head(buf, method)? {
                Parsed::Final(head) => return Ok(head),
                // The final answer may already be buffered behind it.
                Parsed::Informational => continue,
                Parsed::Partial => {}
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Err(H1Error::Invalid(format!(
                    "response head larger than {MAX_HEAD_BYTES} bytes"
                )));
            }
        }
        buf.reserve(READ_SIZE);
        if io.read_buf(buf).await? == 0 {
            return Err(H1Error::Closed);
        }
    }
}

/// Parses a complete head off the front of the buffer.
fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Parsed, H1Error> {
    // Uninitialised slots: zeroing all of them would cost more than parsing
    // a typical head.
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut slots,
    );
    let len = match parsed {
        // A head that arrived whole in one read is held to the same limit
        // as one still coming in.
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => {
            return Err(H1Error::Invalid(format!(
                "response head larger than {MAX_HEAD_BYTES} bytes"
            )))
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(e) => return Err(H1Error::Invalid(e.to_string())),
    };
    let code = response.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| H1Error::Invalid(format!("status code {code}")))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // The gateway strips `Upgrade`, so this was never asked for.
        return Err(H1Error::Invalid(
            "unrequested 101 Switching Protocols".into(),
        ));
    }
    if status.is_informational() {
        let _ = buf.split_to(len);
        return Ok(Parsed::Informational);
    }
    let http11 = response.version == Some(1);
    // Header values are slices of the head's bytes: no copy each.
    let base = buf.as_ptr() as usize;
    let mut fields = Vec::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        let name = crate::headers::interned_name(h.name.as_bytes())
            .map_err(|_| H1Error::Invalid(format!("header name {:?}", h.name)))?;
        let start = h.value.as_ptr() as usize - base;
        fields.push((name, start, start + h.value.len()));
    }
    let bytes: Bytes = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(fields.len());
    // Which framing headers are present, noted on the way: most answers
    // carry only Content-Length, and a map lookup costs about as much as
    // parsing a header line.
    let (mut connection, mut transfer_encoding, mut content_length) = (false, false, false);
    for (name, start, end) in fields {
        let value = HeaderValue::from_maybe_shared(bytes.slice(start..end))
            .map_err(|_| H1Error::Invalid(format!("value of header {name}")))?;
        connection |= name == header::CONNECTION;
        transfer_encoding |= name == header::TRANSFER_ENCODING;
        content_length |= name == header::CONTENT_LENGTH;
        headers.append(name, value);
    }

    let mut keep_alive = http11;
    if connection {
        for token in tokens(&headers, header::CONNECTION) {
            if token.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                keep_alive = true;
            }
        }
    }
    let framing = if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        // A 204 has no body, so no length to state either (RFC 9110 §8.6):
        // a backend's is not passed on. (A 304's or a HEAD answer's is the
        // length the GET would have had, and stays.)
        if status == StatusCode::NO_CONTENT && content_length {
            headers.remove(header::CONTENT_LENGTH);
        } else if content_length {
            one_content_length(&mut headers)?;
        }
        Framing::Empty
    } else if transfer_encoding {
        // Only chunked can be passed on (the body is re-framed for the
        // client). No client asked for another (the gateway sends no
        // `TE`), so a backend that applies one is broken.
        let chunked = serving::body::single_chunked(headers.get_all(header::TRANSFER_ENCODING))
            .map_err(|e| H1Error::Invalid(e.to_string()))?;
        // With both, Transfer-Encoding wins and the length is a lie the
        // client must not see; such a connection is not trusted again.
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            keep_alive = false;
        }
        if chunked {
            Framing::Chunked
        } else {
            keep_alive = false;
            Framing::UntilClose
        }
    } else if content_length {
        Framing::Length(one_content_length(&mut headers)?)
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    Ok(Parsed::Final(Head {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// The length the `Content-Length` fields state, which are left as one
/// field with one plain number. RFC 9110 lets a recipient take `5, 5` (or
/// two `5` lines) as 5, but hyper's server refuses to send a list or a
/// value it cannot parse and drops the connection instead, after the
/// answer was already booked as passed on.
fn one_content_length(headers: &mut HeaderMap) -> Result<u64, H1Error> {
    let values = headers.get_all(header::CONTENT_LENGTH);
    let length = parse_content_length(values.iter())
        .ok_or_else(|| H1Error::Invalid("invalid content-length".into()))?;
    let mut values = values.iter();
    let plain = |v: &HeaderValue| {
        let digits = v.as_bytes();
        digits.iter().all(u8::is_ascii_digit) && (digits.len() == 1 || digits[0] != b'0')
    };
    if !(values.next().is_some_and(plain) && values.next().is_none()) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(length)
}

/// A `Content-Length` made of digits only; repeated values (in one header
/// or several) must all agree (RFC 9110 section 8.6).
fn parse_content_length<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<u64> {
    let mut length = None;
    for value in values {
        for part in value.to_str().ok()?.split(',') {
            let part = part.trim();
            if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u64 = part.parse().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    length
}

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;
