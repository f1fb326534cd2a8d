//! One plain-TCP connection to a backend, spoken on by the request that
//! holds it: the request's own task writes the request and reads the
//! answer's head. Depends on [`crate::head`] (parsing) and
//! [`crate::request`] (encoding), and on tokio for the socket.

use std::io;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use http::header;
use http::Method;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::head::{self, Framing, Head};
use crate::request::{self, RequestBody, RequestHead};
use crate::Error;

/// Bytes asked of the socket per read. A short read tells tokio the socket
/// is drained, so waiting for the next answer costs no extra syscall.
pub(crate) const READ_SIZE: usize = 8 * 1024;

/// Request bodies up to this size go out in the same write as the head.
const COALESCE_BODY_BYTES: usize = 8 * 1024;

/// One plain-TCP connection to a backend.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed. Empty (no allocation) while idle.
    pub(crate) buf: BytesMut,
}

impl Conn {
    /// Heads and bodies are written whole, so Nagle's algorithm would only
    /// hold back the second write of a large body.
    pub fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
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
    pub(crate) fn poll_read(
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
    ) -> Result<Head, Error> {
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
                let framing = match request.headers.get(header::CONTENT_LENGTH) {
                    Some(value) => Framing::Length(
                        head::parse_content_length(std::iter::once(value))
                            .ok_or_else(|| Error::RequestBody("invalid content-length".into()))?,
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
                        Err(Error::Io(e)) => answer.await.map(not_reused).map_err(|_| Error::Io(e)),
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
) -> Result<Head, Error> {
    loop {
        if !buf.is_empty() {
            *received = true;
            if let Some(head) = head::parse_buffered(buf, method)? {
                return Ok(head);
            }
        }
        buf.reserve(READ_SIZE);
        if io.read_buf(buf).await? == 0 {
            return Err(Error::Closed);
        }
    }
}
