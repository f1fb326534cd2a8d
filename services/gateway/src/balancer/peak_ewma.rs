//! The `peak_ewma` strategy: power of two random choices over
//! `latency estimate × (requests in flight + 1)`, as Finagle's and
//! Linkerd's (tower's) peak-EWMA balancers do.
//!
//! `least_outstanding` only sees load: at light load every backend has
//! nothing in flight and it picks at random, slow or not. Here the latency
//! estimate ([`crate::backends::latency`]) tells a backend that answers in
//! 25 ms from one that answers in 1 ms even when nothing is in flight,
//! while the in-flight factor still spreads a burst.
//!
//! Each attempt's latency (to the response head) is booked into its
//! backend's estimate when the attempt is booked. A failed one (no answer,
//! a broken answer, a 5xx) counts as twice the backend's current estimate
//! (at most `penalty`) or what it took, whichever is more: a backend that
//! fails fast does not attract traffic, and one that keeps failing looks
//! slower with every failure, but a single 5xx, which a client may be able
//! to provoke, only makes it look twice as slow for a while (about
//! `decay × ln 2` at light load) instead of taking it out for a minute. A backend with no answer yet (new,
//! or back `up`) is never costed as slower than the candidate it is
//! compared with: its neutral estimate reads as `default_rtt` or the other
//! candidate's estimate, whichever is lower, so it gets its share at once
//! whatever the others' latency, and its first answer sets its estimate.
//! A pick reads the clock once and two estimates; an update reads the
//! clock once and writes two atomics.
//!
//! Depends on `backends`, `outcome` and `config`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::backends::latency::Decay;
use crate::backends::Backend;
use crate::config::PeakEwmaSettings;
use crate::outcome::{Fault, Outcome};

/// How much slower each failed attempt makes a backend look.
const FAILURE_FACTOR: f64 = 2.0;

/// The strategy's settings, ready for the arithmetic.
#[derive(Debug, Clone, Copy)]
pub struct PeakEwma {
    decay: Decay,
    penalty_ns: f64,
}

impl PeakEwma {
    /// From the `balancer.peak_ewma` section.
    pub fn new(settings: &PeakEwmaSettings) -> Self {
        PeakEwma {
            decay: Decay::new(settings.decay, settings.default_rtt),
            penalty_ns: settings.penalty.as_nanos() as f64,
        }
    }

    /// What sending one more request to `backend` is expected to cost,
    /// given its latency `estimate`: the estimate times its requests in
    /// flight plus one.
    pub fn cost(&self, backend: &Backend, estimate: f64) -> f64 {
        estimate * (backend.active.load(Ordering::Relaxed) as f64 + 1.0)
    }

    /// The cheaper of two different backends chosen at random (ties to the
    /// first, itself random). `backends` has at least two.
    pub fn pick<'a>(&self, backends: &'a [Arc<Backend>], now: u64) -> Option<&'a Arc<Backend>> {
        let n = backends.len();
        let a = fastrand::usize(..n);
        let b = (a + 1 + fastrand::usize(..n - 1)) % n;
        let read = |i: usize| backends[i].health.latency.read_known(now, &self.decay);
        let (ea, eb) = neutral_against(read(a), read(b));
        let cheaper = self.cost(&backends[b], eb) < self.cost(&backends[a], ea);
        backends.get(if cheaper { b } else { a })
    }

    /// Books an attempt that ended with `outcome` after `elapsed`, at
    /// `now`. The client's faults say nothing about the backend and are
    /// left out.
    pub fn observe(&self, backend: &Backend, outcome: &Outcome, elapsed: Duration, now: u64) {
        let latency = elapsed.as_nanos() as f64;
        let latency = match outcome.fault() {
            None => latency,
            Some(Fault::Backend) => {
                let current = backend.health.latency.read(now, &self.decay);
                latency.max((FAILURE_FACTOR * current).min(self.penalty_ns))
            }
            Some(Fault::Client) => return,
        };
        backend.health.latency.observe(latency, now, &self.decay);
    }
}

/// Two candidates' estimates, each `(value, known)`: a neutral one (not
/// known) reads as no more than the other's known value, so a backend with
/// no answer yet competes as an equal of the one it is compared with
/// (then requests in flight decide) instead of as the `default_rtt`
/// assumption, which on a fast network would look slower than every
/// backend and keep it idle for `decay × ln(default_rtt / their latency)`.
fn neutral_against((a, a_known): (f64, bool), (b, b_known): (f64, bool)) -> (f64, f64) {
    match (a_known, b_known) {
        (false, true) => (a.min(b), b),
        (true, false) => (a, b.min(a)),
        _ => (a, b),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::balancer::tests::registry;
    use crate::outcome::Failure;
    use http::StatusCode;

    const MS: u64 = 1_000_000;

    fn ewma() -> PeakEwma {
        PeakEwma::new(&PeakEwmaSettings::default())
    }

    fn ok() -> Outcome {
        Outcome::Answered(StatusCode::OK)
    }

    #[test]
    fn each_failure_doubles_the_estimate_up_to_the_penalty() {
        let r = registry(&[1]);
        let snap = r.snapshot();
        let b = &snap.eligible[0];
        let e = ewma();
        let read = |now| b.health.latency.read(now, &e.decay) / MS as f64;
        e.observe(b, &ok(), Duration::from_millis(3), 0);
        e.observe(
            b,
            &Outcome::NoAnswer(Failure::Connect),
            Duration::from_millis(2),
            0,
        );
        assert!((read(0) - 6.0).abs() < 1e-6, "{}", read(0));
        e.observe(
            b,
            &Outcome::Answered(StatusCode::BAD_GATEWAY),
            Duration::from_millis(1),
            0,
        );
        assert!((read(0) - 12.0).abs() < 1e-6, "{}", read(0));
        // Capped by the penalty (1 s)...
        e.observe(b, &ok(), Duration::from_millis(800), 0);
        e.observe(
            b,
            &Outcome::Answered(StatusCode::BAD_GATEWAY),
            Duration::from_millis(1),
            0,
        );
        assert!((read(0) - 1000.0).abs() < 1e-6, "{}", read(0));
        // ...but a timeout longer than that counts as what it took.
        e.observe(
            b,
            &Outcome::NoAnswer(Failure::Timeout),
            Duration::from_secs(5),
            0,
        );
        assert!((read(0) - 5000.0).abs() < 1e-6);
        // A failure before any answer doubles the neutral assumption.
        b.health.latency.reset(0);
        e.observe(
            b,
            &Outcome::NoAnswer(Failure::Reset),
            Duration::from_micros(50),
            0,
        );
        assert!((read(0) - 2.0).abs() < 1e-6, "{}", read(0));
        b.health.latency.reset(0);
        let fault = crate::outcome::ClientFault::Abandoned;
        e.observe(b, &Outcome::Client(fault), Duration::from_secs(5), 0);
        assert!(b.health.latency.is_neutral());
    }

    /// s1 answers as fast as s0 but one request in twenty fails (500):
    /// it gets less than an even share of spaced picks, and still some.
    #[test]
    fn a_backend_failing_now_and_then_gets_less_but_is_not_starved() {
        let r = registry(&[1, 1]);
        let snap = r.snapshot();
        let e = ewma();
        let mut now = 0;
        let mut to_s1 = 0;
        for _ in 0..2000 {
            now += 20 * MS;
            let chosen = e.pick(&snap.eligible, now).unwrap();
            let outcome = if chosen.name == "s1" {
                to_s1 += 1;
                if to_s1 % 20 == 0 {
                    Outcome::Answered(StatusCode::INTERNAL_SERVER_ERROR)
                } else {
                    ok()
                }
            } else {
                ok()
            };
            e.observe(chosen, &outcome, Duration::from_millis(1), now + MS);
        }
        assert!((100..1000).contains(&to_s1), "s1 got {to_s1} of 2000");
    }

    #[test]
    fn in_flight_requests_multiply_the_estimate() {
        let r = registry(&[1]);
        let snap = r.snapshot();
        let b = &snap.eligible[0];
        let e = ewma();
        e.observe(b, &ok(), Duration::from_millis(4), 0);
        let _held: Vec<_> = (0..3).map(|_| b.begin()).collect();
        let estimate = b.health.latency.read(0, &e.decay);
        assert!((e.cost(b, estimate) - (16 * MS) as f64).abs() < 1.0);
    }

    /// Spaced sequential picks, each answered at once (nothing stays in
    /// flight), with s1 answering 25 ms slower than the others: it gets a
    /// few probes at first, then almost nothing.
    #[test]
    fn a_slow_backend_gets_few_spaced_picks() {
        let r = registry(&[1, 1, 1]);
        let snap = r.snapshot();
        let e = ewma();
        let mut now = 0;
        let mut slow = 0;
        let picks = 2000;
        for _ in 0..picks {
            now += 10 * MS;
            let chosen = e.pick(&snap.eligible, now).unwrap();
            let took = if chosen.name == "s1" {
                slow += 1;
                26
            } else {
                1
            };
            e.observe(chosen, &ok(), Duration::from_millis(took), now + took * MS);
        }
        assert!(
            slow * 100 < picks * 5,
            "the slow backend got {slow} of {picks}"
        );
        assert!(slow > 0, "a neutral start gets it tried");
    }

    /// s0 answers in 0.06 ms (a fast network; the default_rtt of 1 ms
    /// is 15 times that), s1 is new: compared as an equal, it gets about
    /// half of the spaced picks from the first one on, and keeps them once
    /// its own 0.06 ms answers set its estimate.
    #[test]
    fn a_new_backend_gets_its_share_at_once_on_a_fast_network() {
        let r = registry(&[1, 1]);
        let snap = r.snapshot();
        let e = ewma();
        let fast = Duration::from_micros(60);
        let mut now = 20 * MS;
        e.observe(&snap.eligible[0], &ok(), fast, now);
        let first: Vec<_> = (0..200)
            .map(|_| e.pick(&snap.eligible, now).unwrap().name.clone())
            .collect();
        let new = first.iter().filter(|n| *n == "s1").count();
        assert!((60..=140).contains(&new), "s1 got {new} of 200 at first");
        let mut got = 0;
        for _ in 0..1000 {
            now += 20 * MS;
            let chosen = e.pick(&snap.eligible, now).unwrap();
            got += usize::from(chosen.name == "s1");
            e.observe(chosen, &ok(), fast, now + 60_000);
        }
        assert!(got >= 250, "s1 got {got} of 1000 spaced picks after that");
    }

    #[test]
    fn a_neutral_estimate_never_reads_above_the_known_one_it_is_compared_with() {
        let known = |v: f64| (v, true);
        let neutral = |v: f64| (v, false);
        assert_eq!(neutral_against(neutral(1.0), known(0.06)), (0.06, 0.06));
        assert_eq!(neutral_against(known(30.0), neutral(1.0)), (30.0, 1.0));
        assert_eq!(neutral_against(neutral(1.0), neutral(0.5)), (1.0, 0.5));
        assert_eq!(neutral_against(known(2.0), known(3.0)), (2.0, 3.0));
    }
}
