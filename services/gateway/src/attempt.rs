//! One attempt at a backend once it is under way: waiting for its answer
//! within its time limits ([`await_answer`]) and telling how it ended and
//! by whose fault ([`classify`]). What follows (relay, retry, an error
//! answer) is the proxy's decision.
//!
//! Depends on `upstream`, `request_body`, `retry`, `registry` and `health`.

use std::pin::Pin;
use std::time::{Duration, Instant};

use observability::escape::Escaped;

use crate::health::State;
use crate::registry::Backend;
use crate::request_body::{ClientFault, RequestBody};
use crate::retry::Failure;
use crate::upstream::{ResponseBody, UpstreamError};

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
    body: &RequestBody,
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

/// How one attempt ended.
pub(crate) enum Attempt {
    /// An answer to pass on to the client.
    Answered(http::Response<ResponseBody>),
    /// An answer whose status is listed in `retry.on_statuses`: retried
    /// when possible, else passed on.
    RetryableStatus(http::Response<ResponseBody>),
    /// No answer, by the backend's fault.
    Failed(Failure),
    /// No answer, because the client's body broke, stalled or ran over.
    Client(ClientFault),
}

/// Turns the client's result into an [`Attempt`], logging the backend's
/// failures. An upstream error while the client's body had failed is the
/// client's doing, whatever the upstream client made of it.
pub(crate) fn classify(
    sent: Result<Result<http::Response<ResponseBody>, UpstreamError>, Failure>,
    body: &RequestBody,
    retry_statuses: &[u16],
    context: &Context<'_>,
) -> Attempt {
    let Context {
        backend,
        request_id,
        attempt,
        timeout,
    } = *context;
    let e = match sent {
        Ok(Ok(response)) if retry_statuses.contains(&response.status().as_u16()) => {
            return Attempt::RetryableStatus(response)
        }
        Ok(Ok(response)) => return Attempt::Answered(response),
        Ok(Err(e)) => e,
        Err(Failure::Unhealthy) => {
            tracing::warn!(
                backend = %backend.name,
                request_id,
                attempt,
                "backend marked {} while the attempt waited for its answer",
                backend.health.state().as_str()
            );
            return Attempt::Failed(Failure::Unhealthy);
        }
        Err(failure) => {
            tracing::warn!(
                backend = %backend.name,
                request_id,
                attempt,
                "upstream timeout after {} ms",
                timeout.as_millis()
            );
            return Attempt::Failed(failure);
        }
    };
    if let Some(fault) = body.fault() {
        return Attempt::Client(fault.clone());
    }
    if e.is_request_body() {
        return Attempt::Client(ClientFault::Malformed(e.to_string()));
    }
    tracing::warn!(
        backend = %backend.name,
        upstream = %backend.base.authority,
        request_id,
        attempt,
        "upstream error: {}",
        Escaped(&e)
    );
    Attempt::Failed(if crate::upstream::resolve::is_denied(&e) {
        Failure::Denied
    } else if e.is_connect() {
        Failure::Connect
    } else {
        Failure::Reset
    })
}

/// Puts the attempt's outcome on its client span.
pub(crate) fn annotate(span: &tracing::Span, attempt: &Attempt) {
    match attempt {
        Attempt::Answered(r) | Attempt::RetryableStatus(r) => {
            observability::telemetry::record_status(span, r.status().as_u16())
        }
        Attempt::Failed(f) => {
            span.record("error.type", f.as_str());
            span.record("otel.status_code", "ERROR");
        }
        Attempt::Client(_) => {
            span.record("error.type", "client_body");
            span.record("otel.status_code", "ERROR");
        }
    }
}
