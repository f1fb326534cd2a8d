//! Deciding whether a failed attempt may be tried again, and the retry
//! budget that keeps a failing fleet from being hit by a retry storm.
//!
//! The budget allows, over the last ten seconds, `budget_ratio` retries per
//! request plus `budget_min_per_second` retries per second. It is kept in
//! ten one-second buckets of atomic counters: recording is lock-free, and
//! the (rare) check sums the buckets.
//!
//! Depends on `config` and `outcome`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::Method;

use crate::config::RetrySettings;
use crate::outcome::{Failure, Outcome};

const BUCKETS: usize = 10;

/// Methods safe to send twice.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Whether an attempt that ended so may be tried again at all: one whose
/// connection failed (or was refused) sent nothing, so any method may go
/// again; anything later (including an answer with a status listed in
/// `retry.on_statuses`) only for idempotent methods. A client's fault is
/// never retried.
pub fn retryable(method: &Method, outcome: &Outcome) -> bool {
    match outcome {
        Outcome::NoAnswer(Failure::Connect | Failure::Denied) => true,
        Outcome::Client(_) => false,
        _ => is_idempotent(method),
    }
}

/// Why a retry happened, for `gateway_retries_total{reason}`: how the
/// attempt failed, or `status` for an answer with a retried status.
pub fn reason(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Answered(_) => "status",
        other => other.error_type(),
    }
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
        let no_answer = |f| Outcome::NoAnswer(f);
        assert!(retryable(&Method::POST, &no_answer(Failure::Connect)));
        assert!(retryable(&Method::POST, &no_answer(Failure::Denied)));
        assert!(!retryable(&Method::POST, &no_answer(Failure::Reset)));
        assert!(!retryable(&Method::PATCH, &no_answer(Failure::Timeout)));
        assert!(retryable(&Method::GET, &no_answer(Failure::Timeout)));
        let unavailable = Outcome::Answered(http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(retryable(&Method::PUT, &unavailable));
        assert_eq!(reason(&unavailable), "status");
        let client = Outcome::Client(crate::outcome::ClientFault::Abandoned);
        assert!(!retryable(&Method::GET, &client));
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
