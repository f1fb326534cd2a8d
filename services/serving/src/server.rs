//! Serving a service's requests on a listener the caller bound.
//!
//! A small accept loop on hyper's HTTP/1 connection builder, so that both
//! services get what a bare server would not give them: slow clients that
//! never finish their headers are cut off, oversized header blocks are
//! refused, HTTP/1.1 requests without exactly one `Host` (a 400) and bodies
//! coded other than a single `chunked` (a 501, or a 400 for chunked twice)
//! are refused before any route sees them (hyper lets both through), on a
//! connection that then closes (what follows may be body, not a request),
//! and on shutdown the listener closes at once while open connections get
//! `drain` to finish. Binding the listener ourselves is what lets tests use
//! port 0.
//!
//! Every other request goes to the service's [`Handler`] as hyper parsed it,
//! with the peer's address: each service routes from its own route table
//! ([`crate::methods`]) with no framework in between.
//!
//! Depends on hyper, hyper-util, this crate's `body`, `coalesce`, `errors`
//! and `response`, on `observability` (spans, escaping), `launch`
//! (settings errors) and `http1-client` (the `Transfer-Encoding` rule).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::body::BodyError;

pub use crate::response::Response;

/// Answers the requests of one listener.
pub trait Handler: Clone + Send + Sync + 'static {
    /// The answer to `request`, from the client at `peer`.
    fn call(
        &self,
        request: http::Request<Incoming>,
        peer: SocketAddr,
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

/// A 400 for a request whose Host header breaks HTTP/1.1's rule (RFC 9112
/// §3.2): there must be exactly one, unless the request target carries its
/// own authority (absolute form) or the request is HTTP/1.0. hyper parses
/// such requests without complaint; a proxy that passed them on would leave
/// the backend to guess which host was meant.
fn host_problem<B>(request: &http::Request<B>) -> Option<Response> {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Some(crate::errors::json_error(
            http::StatusCode::BAD_REQUEST,
            "invalid_host",
            "Host: sent more than once; send exactly one",
        ));
    }
    if first.is_none()
        && request.version() == http::Version::HTTP_11
        && request.uri().authority().is_none()
    {
        return Some(crate::errors::json_error(
            http::StatusCode::BAD_REQUEST,
            "missing_host",
            "Host: missing; HTTP/1.1 requests must send one",
        ));
    }
    None
}

/// A refusal for a request body coded with anything but one `chunked`
/// ([`http1_client::single_chunked`]): 501 for a coding this server does not
/// implement (as NGINX answers), 400 for `chunked` twice. hyper decodes the
/// final `chunked` and hands on what is under it, so without this the
/// gateway would pass `gzip, chunked` bodies on as plain ones. hyper itself
/// refuses a final coding other than `chunked`, and any Transfer-Encoding
/// on HTTP/1.0.
fn transfer_coding_problem<B>(request: &http::Request<B>) -> Option<Response> {
    let values = request.headers().get_all(http::header::TRANSFER_ENCODING);
    let error = http1_client::single_chunked(values).err()?;
    let (status, code) = match error {
        http1_client::CodingError::Unsupported(_) => (
            http::StatusCode::NOT_IMPLEMENTED,
            "unsupported_transfer_coding",
        ),
        http1_client::CodingError::ChunkedTwice => {
            (http::StatusCode::BAD_REQUEST, "invalid_transfer_encoding")
        }
    };
    Some(crate::errors::json_error(status, code, &error.to_string()))
}

/// Serves `handler` on `listener` until `shutdown` resolves, then drains.
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
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE or a connection reset before accept;
                    // back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let observer = observer.clone();
        let hyper_service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let path = req.uri().path();
            let token = observer.start(req.method(), path);
            let span = observability::telemetry::server_span(
                req.method(),
                observer.route(&token),
                path,
                req.headers(),
            );
            let observer = observer.clone();
            let response = {
                let _entered = span.enter();
                let refusal = host_problem(&req).or_else(|| transfer_coding_problem(&req));
                if let Some(mut refusal) = refusal {
                    // The body was never read, and after a framing this
                    // server will not decode, what follows may be body.
                    crate::errors::close_connection(&mut refusal);
                    futures_util::future::Either::Right(std::future::ready(refusal))
                } else {
                    futures_util::future::Either::Left(handler.call(req, peer))
                }
            };
            async move {
                let response = response.instrument(span.clone()).await;
                observability::telemetry::record_status(&span, response.status().as_u16());
                observer.finish(token, response.status());
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        // Small answers leave in one `send` rather than a `writev`; a write
        // the client leaves waiting ends the connection after a while.
        let stream = crate::write_stall::WriteStall::new(stream, write_timeout);
        let connection = builder.serve_connection(
            TokioIo::new(crate::coalesce::Coalescing(stream)),
            hyper_service,
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %observability::escape::Escaped(&e), %peer, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => Drain::Complete,
        () = tokio::time::sleep(drain) => {
            tracing::warn!(drain_secs = drain.as_secs_f64(), "drain time ran out with requests still in flight");
            Drain::TimedOut
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{host_problem, transfer_coding_problem};
    use http::{Request, Version};

    /// Whether a GET for `target` with these Host headers is refused.
    fn refused(target: &str, version: Version, hosts: &[&str]) -> bool {
        let mut request = Request::get(target).version(version);
        for host in hosts {
            request = request.header("host", *host);
        }
        let request = request.body(()).unwrap();
        match host_problem(&request) {
            Some(answer) => {
                assert_eq!(answer.status(), 400);
                true
            }
            None => false,
        }
    }

    #[test]
    fn http_1_1_needs_exactly_one_host_unless_the_target_names_it() {
        const HTTP_10: Version = Version::HTTP_10;
        const HTTP_11: Version = Version::HTTP_11;
        assert!(!refused("/x", HTTP_11, &["a"]));
        assert!(!refused("http://a/x", HTTP_11, &[]));
        assert!(!refused("/x", HTTP_10, &[]));
        assert!(!refused("/x", HTTP_10, &["a"]));

        assert!(refused("/x", HTTP_11, &[]));
        assert!(refused("/x", HTTP_11, &["a", "a"]));
        assert!(refused("http://a/x", HTTP_11, &["a", "b"]));
    }

    /// The status a POST with these Transfer-Encoding lines is refused
    /// with, if it is.
    fn coding_refusal(lines: &[&str]) -> Option<u16> {
        let mut request = Request::post("/x");
        for line in lines {
            request = request.header("transfer-encoding", *line);
        }
        let request = request.body(()).unwrap();
        transfer_coding_problem(&request).map(|answer| answer.status().as_u16())
    }

    #[test]
    fn only_a_single_chunked_coding_is_accepted() {
        assert_eq!(coding_refusal(&[]), None);
        assert_eq!(coding_refusal(&["chunked"]), None);
        assert_eq!(coding_refusal(&["Chunked"]), None);
        assert_eq!(coding_refusal(&[" chunked , "]), None);

        assert_eq!(coding_refusal(&["gzip, chunked"]), Some(501));
        assert_eq!(coding_refusal(&["gzip", "chunked"]), Some(501));
        assert_eq!(coding_refusal(&["identity, chunked"]), Some(501));
        assert_eq!(coding_refusal(&["chunked, chunked"]), Some(400));
        assert_eq!(coding_refusal(&["chunked", "chunked"]), Some(400));
    }
}
