//! How one attempt at a backend ended, and whose fault that was.
//!
//! [`Outcome`] is the one value everything that learns from an attempt
//! reads: the backend's stats windows and counters, the metrics and
//! outlier detection (all fed by `proxy::booking::record_attempt`), and the
//! retry rules (asked by the proxy's loop with the same value). A client's broken, stalled or
//! oversized body ([`ClientFault`]) is the client's fault and is charged to
//! no backend; a connection that failed, an answer that never came or broke
//! off ([`Failure`]), or a 5xx answer is the backend's.
//!
//! At the bottom of the crate with the settings: depends on nothing else
//! in it.

use std::time::Duration;

use http::StatusCode;

/// Who caused how an attempt ended. (What the gateway answers by itself,
/// with no attempt made, such as no backend to send to or a limit reached,
/// is an `errors::ProxyError`, not an outcome.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client: its body, or its going away.
    Client,
    /// The backend: no connection, no answer, a broken answer, or a 5xx.
    Backend,
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The TCP connection could not be made; nothing was sent.
    Connect,
    /// The backend's host name resolves only to addresses in
    /// `admin.denied_networks`: no connection was made, nothing was sent.
    Denied,
    /// The connection broke before a response head arrived (including a
    /// reused pooled connection the backend had closed: the request may
    /// have been acted on, so only idempotent ones go again), or the
    /// answer was not valid HTTP/1.1.
    Reset,
    /// No response head within the per-try timeout.
    Timeout,
    /// The backend was marked `down` or `ejected` while the attempt waited
    /// for its answer: an idempotent request goes elsewhere at once rather
    /// than waiting out the per-try timeout.
    Unhealthy,
}

impl Failure {
    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Denied => "denied",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::Unhealthy => "unhealthy",
        }
    }
}

/// What the client did wrong with its body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientFault {
    /// The body's framing is broken (a bad chunk, a length not kept).
    #[error("the request body is malformed: {0}")]
    Malformed(String),
    /// More than `limits.max_body_bytes`.
    #[error("the request body is larger than {0} bytes (limits.max_body_bytes)")]
    TooLarge(u64),
    /// No bytes for `limits.body_idle_timeout`, or not all of a buffered
    /// body within `limits.body_read_timeout`.
    #[error("the request body did not arrive in time ({key}: {} ms)", .after.as_millis())]
    Stalled {
        /// Which limit ran out.
        key: &'static str,
        /// Its value.
        after: Duration,
    },
    /// The client closed its connection before the end of its body.
    #[error("the client closed the connection before the end of its request body")]
    Abandoned,
}

/// How one attempt at a backend ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered with this status, and the whole body arrived.
    Answered(StatusCode),
    /// No answer head: see the [`Failure`].
    NoAnswer(Failure),
    /// An answer whose body broke off or stalled after its head had been
    /// passed on (`Failure::Reset` or `Failure::Timeout`).
    CutOff {
        /// The head's status.
        status: StatusCode,
        /// How the body ended.
        failure: Failure,
    },
    /// The client's body failed while the attempt was under way.
    Client(ClientFault),
}

impl Outcome {
    /// Who is to blame, if anyone: 5xx answers and failures are the
    /// backend's, a failed body the client's.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            Outcome::Answered(status) if status.is_server_error() => Some(Fault::Backend),
            Outcome::Answered(_) => None,
            Outcome::NoAnswer(_) | Outcome::CutOff { .. } => Some(Fault::Backend),
            Outcome::Client(_) => Some(Fault::Client),
        }
    }

    /// The status of the head the backend sent, if it sent one.
    pub fn head_status(&self) -> Option<StatusCode> {
        match self {
            Outcome::Answered(status) | Outcome::CutOff { status, .. } => Some(*status),
            Outcome::NoAnswer(_) | Outcome::Client(_) => None,
        }
    }

    /// The status of a whole answer: what the stats windows count (an
    /// answer cut off is no answer, whatever its head said).
    pub fn answered(&self) -> Option<u16> {
        match self {
            Outcome::Answered(status) => Some(status.as_u16()),
            _ => None,
        }
    }

    /// What went wrong on the backend's side, for the `error_type` label
    /// and the access log; `""` for an answer.
    pub fn error_type(&self) -> &'static str {
        match self {
            Outcome::NoAnswer(f) | Outcome::CutOff { failure: f, .. } => f.as_str(),
            Outcome::Answered(_) | Outcome::Client(_) => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_and_figures_follow_the_outcome() {
        let ok = Outcome::Answered(StatusCode::OK);
        assert_eq!(
            (ok.fault(), ok.answered(), ok.error_type()),
            (None, Some(200), "")
        );
        let five = Outcome::Answered(StatusCode::BAD_GATEWAY);
        assert_eq!(five.fault(), Some(Fault::Backend));
        let cut = Outcome::CutOff {
            status: StatusCode::OK,
            failure: Failure::Timeout,
        };
        assert_eq!(
            (
                cut.fault(),
                cut.answered(),
                cut.head_status(),
                cut.error_type()
            ),
            (Some(Fault::Backend), None, Some(StatusCode::OK), "timeout")
        );
        let client = Outcome::Client(ClientFault::Abandoned);
        assert_eq!(
            (client.fault(), client.error_type()),
            (Some(Fault::Client), "")
        );
    }
}
