//! The proxied path: every request that is not one of the gateway's own
//! routes. It reads top to bottom: pick a backend, forward the request,
//! stream the answer back, record what happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Buf;
use common::server::ClientAddr;
use common::stats::{Outcome, Recorder};
use futures_util::{Stream, StreamExt};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;
use warp::reply::Response;
use warp::Reply;

use crate::balancer::Balancer;
use crate::errors::ProxyError;
use crate::metrics::GatewayMetrics;
use crate::registry::{Backend, Registry};

/// What the proxied path needs, shared by all requests.
#[derive(Debug)]
pub struct ProxyState {
    /// Where backends come from.
    pub registry: Arc<Registry>,
    /// How one is chosen.
    pub balancer: Balancer,
    /// One pooled keep-alive client for all backends.
    pub client: reqwest::Client,
    /// Longest wait for a response head.
    pub request_timeout: Duration,
    /// Gateway-wide stats windows (proxied requests only).
    pub stats: Arc<Recorder>,
    /// Upstream metrics.
    pub metrics: GatewayMetrics,
    /// Whether to write one log line per request.
    pub access_log: bool,
}

/// One proxied request, from arrival to response head.
pub async fn handle<S, B>(
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    client_addr: Option<ClientAddr>,
    body: S,
    state: Arc<ProxyState>,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Sync + 'static,
    B: Buf + Send + 'static,
{
    let started = Instant::now();
    let request_id = request_id(&headers);

    let snapshot = state.registry.snapshot();
    let Some(backend) = state.balancer.pick(&snapshot).cloned() else {
        return answer_error(
            &state,
            &method,
            &path_and_query,
            &request_id,
            None,
            ProxyError::NoBackends,
            started,
        );
    };
    let in_flight = backend.begin();

    let url = format!("{}{}", backend.base.prefix, path_and_query);
    let mut upstream = state
        .client
        .request(method.clone(), url)
        .headers(forward_headers(&headers, client_addr, &request_id));
    if has_body(&headers) {
        let body = body.map(|chunk| chunk.map(|mut buf| buf.copy_to_bytes(buf.remaining())));
        upstream = upstream.body(reqwest::Body::wrap_stream(body));
    }

    let sent = tokio::time::timeout(state.request_timeout, upstream.send()).await;
    let elapsed = started.elapsed();
    let upstream_response = match sent {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            let error = ProxyError::Unreachable {
                backend: backend.name.clone(),
                detail: error_chain(&e),
            };
            return answer_error(
                &state,
                &method,
                &path_and_query,
                &request_id,
                Some(&backend),
                error,
                started,
            );
        }
        Err(_) => {
            let error = ProxyError::Timeout {
                backend: backend.name.clone(),
                timeout_ms: state.request_timeout.as_millis(),
            };
            return answer_error(
                &state,
                &method,
                &path_and_query,
                &request_id,
                Some(&backend),
                error,
                started,
            );
        }
    };

    let status = upstream_response.status();
    record(&state, &backend, Some(status.as_u16()), elapsed);
    state
        .metrics
        .upstream_call(&backend.name, &method, Some(status.as_u16()), "", elapsed);
    if state.access_log {
        access_log(
            &method,
            &path_and_query,
            status.as_u16(),
            &backend.name,
            elapsed,
            &request_id,
        );
    }

    let mut response_headers = upstream_response.headers().clone();
    strip_hop_by_hop(&mut response_headers);
    response_headers.insert(HeaderName::from_static("x-request-id"), request_id);
    // The in-flight guard rides along with the body, so a streaming answer
    // counts as outstanding (for least_outstanding) until it is finished.
    let body = upstream_response.bytes_stream().map(move |chunk| {
        let _still_in_flight = &in_flight;
        chunk
    });
    let mut response = warp::reply::stream(body).into_response();
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

/// Answers a request the gateway could not forward, and records it.
fn answer_error(
    state: &ProxyState,
    method: &Method,
    path: &str,
    request_id: &HeaderValue,
    backend: Option<&Arc<Backend>>,
    error: ProxyError,
    started: Instant,
) -> Response {
    let elapsed = started.elapsed();
    let (status, _) = error.status_and_code();
    state.metrics.proxy_error(error.kind());
    match backend {
        Some(b) => {
            tracing::warn!(
                backend = %b.name,
                upstream = %b.base.authority,
                request_id = request_id.to_str().unwrap_or(""),
                "upstream error: {error}"
            );
            b.failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            b.stats.record(Outcome {
                status: None,
                latency: elapsed,
            });
            state
                .metrics
                .upstream_call(&b.name, method, None, error.kind(), elapsed);
        }
        None => tracing::warn!("{error}"),
    }
    state.stats.record(Outcome {
        status: Some(status.as_u16()),
        latency: elapsed,
    });
    if state.access_log {
        let name = backend.map_or("-", |b| b.name.as_str());
        access_log(method, path, status.as_u16(), name, elapsed, request_id);
    }
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(HeaderName::from_static("x-request-id"), request_id.clone());
    response
}

fn record(state: &ProxyState, backend: &Backend, status: Option<u16>, latency: Duration) {
    let outcome = Outcome { status, latency };
    state.stats.record(outcome);
    backend.stats.record(outcome);
    if status.is_none_or(|s| s >= 500) {
        backend
            .failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn access_log(
    method: &Method,
    path: &str,
    status: u16,
    backend: &str,
    elapsed: Duration,
    id: &HeaderValue,
) {
    tracing::info!(
        target: "access",
        method = %method,
        path,
        status,
        backend,
        latency_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        request_id = id.to_str().unwrap_or(""),
        "request"
    );
}

/// The client's `X-Request-Id` when it sent a usable one, else a fresh
/// random 128-bit id.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&format!("{:032x}", fastrand::u128(..)))
                .unwrap_or_else(|_| HeaderValue::from_static("0"))
        })
}

/// Whether the client sent a body to forward. Without this, a GET would go
/// upstream with an empty chunked body.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Headers that describe one connection, not the message (RFC 9110 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(listed.iter()) {
        headers.remove(name);
    }
    // Framing is redone by our own HTTP layer on each side.
    headers.remove(header::TRANSFER_ENCODING);
}

/// The headers sent upstream: the client's, minus hop-by-hop and `Host`
/// (the client library sets the backend's), plus the `X-Forwarded-*` trio
/// and the request id.
fn forward_headers(
    incoming: &HeaderMap,
    client: Option<ClientAddr>,
    request_id: &HeaderValue,
) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    let host = headers.remove(header::HOST);

    if let Some(ClientAddr(addr)) = client {
        let ip = addr.ip().to_string();
        let forwarded_for = match incoming
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prior) if !prior.is_empty() => format!("{prior}, {ip}"),
            _ => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("http"),
        );
    }
    if !headers.contains_key("x-forwarded-host") {
        if let Some(host) = host {
            headers.insert(HeaderName::from_static("x-forwarded-host"), host);
        }
    }
    headers.insert(HeaderName::from_static("x-request-id"), request_id.clone());
    headers
}

/// A client error with its causes, for one readable log line.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_headers_are_added_and_appended() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("gw.example"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let addr = ClientAddr("127.0.0.9:1234".parse().unwrap());
        let out = forward_headers(&h, Some(addr), &HeaderValue::from_static("rid"));
        assert_eq!(out["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-forwarded-host"], "gw.example");
        assert_eq!(out["x-request-id"], "rid");
        assert!(!out.contains_key(header::HOST));
    }

    #[test]
    fn request_ids_are_kept_or_generated() {
        let mut h = HeaderMap::new();
        let generated = request_id(&h);
        assert_eq!(generated.len(), 32);
        assert_ne!(generated, request_id(&h));
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        assert_eq!(request_id(&h), "abc");
    }
}
