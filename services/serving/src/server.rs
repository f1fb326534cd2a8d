//! Serving a warp filter on a listener the caller bound.
//!
//! warp's own server offers neither a header-read timeout nor a bound on the
//! graceful drain, and binding the listener ourselves is what lets tests use
//! port 0. So both services run their routes through this small accept loop
//! on hyper's HTTP/1 connection builder: slow clients that never finish their
//! headers are cut off, oversized header blocks are refused, HTTP/1.1
//! requests without exactly one `Host` (a 400) and bodies coded other than
//! a single `chunked` (a 501, or a 400 for chunked twice) are refused before
//! any route sees them (hyper lets both through), on a connection that then
//! closes (what follows may be body, not a request), and on shutdown the
//! listener closes at once while open connections get `drain` to finish.
//!
//! A service may also claim requests before they reach warp (see [`Direct`]):
//! the gateway's proxied path is served that way, because warp's filter
//! chain (every own route tried and rejected in turn, the header map cloned)
//! is measurable work on a path that runs for every request.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tracing::Instrument;
use warp::reply::Response;
use warp::{Filter, Reply};

/// The peer address of a request's connection, stored in the request's
/// extensions; routes read it with `warp::ext::optional::<ClientAddr>()`.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

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
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
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
    /// The route template of `path`, for span names.
    fn route(&self, path: &str) -> &'static str;
    /// Called when the response head is ready.
    fn finish(&self, token: Self::Token, status: http::StatusCode);
}

/// Claims requests before the warp filter chain sees them: gets each
/// request with its peer address and either returns the future answering it
/// or hands the request back for warp to route.
pub trait Direct: Clone + Send + Sync + 'static {
    /// The answer to a claimed request.
    type Future: Future<Output = Response> + Send + 'static;
    /// The future answering `request`, or the request itself when warp
    /// should route it.
    // The request goes back by value, once; boxing it would allocate on
    // every request to save a move.
    #[allow(clippy::result_large_err)]
    fn claim(
        &self,
        request: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Self::Future, http::Request<Incoming>>;
}

/// Claims nothing: every request goes through warp.
#[derive(Debug, Clone, Copy)]
pub struct AllToWarp;

impl Direct for AllToWarp {
    type Future = std::future::Ready<Response>;
    fn claim(
        &self,
        request: http::Request<Incoming>,
        _peer: SocketAddr,
    ) -> Result<Self::Future, http::Request<Incoming>> {
        Err(request)
    }
}

/// An answer that is not a [`Direct`] claim: warp's, or a refusal made here.
type BoxedAnswer = std::pin::Pin<Box<dyn Future<Output = Response> + Send>>;

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

/// Serves `filter` (and `direct`'s claims) on `listener` until `shutdown`
/// resolves, then drains.
pub async fn serve<F, D, O>(
    listener: TcpListener,
    filter: F,
    direct: D,
    observer: O,
    http: &HttpSettings,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> Drain
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
    D: Direct,
    O: Observe,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_read_timeout)
        .max_buf_size(http.max_header_bytes)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let service = warp::service(filter);
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
        let service = service.clone();
        let direct = direct.clone();
        let observer = observer.clone();
        let hyper_service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let path = req.uri().path();
            let token = observer.start(req.method(), path);
            let span = observability::telemetry::server_span(
                req.method(),
                observer.route(path),
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
                    let refused: BoxedAnswer = Box::pin(std::future::ready(refusal));
                    futures_util::future::Either::Right(refused)
                } else {
                    match direct.claim(req, peer) {
                        Ok(claimed) => futures_util::future::Either::Left(claimed),
                        Err(mut req) => {
                            req.extensions_mut().insert(ClientAddr(peer));
                            let mut service = service.clone();
                            let routed = tower_service::Service::call(&mut service, req);
                            // Boxed: warp's future is several hundred bytes,
                            // and unboxed it would size (and be copied with)
                            // every request's future, claimed ones included.
                            let routed: BoxedAnswer =
                                Box::pin(futures_util::FutureExt::map(routed, |routed| {
                                    routed.unwrap_or_else(|never| match never {})
                                }));
                            futures_util::future::Either::Right(routed)
                        }
                    }
                }
            };
            async move {
                let response = response.instrument(span.clone()).await;
                observability::telemetry::record_status(&span, response.status().as_u16());
                observer.finish(token, response.status());
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        // Small answers leave in one `send` rather than a `writev`.
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
