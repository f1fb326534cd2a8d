//! The proxied path: every request that is not one of the gateway's own
//! routes. [`handle`] reads top to bottom: read the body (in full when it
//! is small, so it can be retried; see [`crate::request_body`]), admit the
//! request under the in-flight limit, then per attempt pick an `up` backend
//! not tried yet, forward, wait for the answer, classify the outcome, and
//! either relay the answer back (see [`crate::relay`]) or retry on another
//! backend while the retry rules and budget allow.
//!
//! Who is at fault decides what is charged where: a client's broken,
//! stalled or oversized body is answered 400/408/413 and never counted
//! against the backend it was going to; a backend's failure (no connection,
//! a broken or invalid answer, no answer in time, a body that breaks or
//! stalls half-way) counts toward its ejection. A request is booked (stats,
//! access log) when its answer has ended, with how it ended, and holds its
//! in-flight places until then.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::escape::{escape_str, Escaped};
use common::stats::{Outcome, Recorder};
use http::header::{HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use tracing::Instrument;
use warp::reply::Response;
use warp::Reply;

use crate::attempt::{self, annotate, await_answer, classify, Attempt};
use crate::balancer::Balancer;
use crate::config::{LimitSettings, RetrySettings};
use crate::errors::ProxyError;
use crate::headers::{forward_headers, has_body, request_id, strip_hop_by_hop, X_REQUEST_ID};
use crate::metrics::GatewayMetrics;
use crate::outlier::{AttemptOutcome, Outlier};
use crate::registry::{Backend, InFlight, Registry};
use crate::relay::{BodyEnd, Relay};
use crate::request_body::{ClientFault, RequestBody};
use crate::retry::{is_idempotent, retryable, Failure, RetryBudget};
use crate::upstream::{Outgoing, ResponseBody, Upstream};

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
    /// Longest wait for the next bytes of a backend's response body.
    pub body_idle_timeout: Duration,
}

/// One proxied request, from arrival to response head, as hyper parsed it
/// (`routes::Routes` hands over every path that is not the gateway's own).
pub async fn handle(
    request: Request<Incoming>,
    client: SocketAddr,
    state: Arc<ProxyState>,
    upstream: Arc<Upstream>,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (method, headers) = (parts.method, parts.headers);
    let target = origin_target(&parts.uri);
    let request_id = request_id(&headers);
    let request = RequestInfo {
        method,
        target,
        request_id,
        started,
    };
    let mut unanswered = Unanswered {
        state: &state,
        request: &request,
        armed: true,
    };
    let response = forward(&state, &upstream, &request, headers, body, client).await;
    unanswered.armed = false;
    response
}

/// Books a request whose client went away before it was answered (hyper
/// then drops the request's future), as NGINX does: status 499, nothing
/// charged to the backend it may have been waiting on.
struct Unanswered<'a> {
    state: &'a ProxyState,
    request: &'a RequestInfo,
    armed: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.armed {
            let status = ProxyError::Client(ClientFault::Abandoned)
                .status_and_code()
                .0;
            book(self.state, self.request, status, "-", None);
        }
    }
}

/// The request's way from its body to the answer's head.
async fn forward(
    state: &Arc<ProxyState>,
    upstream: &Upstream,
    request: &RequestInfo,
    headers: HeaderMap,
    body: Incoming,
    client: SocketAddr,
) -> Response {
    let method = &request.method;

    if *method == Method::CONNECT {
        return answer_error(state, request, None, ProxyError::Connect);
    }
    // Before admission: a slow uploader holds its own connection, never a
    // place other clients need.
    // Boxed, and only for requests that have a body: the read's state (the
    // stream, its timers) would otherwise size, and be copied with, every
    // request's future.
    let read = if has_body(&headers) {
        let limits = &state.limits;
        Box::pin(RequestBody::read(
            &headers,
            body,
            limits,
            state.retry.max_buffered_body_bytes,
        ))
        .await
    } else {
        Ok(RequestBody::Empty)
    };
    let mut body = match read {
        Ok(body) => body,
        Err(fault) => return answer_error(state, request, None, fault.into()),
    };
    let Some(admitted) = admit(state) else {
        let limit = state.limits.max_in_flight;
        let error = ProxyError::Overloaded {
            which: "gateway",
            limit,
        };
        return answer_error(state, request, None, error);
    };
    let forwarded = forward_headers(headers, client, &request.request_id);
    state.budget.record_request();

    let deadline = request.started + state.request_timeout;
    let mut tried: Vec<Arc<Backend>> = Vec::new();
    loop {
        let in_flight = match choose_backend(state, &tried) {
            Ok(in_flight) => in_flight,
            Err(e) => return answer_error(state, request, tried.last(), e),
        };
        let backend = in_flight.0.clone();
        let attempt_started = Instant::now();
        let timeout = state
            .attempt_timeout
            .min(deadline.saturating_duration_since(attempt_started));

        let span = client_span(method, request.path(), &backend, tried.len() + 1);
        let target = match upstream_target(&backend.base.path, &request.target) {
            Ok(target) => target,
            Err(e) => return answer_error(state, request, None, e),
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
            method,
            target: &target,
            headers,
            body: body.for_attempt(),
        };
        // Waiting elsewhere only helps a request that may be sent again.
        let watch_health = is_idempotent(method) && body.replayable();
        // Pinned here, not moved into `await_answer`: the upstream call's
        // state is large, and every move of it is a copy per request.
        let send = std::pin::pin!(upstream.send(&backend.base, outgoing));
        let sent = await_answer(
            send,
            &backend,
            &body,
            attempt_started,
            timeout,
            watch_health,
        )
        .instrument(span.clone())
        .await;
        let elapsed = attempt_started.elapsed();

        let context = attempt::Context {
            backend: &backend,
            request_id: request.request_id.to_str().unwrap_or(""),
            attempt: tried.len() + 1,
            timeout,
        };
        let attempt = classify(sent, &body, &state.retry.on_statuses, &context);
        annotate(&span, &attempt);
        drop(span);
        let (failure, response) = match attempt {
            Attempt::Answered(response) => {
                let answer = Answer {
                    backend: in_flight,
                    response,
                    elapsed,
                };
                return relay(state, request, answer, admitted);
            }
            Attempt::Client(fault) => {
                return answer_error(state, request, None, fault.into());
            }
            Attempt::RetryableStatus(response) => {
                (Failure::Status(response.status().as_u16()), Some(response))
            }
            Attempt::Failed(failure) => {
                record_attempt(state, &backend, method, None, Some(failure), elapsed);
                (failure, None)
            }
        };
        tried.push(backend.clone());
        let can_retry = retryable(method, failure)
            && body.replayable()
            && tried.len() < state.retry.max_attempts as usize
            && Instant::now() < deadline;
        if can_retry && state.budget.try_retry() {
            if let Some(response) = &response {
                let status = Some(response.status());
                record_attempt(state, &backend, method, status, Some(failure), elapsed);
            }
            state.metrics.retry(failure.as_str());
            continue;
        }
        if can_retry {
            state.metrics.retry_budget_exhausted();
        }
        // Out of retries: a status failure is still a real answer, booked
        // as one when it has been relayed.
        if let Some(response) = response {
            let answer = Answer {
                backend: in_flight,
                response,
                elapsed,
            };
            return relay(state, request, answer, admitted);
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
        return answer_error(state, request, Some(&backend), error);
    }
}

/// The request target sent upstream, in origin form. Origin-form and
/// absolute-form targets have a path (an absolute form without one, such as
/// `http://host?x=1`, means `/`, RFC 9112 §3.2.2); so does `*` (OPTIONS *),
/// passed on as it is. Only CONNECT's authority form has none, and CONNECT
/// is refused.
fn origin_target(uri: &http::Uri) -> PathAndQuery {
    match uri.path_and_query() {
        Some(target) if target.as_str().starts_with('?') => {
            // Display puts the missing `/` in front; `as_str` does not.
            PathAndQuery::try_from(target.to_string()).unwrap_or_else(|_| target.clone())
        }
        Some(target) => target.clone(),
        None => PathAndQuery::from_static("/"),
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

/// What the log lines and error answers need to know about the request; a
/// relayed answer keeps a copy (cheap: shared bytes) to book the request
/// when its body ends.
#[derive(Clone)]
struct RequestInfo {
    method: Method,
    target: PathAndQuery,
    request_id: HeaderValue,
    started: Instant,
}

impl RequestInfo {
    fn path(&self) -> &str {
        self.target.as_str()
    }
}

/// Holds a place under `limits.max_in_flight` until dropped; a relayed
/// answer keeps it until its body has ended.
struct Admitted(Arc<ProxyState>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn admit(state: &Arc<ProxyState>) -> Option<Admitted> {
    let now = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let admitted = Admitted(state.clone());
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

/// Books one attempt on the backend: stats, metrics, outlier detection.
/// `status` is the head it answered with, if any; `failure` what went wrong
/// by its fault (no answer, or a body that broke or stalled after the head).
fn record_attempt(
    state: &ProxyState,
    backend: &Arc<Backend>,
    method: &Method,
    status: Option<StatusCode>,
    failure: Option<Failure>,
    elapsed: Duration,
) {
    let status = status.map(|s| s.as_u16());
    let broken = failure.filter(|f| !matches!(f, Failure::Status(_)));
    // A response that did not arrive whole is no answer, whatever its head.
    let answered = if broken.is_some() { None } else { status };
    if state.record_stats {
        backend.stats.record(Outcome {
            status: answered,
            latency: elapsed,
        });
    }
    if answered.is_none_or(|s| s >= 500) {
        backend.failures.fetch_add(1, Ordering::Relaxed);
    }
    if state.record_metrics {
        let error_type = broken.map_or("", Failure::as_str);
        state
            .metrics
            .upstream_call(&backend.name, method, status, error_type, elapsed);
    }
    let outcome = match answered {
        None => AttemptOutcome::ConnectionFailure,
        Some(s) if s >= 500 => AttemptOutcome::ServerError,
        Some(_) => AttemptOutcome::Success,
    };
    state.outlier.report(backend, outcome);
}

/// The attempt whose answer is relayed to the client.
struct Answer {
    backend: InFlight,
    response: http::Response<ResponseBody>,
    /// Time to its head.
    elapsed: Duration,
}

/// Relays an upstream answer to the client. The attempt and the request are
/// booked when the body ends, with how it ended; the request's in-flight
/// places are held until then.
fn relay(
    state: &ProxyState,
    request: &RequestInfo,
    answer: Answer,
    admitted: Admitted,
) -> Response {
    let Answer {
        backend,
        response,
        elapsed,
    } = answer;
    let (parts, body) = response.into_parts();
    let status = parts.status;
    let request = request.clone();
    let mut response_headers = parts.headers;
    strip_hop_by_hop(&mut response_headers);
    response_headers.insert(X_REQUEST_ID, request.request_id.clone());
    // The body ends outside the request's span; its access line still
    // names the request's trace.
    let span = common::telemetry::tracing_enabled().then(tracing::Span::current);
    let on_end = move |end: BodyEnd| {
        let _entered = span.as_ref().map(tracing::Span::enter);
        let state = &admitted.0;
        let failure = match &end {
            BodyEnd::Stalled(_) => Some(Failure::Timeout),
            BodyEnd::Broken(_) => Some(Failure::Reset),
            BodyEnd::Complete | BodyEnd::Abandoned => None,
        };
        if let Some(failure) = failure {
            tracing::warn!(
                backend = %backend.0.name,
                request_id = request.request_id.to_str().unwrap_or(""),
                "upstream response body {}: {end:?}",
                failure.as_str()
            );
        }
        record_attempt(
            state,
            &backend.0,
            &request.method,
            Some(status),
            failure,
            elapsed,
        );
        let error = failure.map(|f| match f {
            Failure::Timeout => "upstream_body_timeout",
            _ => "upstream_body_broken",
        });
        book(state, &request, status, &backend.0.name, error);
    };
    let body = Relay::new(body, state.body_idle_timeout, on_end);
    let mut response = warp::reply::stream(body).into_response();
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

/// Answers a request the gateway could not forward, and records it. The
/// failed attempts themselves were already booked by `record_attempt`.
fn answer_error(
    state: &ProxyState,
    request: &RequestInfo,
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
        None,
    );
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(X_REQUEST_ID, request.request_id.clone());
    response
}

/// Books a request answered with `status`: the gateway's stats windows and
/// the access log (each when switched on). `error` names how an answer
/// whose head was sent failed before its end; such a request counts as
/// unanswered in the stats.
fn book(
    state: &ProxyState,
    request: &RequestInfo,
    status: StatusCode,
    backend: &str,
    error: Option<&str>,
) {
    let elapsed = request.started.elapsed();
    if state.record_stats {
        state.stats.record(Outcome {
            status: error.is_none().then_some(status.as_u16()),
            latency: elapsed,
        });
    }
    if state.access_log {
        access_log(request, status.as_u16(), backend, elapsed, error);
    }
}

/// The access log's target, for hand-formatted lines.
static ACCESS: common::log_line::Target =
    common::log_line::Target::new(|| tracing::info!(target: "access", "probe"));

fn access_log(
    request: &RequestInfo,
    status: u16,
    backend: &str,
    elapsed: Duration,
    error: Option<&str>,
) {
    let request_id = request.request_id.to_str().unwrap_or("");
    // Paths may carry UTF-8 that JSON lines would write raw (C1 controls,
    // U+2028, bidirectional controls).
    let path = escape_str(request.path());
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    // The common case, formatted by hand (the same bytes; see
    // `common::log_line`): no trace export, so no trace id either.
    if let Some(line) = common::log_line::Line::start(&ACCESS, "request") {
        let line = line
            .display("method", request.method.as_str())
            .str("path", &path)
            .u64("status", u64::from(status))
            .str("backend", backend)
            .millis("latency_ms", micros)
            .str("request_id", request_id)
            .str("trace_id", "");
        match error {
            Some(error) => line.str("error", error).finish("access"),
            None => line.finish("access"),
        }
        return;
    }
    // Runs inside the request's server span, whose trace id links the line
    // to its trace (empty when tracing is off).
    let trace_id = common::telemetry::trace_id(&tracing::Span::current()).unwrap_or_default();
    let latency_ms = micros as f64 / 1000.0;
    let (method, path) = (&request.method, &*path);
    match error {
        Some(error) => tracing::info!(
            target: "access",
            method = %method, path, status, backend, latency_ms, request_id, trace_id, error,
            "request"
        ),
        None => tracing::info!(
            target: "access",
            method = %method, path, status, backend, latency_ms, request_id, trace_id,
            "request"
        ),
    }
}
