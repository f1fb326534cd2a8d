//! One attempt at a backend once it is under way: waiting for its answer
//! within its time limits ([`await_answer`]) and, when there is none,
//! telling how it ended and by whose fault ([`judge`]). What follows
//! (relay, retry, an error answer) is the proxy's decision.
//!
//! Depends on `upstream`, `client_body`, `outcome` and `backends`.

use std::pin::Pin;
use std::time::{Duration, Instant};

use http::Method;
use observability::escape::Escaped;

use super::client_body::ClientBody;
use crate::backends::{Backend, State};
use crate::outcome::{ClientFault, Failure, Outcome};
use crate::upstream::{ResponseBody, UpstreamError};

/// A client span for one upstream attempt; retries show as siblings.
pub(crate) fn client_span(
    method: &Method,
    path_and_query: &str,
    backend: &Backend,
    attempt: usize,
) -> tracing::Span {
    if !observability::telemetry::tracing_enabled() {
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

/// What the log lines about an attempt name.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    pub backend: &'a Backend,
    pub request_id: &'a str,
    /// 1 for the first attempt.
    pub attempt: usize,
    pub timeout: Duration,
}

/// How often an attempt that is still waiting looks at its backend's state.
const HEALTH_WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Waits for one attempt's response head. The per-try `timeout` counts from
/// when the whole request had been sent: a slow client's upload is bounded
/// by its own idle timeout, not charged to the backend. With
/// `watch_health`, the wait is abandoned once the backend is marked `down`
/// or `ejected`, so a hung backend costs a retried request its detection
/// time, not the whole per-try timeout. The check runs on the timer the
/// timeout needs anyway: an answer within the first interval costs nothing
/// more.
pub(crate) async fn await_answer<F>(
    mut send: Pin<&mut F>,
    backend: &Backend,
    body: &ClientBody,
    attempt_started: Instant,
    timeout: Duration,
    watch_health: bool,
) -> Result<Result<http::Response<ResponseBody>, UpstreamError>, Failure>
where
    F: std::future::Future<Output = Result<http::Response<ResponseBody>, UpstreamError>>,
{
    // The deadline, once the whole request was sent, and when to look
    // again: at the deadline, or sooner to watch the backend's state or the
    // upload's end.
    let next_check = |now: Instant| {
        let deadline = body.sent_by(attempt_started).map(|sent| sent + timeout);
        let soon = now + HEALTH_WATCH_INTERVAL;
        let wake = match deadline {
            Some(d) if watch_health => d.min(soon),
            Some(d) => d,
            None => soon,
        };
        (wake, deadline)
    };
    let (wake, _) = next_check(attempt_started);
    let timer = tokio::time::sleep_until(wake.into());
    tokio::pin!(timer);
    loop {
        tokio::select! {
            biased;
            sent = send.as_mut() => return Ok(sent),
            () = &mut timer => {}
        }
        let now = Instant::now();
        let (wake, deadline) = next_check(now);
        if deadline.is_some_and(|d| now >= d) {
            return Err(Failure::Timeout);
        }
        if watch_health && matches!(backend.health.state(), State::Down | State::Ejected) {
            return Err(Failure::Unhealthy);
        }
        timer.as_mut().reset(wake.into());
    }
}

/// The answer the attempt got, or its [`Outcome`] when it got none (a
/// backend's failure, logged here, or the client's). An upstream error
/// while the client's body had failed is the client's doing, whatever the
/// upstream client made of it.
pub(crate) fn judge(
    sent: Result<Result<http::Response<ResponseBody>, UpstreamError>, Failure>,
    body: &ClientBody,
    context: &Context<'_>,
) -> Result<http::Response<ResponseBody>, Outcome> {
    let Context {
        backend,
        request_id,
        attempt,
        timeout,
    } = *context;
    let e = match sent {
        Ok(Ok(response)) => return Ok(response),
        Ok(Err(e)) => e,
        Err(Failure::Unhealthy) => {
            tracing::warn!(
                backend = %backend.name,
                request_id,
                attempt,
                "backend marked {} while the attempt waited for its answer",
                backend.health.state().as_str()
            );
            return Err(Outcome::NoAnswer(Failure::Unhealthy));
        }
        Err(failure) => {
            tracing::warn!(
                backend = %backend.name,
                request_id,
                attempt,
                "upstream timeout after {} ms",
                timeout.as_millis()
            );
            return Err(Outcome::NoAnswer(failure));
        }
    };
    if let Some(fault) = body.fault() {
        return Err(Outcome::Client(fault.clone()));
    }
    if e.is_request_body() {
        return Err(Outcome::Client(ClientFault::Malformed(e.to_string())));
    }
    tracing::warn!(
        backend = %backend.name,
        upstream = %backend.base.authority,
        request_id,
        attempt,
        "upstream error: {}",
        Escaped(&e)
    );
    Err(Outcome::NoAnswer(
        if crate::upstream::resolve::is_denied(&e) {
            Failure::Denied
        } else if e.is_connect() {
            Failure::Connect
        } else {
            Failure::Reset
        },
    ))
}

/// Puts what [`judge`] found on the attempt's client span.
pub(crate) fn annotate(
    span: &tracing::Span,
    judged: &Result<http::Response<ResponseBody>, Outcome>,
) {
    match judged {
        Ok(r) => observability::telemetry::record_status(span, r.status().as_u16()),
        Err(Outcome::Client(_)) => {
            span.record("error.type", "client_body");
            span.record("otel.status_code", "ERROR");
        }
        Err(outcome) => {
            span.record("error.type", outcome.error_type());
            span.record("otel.status_code", "ERROR");
        }
    }
}
