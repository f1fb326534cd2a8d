//! Deciding whether a failed attempt may be tried again, and the retry
//! budget that keeps a failing fleet from being hit by a retry storm.
//!
//! The budget allows, over the last ten seconds, `budget_ratio` retries per
//! request plus `budget_min_per_second` retries per second. It is kept in
//! ten one-second buckets of atomic counters: recording is lock-free, and
//! the (rare) check sums the buckets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::Method;

use crate::config::RetrySettings;

const BUCKETS: usize = 10;

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
    /// A response with a status listed in `retry.on_statuses`.
    Status(u16),
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
            Failure::Status(_) => "status",
        }
    }
}

/// Methods safe to send twice.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Whether this failure of this method may be retried at all. A connect
/// failure (or refusal) sent nothing, so any method may go again; anything
/// later only for idempotent methods.
pub fn retryable(method: &Method, failure: Failure) -> bool {
    matches!(failure, Failure::Connect | Failure::Denied) || is_idempotent(method)
}

/// The sliding retry budget.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_per_second: u64,
    started: Instant,
    buckets: [Bucket; BUCKETS],
}

#[derive(Debug, Default)]
struct Bucket {
    second: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl RetryBudget {
    /// A budget from the `retry` settings.
    pub fn new(settings: &RetrySettings) -> Self {
        RetryBudget {
            ratio: settings.budget_ratio,
            min_per_second: u64::from(settings.budget_min_per_second),
            started: Instant::now(),
            buckets: Default::default(),
        }
    }

    fn bucket(&self) -> &Bucket {
        let second = self.started.elapsed().as_secs();
        let bucket = &self.buckets[(second % BUCKETS as u64) as usize];
        let seen = bucket.second.load(Ordering::Relaxed);
        if seen != second
            && bucket
                .second
                .compare_exchange(seen, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            bucket.requests.store(0, Ordering::Relaxed);
            bucket.retries.store(0, Ordering::Relaxed);
        }
        bucket
    }

    /// Counts a request (once, however many attempts it makes).
    pub fn record_request(&self) {
        self.bucket().requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget if there is room.
    pub fn try_retry(&self) -> bool {
        let now = self.started.elapsed().as_secs();
        let (mut requests, mut retries) = (0u64, 0u64);
        for b in &self.buckets {
            if now.saturating_sub(b.second.load(Ordering::Relaxed)) < BUCKETS as u64 {
                requests += b.requests.load(Ordering::Relaxed);
                retries += b.retries.load(Ordering::Relaxed);
            }
        }
        let allowed = (requests as f64 * self.ratio) as u64 + self.min_per_second * BUCKETS as u64;
        if retries >= allowed {
            return false;
        }
        self.bucket().retries.fetch_add(1, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_retries() {
        assert!(retryable(&Method::POST, Failure::Connect));
        assert!(retryable(&Method::POST, Failure::Denied));
        assert!(!retryable(&Method::POST, Failure::Reset));
        assert!(!retryable(&Method::PATCH, Failure::Timeout));
        assert!(retryable(&Method::GET, Failure::Timeout));
        assert!(retryable(&Method::PUT, Failure::Status(503)));
    }

    #[test]
    fn budget_is_a_ratio_plus_a_floor() {
        let settings = RetrySettings {
            budget_ratio: 0.5,
            budget_min_per_second: 1,
            ..RetrySettings::default()
        };
        let budget = RetryBudget::new(&settings);
        // Floor: 1 per second over 10 s = 10 retries with no traffic at all.
        let floor = (0..100).filter(|_| budget.try_retry()).count();
        assert_eq!(floor, 10);
        for _ in 0..100 {
            budget.record_request();
        }
        // Plus half of the 100 requests.
        let more = (0..100).filter(|_| budget.try_retry()).count();
        assert_eq!(more, 50);
    }
}
