//! The client that carries proxied requests to backends.
//!
//! Plain-HTTP backends (the common case inside a cluster, and the one the
//! benchmark measures) are spoken to by the gateway's own HTTP/1.1 client
//! (`h1`, `body`): the request's task writes the request and reads the
//! answer on a pooled keep-alive connection (`pool`), one pool per worker
//! runtime. Earlier versions used reqwest (its URL parsing and pool
//! bookkeeping were ~15% of the CPU per request) and then hyper's client
//! connections (a task, two channels and ~30 KB per pooled connection);
//! `h1` says why. `https` backends still go through reqwest, which brings
//! TLS (rustls).
//!
//! A connection goes back to the pool when its response body has been read
//! to the end; one whose body was abandoned half-way is closed instead,
//! since it cannot carry another request. Idle connections are dropped after
//! `upstream.pool_idle_timeout`, so one the backend is about to close is
//! never reused.
//!
//! The client sends each request once. When a pooled connection turns out
//! to be closed under a request, the error goes back to the proxy like any
//! other: resending is the retry policy's decision alone, since the backend
//! may have acted on the request before it closed.

mod body;
mod h1;
mod pool;
mod request;
pub mod resolve;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::uri::PathAndQuery;
use http::{Method, Response};

pub use body::ResponseBody;
use h1::{Conn, H1Error};
use pool::{GiveBack, Pool};
use request::RequestHead;
use resolve::Resolver;

use crate::config::UpstreamSettings;
use crate::headers::Forwarded;
use crate::spec::BaseUrl;

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
    /// The connection broke, or the backend's answer was not valid HTTP/1.1.
    #[error("{0}")]
    Http(#[from] H1Error),
    /// An `https` backend's call failed (reqwest).
    #[error("{}", error_chain(.0))]
    Tls(#[from] reqwest::Error),
}

impl UpstreamError {
    /// Whether the client's request body failed (or did not keep its
    /// declared length): the client's fault, not the backend's.
    pub fn is_request_body(&self) -> bool {
        matches!(self, UpstreamError::Http(H1Error::RequestBody(_)))
    }

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

/// One request to send upstream, borrowed from the proxied request so a
/// retry costs no copies.
pub struct Outgoing<'a> {
    /// The client's method, sent as it came.
    pub method: &'a Method,
    /// Origin-form target, the backend's path prefix included.
    pub target: &'a PathAndQuery,
    /// The client's headers and the gateway's; `Host` and the body's
    /// framing (`Content-Length`, `Transfer-Encoding`) are written by `send`
    /// for the backend and the body it sends.
    pub headers: &'a Forwarded,
    /// Taken per attempt: a buffered body is shared, a stream goes once.
    pub body: RequestBody,
}

/// What is sent upstream as the request body.
pub enum RequestBody {
    /// No body.
    Empty,
    /// A body read in full (so a retry can send it again).
    Full(Bytes),
    /// The client's body, streamed through once.
    Stream(BodyStream),
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
    /// Resolves backends' host names, leaving out denied networks.
    resolver: Resolver,
}

impl Upstream {
    /// A client for one worker. Spawns the pool's idle sweeper on the
    /// current runtime; it ends when the client is dropped.
    pub fn new(
        settings: &UpstreamSettings,
        tls: reqwest::Client,
        resolver: Resolver,
    ) -> Arc<Upstream> {
        Arc::new(Upstream {
            pool: Pool::new(settings.pool_max_idle_per_host, settings.pool_idle_timeout),
            tls,
            connect_timeout: settings.connect_timeout,
            resolver,
        })
    }

    /// Sends `request` to `base`, and returns the response head with its
    /// streaming body.
    pub async fn send(
        &self,
        base: &BaseUrl,
        request: Outgoing<'_>,
    ) -> Result<Response<ResponseBody>, UpstreamError> {
        if base.tls {
            // Boxed: reqwest's future is large, and unboxed it would size
            // (and be copied with) every plain-HTTP request's future.
            return Box::pin(self.send_tls(base, request)).await;
        }
        let Outgoing {
            method,
            target,
            headers,
            mut body,
        } = request;
        let head = RequestHead {
            method,
            target: target.as_str(),
            headers,
            host: &base.host,
        };
        let (mut conn, reused) = match self.pool.take(&base.authority) {
            Some(conn) => (conn, true),
            None => (self.connect(&base.authority).await?, false),
        };
        let mut received = false;
        match conn.exchange(&head, &mut body, &mut received).await {
            Ok(head) => {
                let giveback = GiveBack {
                    pool: Arc::downgrade(&self.pool),
                    key: base.authority.clone(),
                };
                let mut body = ResponseBody::plain(conn, head.framing, head.keep_alive, giveback);
                body.check_buffered().map_err(|e| {
                    H1Error::Invalid(format!("response body: {}", error_chain(&*e)))
                })?;
                let mut response = Response::new(body);
                *response.status_mut() = head.status;
                *response.headers_mut() = head.headers;
                Ok(response)
            }
            Err(e) => {
                // A pooled connection closed under the request: the
                // backend closed it idle, or restarted, and its siblings
                // in the pool are most likely gone too. The request is not
                // sent again here: it may have been acted on, and only the
                // proxy's retry rules (idempotent methods, attempts,
                // budget) may decide to send it again.
                if reused && !received && matches!(e, H1Error::Closed | H1Error::Io(_)) {
                    self.pool.clear(&base.authority);
                }
                Err(e.into())
            }
        }
    }

    async fn connect(&self, authority: &Arc<str>) -> Result<Conn, UpstreamError> {
        let connect_error = |source| UpstreamError::Connect {
            authority: authority.to_string(),
            source,
        };
        // The timeout covers the name lookup too.
        let stream = tokio::time::timeout(self.connect_timeout, self.resolver.connect(authority))
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
        Ok(Conn::new(stream))
    }

    async fn send_tls(
        &self,
        base: &BaseUrl,
        request: Outgoing<'_>,
    ) -> Result<Response<ResponseBody>, UpstreamError> {
        let body = match request.body {
            RequestBody::Empty => reqwest::Body::from(Bytes::new()),
            RequestBody::Full(bytes) => reqwest::Body::from(bytes),
            RequestBody::Stream(stream) => reqwest::Body::wrap_stream(stream),
        };
        let response = self
            .tls
            .request(request.method.clone(), tls_url(base, request.target))
            .headers(request.headers.to_map())
            .body(body)
            .send()
            .await?;
        let response: Response<reqwest::Body> = response.into();
        Ok(response.map(ResponseBody::tls))
    }
}

/// The URL of an `https` call: scheme and authority, then the target,
/// which already carries the backend's path prefix.
fn tls_url(base: &BaseUrl, target: &PathAndQuery) -> String {
    let origin = base
        .prefix
        .strip_suffix(base.path.as_str())
        .unwrap_or(&base.prefix);
    format!("{origin}{target}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tls_urls_carry_the_path_prefix_once() {
        let base = crate::spec::parse_base_url("https://api.example.com/v1").unwrap();
        let target = PathAndQuery::from_static("/v1/users?id=7");
        assert_eq!(
            tls_url(&base, &target),
            "https://api.example.com:443/v1/users?id=7"
        );
        let base = crate::spec::parse_base_url("https://127.0.0.1:8443").unwrap();
        let target = PathAndQuery::from_static("/x");
        assert_eq!(tls_url(&base, &target), "https://127.0.0.1:8443/x");
    }
}
