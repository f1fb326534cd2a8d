//! The client that carries proxied requests to backends.
//!
//! Plain-HTTP backends (the common case inside a cluster, and the one the
//! benchmark measures) are called over hyper's HTTP/1 client connections
//! with a keep-alive pool of our own, one per worker runtime. A profile of
//! the gateway under load put reqwest's per-request work (URL parsing with
//! IDNA, request building, connector and client clones) plus its pool's
//! bookkeeping at about 15% of the gateway's CPU; going to hyper directly
//! leaves only the HTTP/1 codec and one uncontended lock per request.
//! `https` backends still go through reqwest, which brings TLS (rustls).
//!
//! A connection goes back to the pool when its response body has been read
//! to the end; one whose body was abandoned half-way is closed instead,
//! since it cannot carry another request. Idle connections are dropped after
//! `upstream.pool_idle_timeout` (checked on checkout and by a sweeper), so
//! one the backend is about to close is never reused.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::UpstreamSettings;
use crate::registry::BaseUrl;

/// Errors boxed for the response body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed request body (the client's, read once).
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send + Sync>>;

/// Why an upstream call got no response head.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No TCP connection (refused, unreachable, DNS, connect timeout).
    #[error("connect to {authority}: {source}")]
    Connect {
        /// Where we tried to connect.
        authority: String,
        /// What the socket said.
        source: std::io::Error,
    },
    /// The connection broke or the backend's answer could not be parsed.
    #[error("{}", error_chain(.0))]
    Http(#[from] hyper::Error),
    /// An `https` backend's call failed (reqwest).
    #[error("{}", error_chain(.0))]
    Tls(#[from] reqwest::Error),
}

impl UpstreamError {
    /// Whether nothing reached the backend: safe to retry for any method.
    pub fn is_connect(&self) -> bool {
        match self {
            UpstreamError::Connect { .. } => true,
            UpstreamError::Http(_) => false,
            UpstreamError::Tls(e) => e.is_connect(),
        }
    }
}

/// An error with its causes, for one readable log line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What is sent upstream as the request body.
pub enum RequestBody {
    /// No body.
    Empty,
    /// A body read in full (so a retry can send it again).
    Full(Option<Bytes>),
    /// The client's body, streamed through once.
    Stream(BodyStream),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            RequestBody::Stream(stream) => stream
                .as_mut()
                .poll_next(cx)
                .map(|chunk| chunk.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Full(bytes) => bytes.is_none(),
            RequestBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            RequestBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// One worker's upstream client. Cheap to share; each worker runtime gets
/// its own so its connections are driven by the thread that uses them.
#[derive(Debug)]
pub struct Upstream {
    /// Idle keep-alive connections to plain-HTTP backends.
    pool: Arc<Pool>,
    /// For `https` backends only.
    tls: reqwest::Client,
    /// Longest wait for a TCP connection.
    connect_timeout: Duration,
}

#[derive(Debug)]
struct Pool {
    /// Idle connections per backend authority, most recently used last.
    idle: Mutex<HashMap<Arc<str>, Vec<Idle>>>,
    /// Cap per authority; connections beyond it are closed when released.
    max_idle_per_host: usize,
    /// Idle connections older than this are closed, not reused.
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

impl Upstream {
    /// A client for one worker. Spawns the idle sweeper on the current
    /// runtime; it ends when the client is dropped.
    pub fn new(settings: &UpstreamSettings, tls: reqwest::Client) -> Arc<Upstream> {
        let pool = Arc::new(Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle_per_host: settings.pool_max_idle_per_host,
            idle_timeout: settings.pool_idle_timeout,
        });
        tokio::spawn(sweep(Arc::downgrade(&pool), settings.pool_idle_timeout));
        Arc::new(Upstream {
            pool,
            tls,
            connect_timeout: settings.connect_timeout,
        })
    }

    /// Sends `request` (origin-form URI, all headers set except `Host`) to
    /// `base`, and returns the response head with its streaming body.
    pub async fn send(
        &self,
        base: &BaseUrl,
        mut request: Request<RequestBody>,
    ) -> Result<Response<ResponseBody>, UpstreamError> {
        if base.tls {
            return self.send_tls(base, request).await;
        }
        request
            .headers_mut()
            .insert(http::header::HOST, base.host.clone());
        loop {
            let (mut sender, reused) = match self.pool.take(&base.authority) {
                Some(sender) => (sender, true),
                None => (self.connect(&base.authority).await?, false),
            };
            if let Err(e) = sender.ready().await {
                if reused {
                    // Closed by the backend while idle; try the next one.
                    continue;
                }
                return Err(e.into());
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let giveback = GiveBack {
                        pool: Arc::downgrade(&self.pool),
                        key: base.authority.clone(),
                        sender,
                    };
                    return Ok(response.map(|body| ResponseBody::pooled(body, giveback)));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: a reused connection that was closing.
                    // Safe to send again on another connection.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(UpstreamError::Http(e.into_error())),
                },
            }
        }
    }

    async fn connect(
        &self,
        authority: &Arc<str>,
    ) -> Result<SendRequest<RequestBody>, UpstreamError> {
        let connect_error = |source| UpstreamError::Connect {
            authority: authority.to_string(),
            source,
        };
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&**authority))
            .await
            .map_err(|_| {
                connect_error(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no connection within {} ms",
                        self.connect_timeout.as_millis()
                    ),
                ))
            })?
            .map_err(connect_error)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    async fn send_tls(
        &self,
        base: &BaseUrl,
        request: Request<RequestBody>,
    ) -> Result<Response<ResponseBody>, UpstreamError> {
        let (parts, body) = request.into_parts();
        let url = format!("{}{}", base.prefix, parts.uri);
        let body = match body {
            RequestBody::Empty | RequestBody::Full(None) => reqwest::Body::from(Bytes::new()),
            RequestBody::Full(Some(bytes)) => reqwest::Body::from(bytes),
            RequestBody::Stream(stream) => reqwest::Body::wrap_stream(stream),
        };
        let response = self
            .tls
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let response: Response<reqwest::Body> = response.into();
        Ok(response.map(ResponseBody::tls))
    }
}

impl Pool {
    /// The most recently used idle connection that is still usable.
    fn take(&self, key: &str) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() > self.idle_timeout {
                // Everything below is older still.
                list.clear();
                break;
            }
            if !entry.sender.is_closed() {
                return Some(entry.sender);
            }
        }
        None
    }

    fn put(&self, key: Arc<str>, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() < self.max_idle_per_host {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Drops expired and closed connections, and empty entries (backends
    /// that went away).
    fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, list| {
            list.retain(|e| e.since.elapsed() <= self.idle_timeout && !e.sender.is_closed());
            !list.is_empty()
        });
    }
}

async fn sweep(pool: Weak<Pool>, idle_timeout: Duration) {
    let period = (idle_timeout / 2).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.sweep(),
            None => return,
        }
    }
}

/// Returns a connection to its pool once its response has been read.
struct GiveBack {
    pool: Weak<Pool>,
    key: Arc<str>,
    sender: SendRequest<RequestBody>,
}

impl GiveBack {
    fn release(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(self.key, self.sender);
        }
    }
}

/// A backend's response body, streamed to the client. Reading it to the end
/// puts its connection back in the pool.
pub struct ResponseBody {
    inner: Inner,
}

enum Inner {
    Pooled {
        body: Incoming,
        giveback: Option<GiveBack>,
    },
    Tls(reqwest::Body),
}

impl ResponseBody {
    fn pooled(body: Incoming, giveback: GiveBack) -> ResponseBody {
        let mut this = ResponseBody {
            inner: Inner::Pooled {
                body,
                giveback: Some(giveback),
            },
        };
        // A response without a body (204, 304, HEAD) may never be polled.
        this.release_if_done();
        this
    }

    fn tls(body: reqwest::Body) -> ResponseBody {
        ResponseBody {
            inner: Inner::Tls(body),
        }
    }

    fn release_if_done(&mut self) {
        if let Inner::Pooled { body, giveback } = &mut self.inner {
            if body.is_end_stream() {
                if let Some(giveback) = giveback.take() {
                    giveback.release();
                }
            }
        }
    }
}

impl Stream for ResponseBody {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let frame = match &mut this.inner {
                Inner::Pooled { body, giveback } => match Pin::new(body).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => {
                        if let Some(giveback) = giveback.take() {
                            giveback.release();
                        }
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Some(Err(e))) => {
                        // A broken body: the connection is not reusable.
                        giveback.take();
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    Poll::Ready(Some(Ok(frame))) => frame,
                },
                Inner::Tls(body) => match Pin::new(body).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                    Poll::Ready(Some(Ok(frame))) => frame,
                },
            };
            // Trailers are not forwarded (HTTP/1 clients rarely ask).
            if let Ok(data) = frame.into_data() {
                this.release_if_done();
                return Poll::Ready(Some(Ok(data)));
            }
        }
    }
}
