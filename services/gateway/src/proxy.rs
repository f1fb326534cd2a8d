//! The proxied path: every request that is not one of the gateway's own
//! routes. [`handle`] reads top to bottom: admit the request under the
//! in-flight limit, prepare the body (buffered when small, so it can be
//! retried), then per attempt pick an `up` backend not tried yet, forward,
//! classify the outcome, and either stream the answer back or retry on
//! another backend while the retry rules and budget allow.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::escape::{escape_str, Escaped};
use common::stats::{Outcome, Recorder};
use futures_util::StreamExt;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, StatusCode};
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use tracing::Instrument;
use warp::reply::Response;
use warp::Reply;

use crate::balancer::Balancer;
use crate::config::{LimitSettings, RetrySettings};
use crate::errors::ProxyError;
use crate::headers::{forward_headers, has_body, request_id, strip_hop_by_hop, X_REQUEST_ID};
use crate::metrics::GatewayMetrics;
use crate::outlier::{AttemptOutcome, Outlier};
use crate::registry::{Backend, InFlight, Registry};
use crate::retry::{retryable, Failure, RetryBudget};
use crate::upstream::{self, Outgoing, ResponseBody, Upstream, UpstreamError};

/// What the proxied path needs, shared by all requests.
#[derive(Debug)]
pub struct ProxyState {
    /// Where backends come from.
    pub registry: Arc<Registry>,
    /// How one is chosen.
    pub balancer: Balancer,
    /// Longest wait for a response head, over all attempts.
    pub request_timeout: Duration,
    /// Longest wait for one attempt.
    pub attempt_timeout: Duration,
    /// Retry rules.
    pub retry: RetrySettings,
    /// Shared across requests so retries stay a bounded share of traffic.
    pub budget: RetryBudget,
    /// Passive ejection of failing backends.
    pub outlier: Outlier,
    /// In-flight caps.
    pub limits: LimitSettings,
    /// Proxied requests in flight now, for `limits.max_in_flight`.
    pub in_flight: AtomicU64,
    /// Gateway-wide stats windows (proxied requests only).
    pub stats: Arc<Recorder>,
    /// Upstream metrics.
    pub metrics: GatewayMetrics,
    /// Whether to write one log line per request.
    pub access_log: bool,
    /// Whether requests are recorded into the stats windows (`stats.enabled`).
    pub record_stats: bool,
    /// Whether upstream calls are observed in `/metrics` (`metrics.enabled`).
    pub record_metrics: bool,
}

/// The request body, as far as retries are concerned.
enum RequestBody {
    /// Nothing to send.
    Empty,
    /// Read in full, so it can be sent again.
    Buffered(Bytes),
    /// Streamed through once; the request cannot be retried.
    Streaming(Option<Incoming>),
}

impl RequestBody {
    /// The body for the next attempt (a streamed one goes out only once).
    fn for_attempt(&mut self) -> upstream::RequestBody {
        match self {
            RequestBody::Empty => upstream::RequestBody::Empty,
            RequestBody::Buffered(bytes) => upstream::RequestBody::Full(bytes.clone()),
            RequestBody::Streaming(body) => match body.take() {
                Some(body) => upstream::RequestBody::Stream(Box::pin(
                    BodyDataStream::new(body).map(|chunk| chunk.map_err(Into::into)),
                )),
                None => upstream::RequestBody::Empty,
            },
        }
    }
}

/// One proxied request, from arrival to response head. The server hands
/// these over before warp's routing (see `common::server::Direct`), so the
/// request arrives as hyper parsed it.
pub async fn handle(
    request: Request<Incoming>,
    client: SocketAddr,
    state: Arc<ProxyState>,
    upstream: Arc<Upstream>,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (method, headers) = (parts.method, parts.headers);
    // Origin-form (and absolute-form) targets have a path; so does `*`
    // (OPTIONS *), passed on as it is. Only CONNECT's authority-form has
    // none, and CONNECT is refused below.
    let target = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let path_and_query = target.as_str();
    let request_id = request_id(&headers);
    let request = RequestInfo {
        method: &method,
        path: path_and_query,
        request_id: &request_id,
        started,
    };

    if method == Method::CONNECT {
        return answer_error(&state, &request, None, ProxyError::Connect);
    }
    let Some(_admitted) = admit(&state) else {
        let limit = state.limits.max_in_flight;
        return answer_error(
            &state,
            &request,
            None,
            ProxyError::Overloaded {
                which: "gateway",
                limit,
            },
        );
    };
    let mut body = match prepare_body(&headers, body, state.retry.max_buffered_body_bytes).await {
        Ok(body) => body,
        Err(e) => return answer_error(&state, &request, None, e),
    };
    let forwarded = forward_headers(headers, client, &request_id);
    state.budget.record_request();

    let deadline = started + state.request_timeout;
    let mut tried: Vec<Arc<Backend>> = Vec::new();
    loop {
        let in_flight = match choose_backend(&state, &tried) {
            Ok(in_flight) => in_flight,
            Err(e) => return answer_error(&state, &request, tried.last(), e),
        };
        let backend = in_flight.0.clone();
        let attempt_started = Instant::now();
        let timeout = state
            .attempt_timeout
            .min(deadline.saturating_duration_since(attempt_started));

        let span = client_span(&method, path_and_query, &backend, tried.len() + 1);
        let target = match upstream_target(&backend.base.path, &target) {
            Ok(target) => target,
            Err(e) => return answer_error(&state, &request, None, e),
        };
        // Trace context goes on a copy; without tracing, no copy at all.
        let traced;
        let headers = if common::telemetry::tracing_enabled() {
            let mut context = HeaderMap::new();
            common::telemetry::inject(&span, &mut context);
            let mut copy = forwarded.clone();
            copy.added.extend(
                context
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone())),
            );
            traced = copy;
            &traced
        } else {
            &forwarded
        };
        let outgoing = Outgoing {
            method: &method,
            target: &target,
            headers,
            body: body.for_attempt(),
        };
        let sent = tokio::time::timeout(timeout, upstream.send(&backend.base, outgoing))
            .instrument(span.clone())
            .await;
        let elapsed = attempt_started.elapsed();

        let attempt = classify(
            sent,
            &state.retry.on_statuses,
            &backend,
            &request_id,
            tried.len() + 1,
            timeout,
        );
        annotate(&span, &attempt);
        drop(span);
        record_attempt(&state, &backend, &method, &attempt, elapsed);
        let (failure, response) = match attempt {
            Attempt::Answered(response) => {
                return pass_through(&state, &request, &backend, response, in_flight)
            }
            Attempt::RetryableStatus(response) => {
                (Failure::Status(response.status().as_u16()), Some(response))
            }
            Attempt::Failed(failure) => (failure, None),
        };
        tried.push(backend.clone());
        let can_retry = retryable(&method, failure)
            && !matches!(body, RequestBody::Streaming(_))
            && tried.len() < state.retry.max_attempts as usize
            && Instant::now() < deadline;
        if can_retry && state.budget.try_retry() {
            state.metrics.retry(failure.as_str());
            continue;
        }
        if can_retry {
            state.metrics.retry_budget_exhausted();
        }
        // Out of retries: a status failure is still a real answer.
        if let Some(response) = response {
            return pass_through(&state, &request, &backend, response, in_flight);
        }
        let error = match failure {
            Failure::Timeout => ProxyError::Timeout {
                backend: backend.name.clone(),
                timeout_ms: timeout.as_millis(),
            },
            Failure::Denied => ProxyError::Unreachable {
                backend: backend.name.clone(),
                detail: "its host name resolves only to addresses in admin.denied_networks (the registration policy); no connection was made".to_owned(),
            },
            _ => ProxyError::Unreachable {
                backend: backend.name.clone(),
                detail: failure.as_str().to_owned(),
            },
        };
        return answer_error(&state, &request, Some(&backend), error);
    }
}

/// The backend's path prefix (often empty) plus the request's path and
/// query, as the origin-form target sent upstream. Without a prefix (and
/// for `*`, which names the server rather than a path) the client's target
/// is reused as parsed: no copy, no second parse.
fn upstream_target(prefix: &str, target: &PathAndQuery) -> Result<PathAndQuery, ProxyError> {
    if prefix.is_empty() || target.as_str() == "*" {
        return Ok(target.clone());
    }
    PathAndQuery::try_from(format!("{prefix}{target}"))
        .map_err(|e| ProxyError::BadTarget(e.to_string()))
}

/// A client span for one upstream attempt; retries show as siblings.
fn client_span(
    method: &Method,
    path_and_query: &str,
    backend: &Backend,
    attempt: usize,
) -> tracing::Span {
    if !common::telemetry::tracing_enabled() {
        return tracing::Span::none();
    }
    let url = format!("{}{}", backend.base.prefix, path_and_query);
    tracing::info_span!(
        "HTTP client",
        otel.name = %method,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        url.full = url.as_str(),
        server.address = %backend.base.authority,
        upstream = %backend.name,
        http.request.resend_count = i64::try_from(attempt).unwrap_or(1) - 1,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// What the log lines and error answers need to know about the request.
struct RequestInfo<'a> {
    method: &'a Method,
    path: &'a str,
    request_id: &'a HeaderValue,
    started: Instant,
}

/// Holds a place under `limits.max_in_flight` until dropped.
struct Admitted<'a>(&'a AtomicU64);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn admit(state: &ProxyState) -> Option<Admitted<'_>> {
    let now = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let admitted = Admitted(&state.in_flight);
    if state.limits.max_in_flight != 0 && now > state.limits.max_in_flight {
        state.metrics.limit_rejection("gateway");
        return None;
    }
    Some(admitted)
}

/// An `up` backend not tried yet and not at its in-flight limit. When every
/// `up` backend has been tried, one may be tried again (a failure on a
/// stale pooled connection is worth a second go on the same host).
fn choose_backend(state: &ProxyState, tried: &[Arc<Backend>]) -> Result<InFlight, ProxyError> {
    let snapshot = state.registry.current();
    if snapshot.backends.is_empty() {
        return Err(ProxyError::NoBackends);
    }
    if snapshot.eligible.is_empty() {
        return Err(ProxyError::NoHealthyBackends(snapshot.backends.len()));
    }
    let limit = state.limits.max_in_flight_per_backend;
    let has_room = |b: &Backend| limit == 0 || b.active.load(Ordering::Relaxed) < limit;
    let untried = |b: &Backend| !tried.iter().any(|t| t.name == b.name);
    // The room check is a hint; `try_begin` claims the slot for real, and a
    // backend filled by a concurrent request in between is skipped.
    for _ in 0..3 {
        let chosen = state
            .balancer
            .pick_where(&snapshot, |b| untried(b) && has_room(b))
            .or_else(|| state.balancer.pick_where(&snapshot, has_room));
        let Some(backend) = chosen else { break };
        if let Some(in_flight) = backend.try_begin(limit) {
            return Ok(in_flight);
        }
    }
    state.metrics.limit_rejection("backend");
    Err(ProxyError::Overloaded {
        which: "backend",
        limit,
    })
}

/// Buffers small bodies (so they can be retried) and streams the rest.
async fn prepare_body(
    headers: &HeaderMap,
    body: Incoming,
    max_buffered: usize,
) -> Result<RequestBody, ProxyError> {
    if !has_body(headers) {
        return Ok(RequestBody::Empty);
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match length {
        Some(n) if n <= max_buffered => {
            common::body::read_limited(BodyDataStream::new(body), max_buffered)
                .await
                .map(RequestBody::Buffered)
                .map_err(|e| ProxyError::BadRequestBody(e.to_string()))
        }
        _ => Ok(RequestBody::Streaming(Some(body))),
    }
}

/// How one attempt ended.
enum Attempt {
    /// An answer to pass on to the client.
    Answered(http::Response<ResponseBody>),
    /// An answer whose status is listed in `retry.on_statuses`: retried
    /// when possible, else passed on.
    RetryableStatus(http::Response<ResponseBody>),
    /// No answer at all.
    Failed(Failure),
}

impl Attempt {
    fn status(&self) -> Option<u16> {
        match self {
            Attempt::Answered(r) | Attempt::RetryableStatus(r) => Some(r.status().as_u16()),
            Attempt::Failed(_) => None,
        }
    }
}

/// Turns the client's result into an [`Attempt`], logging failures.
fn classify(
    sent: Result<Result<http::Response<ResponseBody>, UpstreamError>, tokio::time::error::Elapsed>,
    retry_statuses: &[u16],
    backend: &Backend,
    request_id: &HeaderValue,
    attempt: usize,
    timeout: Duration,
) -> Attempt {
    match sent {
        Ok(Ok(response)) if retry_statuses.contains(&response.status().as_u16()) => {
            Attempt::RetryableStatus(response)
        }
        Ok(Ok(response)) => Attempt::Answered(response),
        Ok(Err(e)) => {
            tracing::warn!(
                backend = %backend.name,
                upstream = %backend.base.authority,
                request_id = request_id.to_str().unwrap_or(""),
                attempt,
                "upstream error: {}",
                Escaped(&e)
            );
            Attempt::Failed(if upstream::resolve::is_denied(&e) {
                Failure::Denied
            } else if e.is_connect() {
                Failure::Connect
            } else {
                Failure::Reset
            })
        }
        Err(_) => {
            tracing::warn!(
                backend = %backend.name,
                request_id = request_id.to_str().unwrap_or(""),
                attempt,
                "upstream timeout after {} ms",
                timeout.as_millis()
            );
            Attempt::Failed(Failure::Timeout)
        }
    }
}

/// Puts the attempt's outcome on its client span.
fn annotate(span: &tracing::Span, attempt: &Attempt) {
    match attempt {
        Attempt::Answered(r) | Attempt::RetryableStatus(r) => {
            common::telemetry::record_status(span, r.status().as_u16())
        }
        Attempt::Failed(f) => {
            span.record("error.type", f.as_str());
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// Books one attempt on the backend: stats, metrics, outlier detection.
fn record_attempt(
    state: &ProxyState,
    backend: &Arc<Backend>,
    method: &Method,
    attempt: &Attempt,
    elapsed: Duration,
) {
    let status = attempt.status();
    if state.record_stats {
        backend.stats.record(Outcome {
            status,
            latency: elapsed,
        });
    }
    if status.is_none_or(|s| s >= 500) {
        backend.failures.fetch_add(1, Ordering::Relaxed);
    }
    if state.record_metrics {
        let error_type = match attempt {
            Attempt::Failed(f) => f.as_str(),
            _ => "",
        };
        state
            .metrics
            .upstream_call(&backend.name, method, status, error_type, elapsed);
    }
    let outcome = match status {
        None => AttemptOutcome::ConnectionFailure,
        Some(s) if s >= 500 => AttemptOutcome::ServerError,
        Some(_) => AttemptOutcome::Success,
    };
    state.outlier.report(backend, outcome);
}

/// Streams an upstream answer to the client and books the request.
fn pass_through(
    state: &ProxyState,
    request: &RequestInfo<'_>,
    backend: &Arc<Backend>,
    upstream_response: http::Response<ResponseBody>,
    in_flight: InFlight,
) -> Response {
    let (parts, body) = upstream_response.into_parts();
    let status = parts.status;
    book(state, request, status, &backend.name);
    let mut response_headers = parts.headers;
    strip_hop_by_hop(&mut response_headers);
    response_headers.insert(X_REQUEST_ID, request.request_id.clone());
    // The in-flight guard rides along with the body, so a streaming answer
    // counts as outstanding (for least_outstanding) until it is finished.
    let body = body.map(move |chunk| {
        let _still_in_flight = &in_flight;
        chunk
    });
    let mut response = warp::reply::stream(body).into_response();
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

/// Answers a request the gateway could not forward, and records it. The
/// failed attempts themselves were already booked by `record_attempt`.
fn answer_error(
    state: &ProxyState,
    request: &RequestInfo<'_>,
    backend: Option<&Arc<Backend>>,
    error: ProxyError,
) -> Response {
    let (status, _) = error.status_and_code();
    state.metrics.proxy_error(error.kind());
    if backend.is_none() {
        tracing::warn!(
            request_id = request.request_id.to_str().unwrap_or(""),
            "{}",
            Escaped(&error)
        );
    }
    book(
        state,
        request,
        status,
        backend.map_or("-", |b| b.name.as_str()),
    );
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(X_REQUEST_ID, request.request_id.clone());
    response
}

/// Books a request answered with `status`: the gateway's stats windows and
/// the access log (each when switched on).
fn book(state: &ProxyState, request: &RequestInfo<'_>, status: StatusCode, backend: &str) {
    let elapsed = request.started.elapsed();
    if state.record_stats {
        state.stats.record(Outcome {
            status: Some(status.as_u16()),
            latency: elapsed,
        });
    }
    if state.access_log {
        access_log(request, status.as_u16(), backend, elapsed);
    }
}

/// The access log's target, for hand-formatted lines.
static ACCESS: common::log_line::Target =
    common::log_line::Target::new(|| tracing::info!(target: "access", "probe"));

fn access_log(request: &RequestInfo<'_>, status: u16, backend: &str, elapsed: Duration) {
    let request_id = request.request_id.to_str().unwrap_or("");
    // Paths may carry UTF-8 that JSON lines would write raw (C1 controls,
    // U+2028, bidirectional controls).
    let path = escape_str(request.path);
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    // The common case, formatted by hand (the same bytes; see
    // `common::log_line`): no trace export, so no trace id either.
    if let Some(line) = common::log_line::Line::start(&ACCESS, "request") {
        line.display("method", request.method.as_str())
            .str("path", &path)
            .u64("status", u64::from(status))
            .str("backend", backend)
            .millis("latency_ms", micros)
            .str("request_id", request_id)
            .str("trace_id", "")
            .finish("access");
        return;
    }
    // Runs inside the request's server span, whose trace id links the line
    // to its trace (empty when tracing is off).
    let trace_id = common::telemetry::trace_id(&tracing::Span::current()).unwrap_or_default();
    tracing::info!(
        target: "access",
        method = %request.method,
        path = &*path,
        status,
        backend,
        latency_ms = micros as f64 / 1000.0,
        request_id,
        trace_id,
        "request"
    );
}
