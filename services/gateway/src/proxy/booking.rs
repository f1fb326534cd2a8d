//! Booking: what is written down about each attempt and each request, and
//! where. An attempt's [`Outcome`] goes, from [`record_attempt`] alone, to
//! its backend's stats windows and counters, the metrics, outlier
//! detection and the balancer's latency estimate; a request, once its answer has ended, to the gateway's stats
//! windows and the access log ([`book`]).
//!
//! Depends on `backends`, `outcome` and the proxy's shared state.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use observability::escape::escape_str;
use observability::stats::Sample;

use super::{ProxyState, RequestInfo};
use crate::backends::Backend;
use crate::outcome::{Fault, Outcome};

/// Books one attempt on the backend: its stats windows and counters, the
/// metrics, outlier detection and what the balancer learns (the latency
/// estimate of `peak_ewma`), all from its one [`Outcome`].
pub(super) fn record_attempt(
    state: &ProxyState,
    backend: &Arc<Backend>,
    method: &Method,
    outcome: &Outcome,
    elapsed: Duration,
) {
    if state.record_stats {
        backend.stats.record(Sample {
            status: outcome.answered(),
            latency: elapsed,
        });
    }
    if outcome.fault() == Some(Fault::Backend) {
        backend.failures.fetch_add(1, Ordering::Relaxed);
    }
    if state.record_metrics {
        state
            .metrics
            .upstream_call(&backend.name, method, outcome, elapsed);
    }
    state.outlier.report(backend, outcome);
    state.balancer.observe(backend, outcome, elapsed);
}

/// Books a request answered with `status`: the gateway's stats windows and
/// the access log (each when switched on). `error` names how an answer
/// whose head was sent failed before its end; such a request counts as
/// unanswered in the stats.
pub(super) fn book(
    state: &ProxyState,
    request: &RequestInfo,
    status: StatusCode,
    backend: &str,
    error: Option<&str>,
) {
    let elapsed = request.started.elapsed();
    if state.record_stats {
        state.stats.record(Sample {
            status: error.is_none().then_some(status.as_u16()),
            latency: elapsed,
        });
    }
    if state.access_log {
        access_log(request, status.as_u16(), backend, elapsed, error);
    }
}

/// The access log's target, for hand-formatted lines.
static ACCESS: observability::log_line::Target =
    observability::log_line::Target::new(|| tracing::info!(target: "access", "probe"));

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
    // `observability::log_line`): no trace export, so no trace id either.
    if let Some(line) = observability::log_line::Line::start(&ACCESS, "request") {
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
    let trace_id =
        observability::telemetry::trace_id(&tracing::Span::current()).unwrap_or_default();
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
