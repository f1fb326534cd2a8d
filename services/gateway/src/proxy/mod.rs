//! The proxied path: every request that is not one of the gateway's own
//! routes. [`handle`] reads top to bottom: read the body (in full when it
//! is small, so it can be retried; see [`client_body`]), admit the
//! request under the in-flight limit, then per attempt pick an `up` backend
//! not tried yet, forward, wait for the answer, classify the outcome, and
//! either relay the answer back (see [`relay`]) or retry on another
//! backend while the retry rules and budget allow.
//!
//! Who is at fault decides what is charged where: a client's broken,
//! stalled or oversized body is answered 400/408/413 and never counted
//! against the backend it was going to; a backend's failure (no connection,
//! a broken or invalid answer, no answer in time, a body that breaks or
//! stalls half-way) counts toward its ejection. A request is booked (stats,
//! access log) when its answer has ended, with how it ended, and holds its
//! in-flight places until then.
//!
//! Depends on everything below it (`backends`, `balancer`, `health`,
//! `metrics`, `upstream`, `headers`, `errors`, `outcome`, `config`); only
//! the wiring and `reports` (which reads its stats and metrics) depend on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request};
use hyper::body::Incoming;
use observability::escape::Escaped;
use observability::stats::Recorder;
use serving::response::{Body, Response};
use tracing::Instrument;

mod attempt;
mod booking;
pub mod client_body;
pub mod idle;
pub mod relay;
pub mod retry;
mod target;

use crate::backends::{Backend, InFlight, Registry};
use crate::balancer::hash::RequestParts;
use crate::balancer::Balancer;
use crate::config::{LimitSettings, RetrySettings};
use crate::errors::ProxyError;
use crate::headers::{forward_headers, has_body, request_id, strip_hop_by_hop, X_REQUEST_ID};
use crate::health::Outlier;
use crate::metrics::GatewayMetrics;
use crate::outcome::{ClientFault, Failure, Outcome};
use crate::upstream::{Outgoing, ResponseBody, Upstream};
use attempt::{annotate, await_answer, client_span, judge};
use booking::{book, record_attempt};
use client_body::ClientBody;
use relay::{BodyEnd, Relay};
use retry::{is_idempotent, retryable, RetryBudget};
use target::{origin_target, upstream_target};

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
        Box::pin(ClientBody::read(
            &headers,
            body,
            limits,
            state.retry.max_buffered_body_bytes,
        ))
        .await
    } else {
        Ok(ClientBody::Empty)
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
    // Under `hash`, the key is found and hashed once, before the headers
    // are rewritten; every attempt picks with it.
    let key = state.balancer.request_key(RequestParts {
        headers: &headers,
        path: request.target.path(),
        query: request.target.query(),
        client: client.ip(),
    });
    let forwarded = forward_headers(headers, client, &request.request_id);
    state.budget.record_request();

    let deadline = request.started + state.request_timeout;
    let mut tried: Vec<Arc<Backend>> = Vec::new();
    loop {
        let in_flight = match choose_backend(state, &tried, key) {
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
        let headers = if observability::telemetry::tracing_enabled() {
            let mut context = HeaderMap::new();
            observability::telemetry::inject(&span, &mut context);
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
        let judged = judge(sent, &body, &context);
        annotate(&span, &judged);
        drop(span);
        // A failed attempt is booked now; an answer when its body has been
        // relayed, or now when its status is retried.
        let (outcome, response) = match judged {
            Ok(response) => {
                let status = response.status();
                if !state.retry.on_statuses.contains(&status.as_u16()) {
                    let answer = Answer {
                        backend: in_flight,
                        response,
                        elapsed,
                    };
                    return relay(state, request, answer, admitted);
                }
                (Outcome::Answered(status), Some(response))
            }
            Err(Outcome::Client(fault)) => {
                return answer_error(state, request, None, fault.into());
            }
            Err(outcome) => {
                record_attempt(state, &backend, method, &outcome, elapsed);
                (outcome, None)
            }
        };
        tried.push(backend.clone());
        let can_retry = retryable(method, &outcome)
            && body.replayable()
            && tried.len() < state.retry.max_attempts as usize
            && Instant::now() < deadline;
        if can_retry && state.budget.try_retry() {
            if response.is_some() {
                record_attempt(state, &backend, method, &outcome, elapsed);
            }
            state.metrics.retry(retry::reason(&outcome));
            continue;
        }
        if can_retry {
            state.metrics.retry_budget_exhausted();
        }
        // Out of retries: a retried status is still a real answer, booked
        // as one when it has been relayed.
        if let Some(response) = response {
            let answer = Answer {
                backend: in_flight,
                response,
                elapsed,
            };
            return relay(state, request, answer, admitted);
        }
        let error = match outcome {
            Outcome::NoAnswer(Failure::Timeout) => ProxyError::Timeout {
                backend: backend.name.clone(),
                timeout_ms: timeout.as_millis(),
            },
            Outcome::NoAnswer(Failure::Denied) => ProxyError::Unreachable {
                backend: backend.name.clone(),
                detail: "its host name resolves only to addresses in admin.denied_networks (the registration policy); no connection was made".to_owned(),
            },
            _ => ProxyError::Unreachable {
                backend: backend.name.clone(),
                detail: outcome.error_type().to_owned(),
            },
        };
        return answer_error(state, request, Some(&backend), error);
    }
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
/// stale pooled connection is worth a second go on the same host). `key`
/// is the request's hashed key under the `hash` strategy.
fn choose_backend(
    state: &ProxyState,
    tried: &[Arc<Backend>],
    key: Option<u64>,
) -> Result<InFlight, ProxyError> {
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
            .pick_keyed(&snapshot, key, |b| untried(b) && has_room(b))
            .or_else(|| state.balancer.pick_keyed(&snapshot, key, has_room));
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
    let span = observability::telemetry::tracing_enabled().then(tracing::Span::current);
    let on_end = move |end: BodyEnd| {
        let _entered = span.as_ref().map(tracing::Span::enter);
        let state = &admitted.0;
        let failure = match &end {
            BodyEnd::Stalled(_) => Some(Failure::Timeout),
            BodyEnd::Broken(_) => Some(Failure::Reset),
            BodyEnd::Complete | BodyEnd::Abandoned => None,
        };
        let outcome = match failure {
            Some(failure) => Outcome::CutOff { status, failure },
            None => Outcome::Answered(status),
        };
        if let Some(failure) = failure {
            tracing::warn!(
                backend = %backend.0.name,
                request_id = request.request_id.to_str().unwrap_or(""),
                "upstream response body {}: {end:?}",
                failure.as_str()
            );
        }
        record_attempt(state, &backend.0, &request.method, &outcome, elapsed);
        let error = failure.map(|f| match f {
            Failure::Timeout => "upstream_body_timeout",
            _ => "upstream_body_broken",
        });
        book(state, &request, status, &backend.0.name, error);
    };
    let body = Relay::new(body, state.body_idle_timeout, on_end);
    let mut response = Response::new(Body::stream(body));
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
