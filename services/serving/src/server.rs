//! Serving a service's requests on a listener the caller bound.
//!
//! A small accept loop on hyper's HTTP/1 connection builder, so that both
//! services get what a bare server would not give them: slow clients that
//! never finish their headers are cut off, oversized header blocks are
//! refused, requests hyper lets through that no route should see are
//! refused (the `refusals` module) on a connection that then closes, answers
//! a client leaves unread end their connection after a while, and on
//! shutdown the listener closes at once while open connections get `drain`
//! to finish. Binding the listener ourselves is what lets tests use port 0.
//!
//! Every other request goes to the service's [`Handler`] as hyper parsed it,
//! with its [`Connection`]: the peer's address, and what a handler may do
//! to the connection and the listener (reset one, stop the other for a
//! while). Each service routes from its own route table
//! ([`crate::methods`]) with no framework in between.
//!
//! Depends on hyper, hyper-util, this crate's `body`, `coalesce`,
//! `connection`, `refusals`, `write_stall`, `errors` and `response`, on
//! `observability` (spans, escaping) and `launch` (settings errors).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::body::BodyError;
use crate::connection::{Connection, Listening, Resettable};

pub use crate::response::Response;

/// Answers the requests of one listener.
pub trait Handler: Clone + Send + Sync + 'static {
    /// The answer to `request`, which came on `connection` (the client's
    /// address, and what the handler may do to the connection).
    fn call(
        &self,
        request: http::Request<Incoming>,
        connection: &Connection,
    ) -> impl Future<Output = Response> + Send + use<Self>;
}

/// A request's body, refused past `limit` bytes whether or not the client
/// sent a `Content-Length` (chunked bodies are counted as they arrive); a
/// `Content-Length` over the limit is refused before anything is read.
/// Trailers are dropped.
pub async fn read_body(
    headers: &http::HeaderMap,
    mut body: Incoming,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let announced = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let data = futures_util::stream::poll_fn(move |cx| loop {
        let frame = std::task::ready!(hyper::body::Body::poll_frame(
            std::pin::Pin::new(&mut body),
            cx
        ));
        match frame {
            None => return std::task::Poll::Ready(None),
            Some(Err(e)) => return std::task::Poll::Ready(Some(Err(e))),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return std::task::Poll::Ready(Some(Ok(data)));
                }
            }
        }
    });
    crate::body::read_limited(data, limit).await
}

/// Limits on incoming HTTP connections (the `http` settings section).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// A client must send its complete request head within this time, or
    /// the connection is closed; slow-header clients cannot pin connections.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Largest request head (request line plus headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Longest an answer's write may wait for the client to read any of it
    /// before the connection is closed (as NGINX's `send_timeout`); a slow
    /// but steady reader is never cut off, since every byte read restarts
    /// the wait.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            write_timeout: Duration::from_secs(60),
        }
    }
}

impl HttpSettings {
    /// Range checks, with errors naming the key under `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<(), launch::settings::SettingsError> {
        if self.header_read_timeout.is_zero() {
            return Err(launch::settings::SettingsError::invalid(
                format!("{prefix}.header_read_timeout"),
                "must be greater than zero",
            ));
        }
        if self.write_timeout.is_zero() {
            return Err(launch::settings::SettingsError::invalid(
                format!("{prefix}.write_timeout"),
                "must be greater than zero",
            ));
        }
        if !(8192..=16 * 1024 * 1024).contains(&self.max_header_bytes) {
            return Err(launch::settings::SettingsError::invalid(
                format!("{prefix}.max_header_bytes"),
                "must be between 8192 and 16777216",
            ));
        }
        Ok(())
    }
}

/// Binds `address` with `SO_REUSEPORT` (so several listeners, one per
/// worker, can share it) and a backlog deep enough for bursts of new
/// connections; non-blocking, ready for `TcpListener::from_std`.
pub fn bind_reuseport(address: &str) -> std::io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// How the drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every connection finished within the drain time.
    Complete,
    /// The drain time ran out with connections still open; they were dropped.
    TimedOut,
}

/// Sees every request from the moment its head is parsed until its response
/// head is ready: where services measure server-side latency and count
/// requests in flight, whatever route (or rejection) answers.
pub trait Observe: Clone + Send + Sync + 'static {
    /// Carried from `start` to `finish`; dropping it without `finish` means
    /// the client went away before an answer (drop guards still run).
    type Token: Send + 'static;
    /// Called when a request arrives.
    fn start(&self, method: &http::Method, path: &str) -> Self::Token;
    /// The route template `start` found, for span names.
    fn route(&self, token: &Self::Token) -> &'static str;
    /// Called when the response head is ready.
    fn finish(&self, token: Self::Token, status: http::StatusCode);
}

/// Serves `handler` on `listener` until `shutdown` resolves, then drains.
///
/// A handler may stop the listener for a while through its request's
/// [`Connection`] ([`crate::connection::Listening::stop_for`]): the socket
/// is then closed, the open connections are closed after their current
/// answer, and a new listener is bound on the same address when the time
/// is up (retried every 100 ms while the address is taken).
pub async fn serve<H, O>(
    listener: TcpListener,
    handler: H,
    observer: O,
    http: &HttpSettings,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> Drain
where
    H: Handler,
    O: Observe,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_read_timeout)
        .max_buf_size(http.max_header_bytes)
        .keep_alive(true);
    let write_timeout = http.write_timeout;
    let max_head_bytes = http.max_header_bytes;
    let address = listener.local_addr();
    let mut listener = Some(listener);
    let listening = Listening::new();
    let mut stops = listening.subscribe();
    // Every change asks the open connections to close after their current
    // answer (idle ones at once): when the listener stops, and at shutdown.
    let close_connections = watch::Sender::new(());
    // Each connection's task holds a sender; the drain ends when all are gone.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let closed_until = *stops.borrow_and_update();
        if let Some(until) = closed_until.filter(|until| *until > Instant::now()) {
            if listener.take().is_some() {
                tracing::info!(
                    closed_for_ms = (until - Instant::now()).as_millis() as u64,
                    "listener closed; open connections close after their current answer"
                );
                close_connections.send_replace(());
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                _ = stops.changed() => {}
                () = &mut shutdown => break,
            }
            continue;
        }
        let Some(accepting) = &listener else {
            match rebind(&address).await {
                Ok(bound) => {
                    tracing::info!(address = %bound.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), "listening again");
                    listener = Some(bound);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen again yet; retrying in 100 ms");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        () = &mut shutdown => break,
                    }
                }
            }
            continue;
        };
        let (stream, peer) = tokio::select! {
            accepted = accepting.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE or a connection reset before accept;
                    // back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stops.changed() => continue,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let reset = Arc::new(AtomicBool::new(false));
        let connection = Connection::new(peer, reset.clone(), listening.clone());
        let hyper_service = service(
            handler.clone(),
            observer.clone(),
            connection,
            max_head_bytes,
        );
        // Small answers leave in one `send` rather than a `writev`; a write
        // the client leaves waiting ends the connection after a while.
        let stream =
            crate::write_stall::WriteStall::new(Resettable::new(stream, reset), write_timeout);
        let served = builder.serve_connection(
            TokioIo::new(crate::coalesce::Coalescing(stream)),
            hyper_service,
        );
        let mut closing = close_connections.subscribe();
        let alive = alive.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let mut served = std::pin::pin!(served);
            let mut asked = false;
            let ended = loop {
                tokio::select! {
                    ended = served.as_mut() => break ended,
                    _ = closing.changed(), if !asked => {
                        asked = true;
                        served.as_mut().graceful_shutdown();
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %observability::escape::Escaped(&e), %peer, "connection ended with an error");
            }
        });
    }

    drop(listener);
    close_connections.send_replace(());
    drop(alive);
    tokio::select! {
        _ = all_closed.recv() => Drain::Complete,
        () = tokio::time::sleep(drain) => {
            tracing::warn!(drain_secs = drain.as_secs_f64(), "drain time ran out with requests still in flight");
            Drain::TimedOut
        }
    }
}

/// hyper's service for one connection: the server's own refusals, else the
/// handler, with every request observed and traced.
fn service<H: Handler, O: Observe>(
    handler: H,
    observer: O,
    connection: Connection,
    max_head_bytes: usize,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future: Send,
> {
    hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let path = req.uri().path();
        let token = observer.start(req.method(), path);
        let span = observability::telemetry::server_span(
            req.method(),
            observer.route(&token),
            path,
            req.headers(),
        );
        let observer = observer.clone();
        let connection = connection.clone();
        let response = {
            let _entered = span.enter();
            if let Some(mut refusal) = crate::refusals::problem(&req, max_head_bytes) {
                // The body was never read, and after a framing this
                // server will not decode, what follows may be body.
                crate::errors::close_connection(&mut refusal);
                futures_util::future::Either::Right(std::future::ready(refusal))
            } else {
                futures_util::future::Either::Left(handler.call(req, &connection))
            }
        };
        async move {
            let response = response.instrument(span.clone()).await;
            // A reset connection answers nothing: counted as a request the
            // client got no answer to, as when it goes away.
            if !connection.is_reset() {
                observability::telemetry::record_status(&span, response.status().as_u16());
                observer.finish(token, response.status());
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    })
}

/// A listener on `address` again, after [`Listening::stop_for`].
async fn rebind(address: &std::io::Result<SocketAddr>) -> std::io::Result<TcpListener> {
    match address {
        Ok(address) => TcpListener::bind(address).await,
        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
    }
}
