//! The client that carries proxied requests to backends.
//!
//! Plain-HTTP backends (the common case inside a cluster, and the one the
//! benchmark measures) are spoken to by the `http1_client` crate: the
//! request's task writes the request and reads the answer on a pooled
//! keep-alive connection, one pool per worker runtime. It was measured
//! against reqwest (whose URL parsing and pool bookkeeping cost ~15% of the
//! CPU per request) and hyper's client connections (a task, two channels
//! and ~30 KB per pooled connection). `https` backends go through reqwest,
//! which brings TLS (rustls).
//!
//! What is the gateway's here: how a backend is resolved and connected to
//! (`resolve`: denied networks; the connect timeout), the headers it adds
//! (passed to the client as extra lines, see [`Forwarded`]), and which
//! failures the retry rules may act on. The client sends each request
//! once: resending is the retry policy's decision alone, since the backend
//! may have acted on the request.
//!
//! Depends on `config`, `spec` (where a backend is), `headers` (what is
//! added) and `policy` (the denied networks).

mod body;
pub mod resolve;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Method, Response};
use http1_client::{Client, RequestHead};
use tokio::net::TcpStream;

pub use body::ResponseBody;
pub use http1_client::{BodyStream, BoxError, RequestBody};
use resolve::Resolver;

use crate::config::UpstreamSettings;
use crate::headers::Forwarded;
use crate::spec::BaseUrl;

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
    Http(#[from] http1_client::Error),
    /// An `https` backend's call failed (reqwest).
    #[error("{}", error_chain(.0))]
    Tls(#[from] reqwest::Error),
}

impl UpstreamError {
    /// Whether the client's request body failed (or did not keep its
    /// declared length): the client's fault, not the backend's.
    pub fn is_request_body(&self) -> bool {
        matches!(
            self,
            UpstreamError::Http(http1_client::Error::RequestBody(_))
        )
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

/// One worker's upstream client. Cheap to share; each worker runtime gets
/// its own so its connections are driven by the thread that uses them.
#[derive(Debug)]
pub struct Upstream {
    /// For plain-HTTP backends, with their idle keep-alive connections.
    client: Client,
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
            client: Client::new(settings.pool_max_idle_per_host, settings.pool_idle_timeout),
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
            host: &base.host,
            // The gateway's lines go as extra lines, replacing the client's
            // of the same name: no insertion into the client's map.
            headers: &headers.client,
            extra: &headers.added,
        };
        let connect = || self.connect(&base.authority);
        let response = self
            .client
            .send(&base.authority, connect, &head, &mut body)
            .await?;
        Ok(response.map(ResponseBody::plain))
    }

    async fn connect(&self, authority: &Arc<str>) -> Result<TcpStream, UpstreamError> {
        let connect_error = |source| UpstreamError::Connect {
            authority: authority.to_string(),
            source,
        };
        // The timeout covers the name lookup too.
        tokio::time::timeout(self.connect_timeout, self.resolver.connect(authority))
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
            .map_err(connect_error)
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
