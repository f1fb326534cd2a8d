//! A backend's latency estimate for the `peak_ewma` strategy: a
//! peak-sensitive, exponentially weighted moving average of its attempts'
//! latencies, kept in two atomics so the request path reads and updates it
//! without locks (the estimator of Finagle's and tower's peak EWMA).
//!
//! - An answer slower than the current estimate raises it at once to that
//!   latency (the peak).
//! - A faster answer pulls it down, weighted by the time since the last
//!   update: `estimate × w + latency × (1 − w)` with
//!   `w = exp(−elapsed / decay)`.
//! - Between updates the estimate decays towards zero with the same weight,
//!   as if a zero-latency answer had come in; so a backend that stopped
//!   getting traffic because it was slow is tried again after a while,
//!   instead of being judged forever by its last answer.
//! - A new or re-admitted backend is neutral until its first answer, which
//!   then becomes its estimate outright (a blend with an assumed value
//!   would keep a fast backend looking as slow as the assumption for a
//!   whole decay time). A neutral estimate reads as the configured
//!   `default_rtt` (decaying from the moment it became neutral); the
//!   strategy compares it with the other candidate's (see
//!   `balancer::peak_ewma`).
//!
//! Time is passed in as nanoseconds since a process-wide epoch
//! ([`now_nanos`]), so tests can drive it; the estimator itself never reads
//! a clock. Depends on nothing else in the crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Nanoseconds since the first call in this process: the time base of
/// every [`LatencyEstimate`]. One monotonic clock read.
pub fn now_nanos() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Marks an estimate as neutral (no answer since it was reset); a real
/// estimate is never negative.
const NEUTRAL: f64 = -1.0;

/// The settings an estimate is read and updated with, in the units the
/// arithmetic wants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decay {
    /// `1 / decay` in 1/ns.
    inverse_ns: f64,
    /// What a neutral estimate reads as, in ns.
    default_ns: f64,
}

impl Decay {
    /// Decays with time constant `decay`; neutral estimates read as
    /// `default_rtt`.
    pub fn new(decay: Duration, default_rtt: Duration) -> Self {
        Decay {
            inverse_ns: 1.0 / (decay.as_nanos().max(1) as f64),
            default_ns: default_rtt.as_nanos() as f64,
        }
    }

    /// The weight the old estimate keeps after `elapsed` ns.
    fn weight(&self, elapsed_ns: u64) -> f64 {
        (-(elapsed_ns as f64) * self.inverse_ns).exp()
    }
}

/// One backend's estimate: the value (f64 bits, ns) and when it was last
/// set (ns since the epoch of [`now_nanos`]).
///
/// Updates are a load, a computation and two stores, not one atomic step:
/// two answers booked at the same instant may lose one of them, and a
/// reader may pair a new value with the old time. Either only shifts one
/// estimate by one sample, which the next answer corrects; a lock or a CAS
/// loop on the request path would cost more than that is worth.
#[derive(Debug)]
pub struct LatencyEstimate {
    value_bits: AtomicU64,
    stamp_ns: AtomicU64,
}

impl Default for LatencyEstimate {
    /// Neutral from now.
    fn default() -> Self {
        let estimate = LatencyEstimate {
            value_bits: AtomicU64::new(NEUTRAL.to_bits()),
            stamp_ns: AtomicU64::new(0),
        };
        estimate.reset(now_nanos());
        estimate
    }
}

impl LatencyEstimate {
    /// Forgets every answer: neutral from `now`.
    pub fn reset(&self, now: u64) {
        self.value_bits.store(NEUTRAL.to_bits(), Ordering::Relaxed);
        self.stamp_ns.store(now, Ordering::Relaxed);
    }

    /// The value last set (the default when neutral), the weight it keeps
    /// at `now`, and whether it came from an answer: one load of each
    /// atomic, so the three agree.
    fn load(&self, now: u64, decay: &Decay) -> (f64, f64, bool) {
        let value = f64::from_bits(self.value_bits.load(Ordering::Relaxed));
        let stamp = self.stamp_ns.load(Ordering::Relaxed);
        let known = value >= 0.0;
        let value = if known { value } else { decay.default_ns };
        (value, decay.weight(now.saturating_sub(stamp)), known)
    }

    /// The estimate at `now`, in ns: the last value, decayed towards zero
    /// since it was set.
    pub fn read(&self, now: u64, decay: &Decay) -> f64 {
        self.read_known(now, decay).0
    }

    /// [`read`](Self::read), and whether it comes from an answer (false:
    /// only the neutral assumption, no answer since the last reset).
    pub fn read_known(&self, now: u64, decay: &Decay) -> (f64, bool) {
        let (value, weight, known) = self.load(now, decay);
        (value * weight, known)
    }

    /// Takes in an answer that took `latency_ns`, at `now`. The first one
    /// after a reset replaces the neutral assumption.
    pub fn observe(&self, latency_ns: f64, now: u64, decay: &Decay) {
        let (value, weight, known) = self.load(now, decay);
        let next = if !known || latency_ns > value * weight {
            latency_ns
        } else {
            value * weight + latency_ns * (1.0 - weight)
        };
        self.value_bits.store(next.to_bits(), Ordering::Relaxed);
        self.stamp_ns.store(now, Ordering::Relaxed);
    }

    /// Whether no answer has been taken in since the last reset.
    pub fn is_neutral(&self) -> bool {
        f64::from_bits(self.value_bits.load(Ordering::Relaxed)) < 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e6;
    const SEC: u64 = 1_000_000_000;

    fn decay() -> Decay {
        Decay::new(Duration::from_secs(10), Duration::from_millis(1))
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= want * 1e-6 + 1e-3
    }

    #[test]
    fn starts_neutral_at_the_default() {
        let e = LatencyEstimate::default();
        e.reset(5 * SEC);
        assert!(e.is_neutral());
        assert!(close(e.read(5 * SEC, &decay()), 1.0 * MS));
    }

    #[test]
    fn the_first_answer_replaces_the_neutral_assumption() {
        let d = decay();
        let e = LatencyEstimate::default();
        e.reset(0);
        // Faster than the 1 ms assumed: taken as it is, not blended.
        e.observe(0.06 * MS, SEC / 1000, &d);
        assert!(close(e.read(SEC / 1000, &d), 0.06 * MS));
        assert!(!e.is_neutral());
        assert!(e.read_known(SEC / 1000, &d).1);
        e.reset(SEC);
        assert_eq!(e.read_known(SEC, &d), (1.0 * MS, false));
    }

    #[test]
    fn a_slower_answer_raises_it_at_once() {
        let d = decay();
        let e = LatencyEstimate::default();
        e.reset(0);
        e.observe(1.0 * MS, SEC / 1000, &d);
        e.observe(25.0 * MS, SEC / 100, &d);
        assert!(close(e.read(SEC / 100, &d), 25.0 * MS));
        assert!(!e.is_neutral());
    }

    #[test]
    fn faster_answers_pull_it_down_over_the_decay_time() {
        let d = decay();
        let e = LatencyEstimate::default();
        e.reset(0);
        e.observe(100.0 * MS, 0, &d);
        // A 1 ms answer every 100 ms for one decay time (10 s): the excess
        // over 1 ms falls to 1/e of what it was.
        let mut now = 0;
        for _ in 0..100 {
            now += SEC / 10;
            e.observe(1.0 * MS, now, &d);
        }
        let want = 1.0 * MS + 99.0 * MS * (-1.0f64).exp();
        assert!(close(e.read(now, &d), want), "{}", e.read(now, &d));
        // One answer right after the peak barely moves it: the weight is
        // by time, not by count.
        e.observe(100.0 * MS, now, &d);
        e.observe(1.0 * MS, now + SEC / 1000, &d);
        assert!(e.read(now + SEC / 1000, &d) > 99.0 * MS);
    }

    #[test]
    fn an_idle_estimate_decays_towards_zero() {
        let d = decay();
        let e = LatencyEstimate::default();
        e.reset(0);
        e.observe(25.0 * MS, 0, &d);
        assert!(close(e.read(10 * SEC, &d), 25.0 * MS * (-1.0f64).exp()));
        // A neutral one too, from when it became neutral.
        e.reset(10 * SEC);
        assert!(close(e.read(20 * SEC, &d), 1.0 * MS * (-1.0f64).exp()));
    }

    #[test]
    fn reset_forgets_the_answers() {
        let d = decay();
        let e = LatencyEstimate::default();
        e.observe(500.0 * MS, 0, &d);
        e.reset(SEC);
        assert!(e.is_neutral());
        assert!(close(e.read(SEC, &d), 1.0 * MS));
        // A neutral estimate's first answer counts like any other: slower
        // than the default, so it is the estimate.
        e.observe(3.0 * MS, SEC, &d);
        assert!(close(e.read(SEC, &d), 3.0 * MS));
    }
}
