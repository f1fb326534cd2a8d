//! The client's request body on its way to a backend, and what the client
//! can do wrong with it.
//!
//! A body small enough to be sent again (`retry.max_buffered_body_bytes`
//! with a `Content-Length`) is read in full before the request takes a
//! place under `limits.max_in_flight`, within `limits.body_read_timeout`.
//! Anything larger, or chunked, is streamed through once while it arrives.
//! Either way every read is bounded: `limits.body_idle_timeout` between two
//! pieces and `limits.max_body_bytes` in all.
//!
//! When a body breaks, stalls or runs over, the fault is the client's: the
//! stream notes it in the shared [`Upload`] before the upstream client sees
//! the error, so the proxy can tell a client's broken upload from a
//! backend's broken connection and never charge the backend for it.
//!
//! Depends on `upstream` (the body types it sends), `config`, `outcome`,
//! `headers` and `idle`.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use http::header::{self, HeaderMap};
use http_body_util::BodyDataStream;
use hyper::body::Incoming;

use super::idle::IdleTimer;
use crate::config::LimitSettings;
use crate::headers::has_body;
use crate::outcome::ClientFault;
use crate::upstream::{self, BoxError};

/// How a streamed upload is going, shared by the stream (which writes it)
/// and the proxy (which reads it when an attempt fails or waits).
#[derive(Debug, Default)]
pub struct Upload {
    fault: OnceLock<ClientFault>,
    finished: OnceLock<Instant>,
}

impl Upload {
    /// The client's fault, if its body failed.
    pub fn fault(&self) -> Option<&ClientFault> {
        self.fault.get()
    }

    /// When the last byte of the body was handed on, once it was.
    pub fn finished_at(&self) -> Option<Instant> {
        self.finished.get().copied()
    }

    fn fail(&self, fault: ClientFault) -> BoxError {
        let error = fault.to_string().into();
        let _ = self.fault.set(fault);
        error
    }
}

/// The request body, as far as forwarding and retries are concerned.
pub enum ClientBody {
    /// Nothing to send.
    Empty,
    /// Read in full, so it can be sent again.
    Buffered(Bytes),
    /// Streamed through once; the request cannot be retried.
    Streaming {
        /// Taken by the first attempt.
        body: Option<ClientStream>,
        /// Its progress and fault, readable after it was taken.
        upload: Arc<Upload>,
    },
}

impl ClientBody {
    /// Reads a small body in full, or wraps a large one for streaming.
    /// Fails with the client's fault when a buffered read goes wrong or the
    /// announced length is over the limit.
    pub async fn read(
        headers: &HeaderMap,
        body: Incoming,
        limits: &LimitSettings,
        max_buffered: usize,
    ) -> Result<ClientBody, ClientFault> {
        if !has_body(headers) {
            return Ok(ClientBody::Empty);
        }
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let max = limits.max_body_bytes;
        if let Some(n) = length.filter(|&n| max != 0 && n > max) {
            tracing::debug!(length = n, "request body over limits.max_body_bytes");
            return Err(ClientFault::TooLarge(max));
        }
        let upload = Arc::new(Upload::default());
        let stream = ClientStream::new(body, limits, upload.clone());
        match length {
            Some(n) if n <= max_buffered as u64 => {
                let read = serving::body::read_limited(stream, max_buffered);
                match tokio::time::timeout(limits.body_read_timeout, read).await {
                    Ok(Ok(bytes)) => Ok(ClientBody::Buffered(bytes)),
                    Ok(Err(e)) => Err(upload
                        .fault()
                        .cloned()
                        .unwrap_or_else(|| ClientFault::Malformed(e.to_string()))),
                    Err(_) => Err(ClientFault::Stalled {
                        key: "limits.body_read_timeout",
                        after: limits.body_read_timeout,
                    }),
                }
            }
            _ => Ok(ClientBody::Streaming {
                body: Some(stream),
                upload,
            }),
        }
    }

    /// The body for the next attempt (a streamed one goes out only once).
    pub fn for_attempt(&mut self) -> upstream::RequestBody {
        match self {
            ClientBody::Empty => upstream::RequestBody::Empty,
            ClientBody::Buffered(bytes) => upstream::RequestBody::Full(bytes.clone()),
            ClientBody::Streaming { body, .. } => match body.take() {
                Some(stream) => upstream::RequestBody::Stream(Box::pin(stream)),
                None => upstream::RequestBody::Empty,
            },
        }
    }

    /// Whether the body can be sent again.
    pub fn replayable(&self) -> bool {
        !matches!(self, ClientBody::Streaming { .. })
    }

    /// The client's fault, once its streamed body failed.
    pub fn fault(&self) -> Option<&ClientFault> {
        match self {
            ClientBody::Streaming { upload, .. } => upload.fault(),
            _ => None,
        }
    }

    /// When the whole request had been handed on: `None` while a streamed
    /// body is still arriving. Empty and buffered bodies go out with the
    /// head, so `attempt_started` is the answer for them.
    pub fn sent_by(&self, attempt_started: Instant) -> Option<Instant> {
        match self {
            ClientBody::Streaming { upload, .. } => upload.finished_at(),
            _ => Some(attempt_started),
        }
    }
}

/// The client's body as data frames, with its limits enforced and its
/// faults noted in the shared [`Upload`].
pub struct ClientStream {
    inner: BodyDataStream<Incoming>,
    idle: IdleTimer,
    seen: u64,
    max: u64,
    upload: Arc<Upload>,
}

impl ClientStream {
    fn new(body: Incoming, limits: &LimitSettings, upload: Arc<Upload>) -> ClientStream {
        ClientStream {
            inner: BodyDataStream::new(body),
            idle: IdleTimer::new(limits.body_idle_timeout),
            seen: 0,
            max: limits.max_body_bytes,
            upload,
        }
    }
}

impl Stream for ClientStream {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.upload.fault().is_some() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(data))) => {
                this.seen += data.len() as u64;
                if this.max != 0 && this.seen > this.max {
                    return Poll::Ready(Some(Err(this
                        .upload
                        .fail(ClientFault::TooLarge(this.max)))));
                }
                this.idle.progress();
                Poll::Ready(Some(Ok(data)))
            }
            Poll::Ready(Some(Err(e))) => {
                let fault = if ended_early(&e) {
                    ClientFault::Abandoned
                } else {
                    ClientFault::Malformed(e.to_string())
                };
                Poll::Ready(Some(Err(this.upload.fail(fault))))
            }
            Poll::Ready(None) => {
                let _ = this.upload.finished.set(Instant::now());
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.idle.poll_expired(cx));
                let fault = ClientFault::Stalled {
                    key: "limits.body_idle_timeout",
                    after: this.idle.timeout(),
                };
                Poll::Ready(Some(Err(this.upload.fail(fault))))
            }
        }
    }
}

/// Whether hyper's body error means the client's connection ended before
/// the body did (rather than sending something malformed).
fn ended_early(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() || error.is_closed() || error.is_canceled() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            );
        }
        source = cause.source();
    }
    false
}
