//! Choosing a backend for each request.
//!
//! Every strategy picks from an immutable [`Snapshot`] in O(1):
//!
//! - `round_robin`: one atomic increment, modulo the number of backends.
//! - `weighted_round_robin`: NGINX's smooth weighted round robin, computed
//!   once per registry change into a schedule of backend indices (weights
//!   divided by their greatest common divisor), then walked with one atomic
//!   increment. Proportions are exact over each cycle and heavy backends are
//!   interleaved with light ones rather than served in bursts.
//! - `least_outstanding`: power of two random choices on requests in flight.
//! - `peak_ewma`: power of two random choices on latency estimate × (requests
//!   in flight + 1); see [`peak_ewma`], which also books each attempt's
//!   latency into its backend's estimate ([`Balancer::observe`]).
//!
//! The counter lives here, not in the snapshot, so rotation carries on
//! smoothly across registry changes.
//!
//! Depends on `backends` (the snapshot it picks from, the estimates),
//! `outcome` (what an attempt's latency counts as) and `config`.

pub mod peak_ewma;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backends::{Backend, Snapshot};
use crate::config::{BalancerSettings, Strategy};
use crate::outcome::Outcome;
use peak_ewma::PeakEwma;

/// Picks backends according to a [`Strategy`].
#[derive(Debug)]
pub struct Balancer {
    strategy: Strategy,
    next: AtomicUsize,
    ewma: PeakEwma,
}

impl Balancer {
    /// A balancer with its own rotation counter (and `peak_ewma` at its
    /// default settings).
    pub fn new(strategy: Strategy) -> Self {
        Self::from_settings(&BalancerSettings {
            strategy,
            ..BalancerSettings::default()
        })
    }

    /// A balancer as the `balancer` section says.
    pub fn from_settings(settings: &BalancerSettings) -> Self {
        Balancer {
            strategy: settings.strategy,
            next: AtomicUsize::new(0),
            ewma: PeakEwma::new(&settings.peak_ewma),
        }
    }

    /// Books how an attempt at `backend` went, `elapsed` after it started,
    /// into what the strategy learns from (only `peak_ewma` learns; the
    /// others pay nothing here).
    pub fn observe(&self, backend: &Backend, outcome: &Outcome, elapsed: Duration) {
        if self.strategy == Strategy::PeakEwma {
            self.ewma.observe(
                backend,
                outcome,
                elapsed,
                crate::backends::latency::now_nanos(),
            );
        }
    }

    /// The configured strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Chooses an `up` backend, or `None` when there are none.
    pub fn pick<'a>(&self, snapshot: &'a Snapshot) -> Option<&'a Arc<Backend>> {
        let backends = &snapshot.eligible;
        match backends.len() {
            0 => None,
            1 => backends.first(),
            n => match self.strategy {
                Strategy::RoundRobin => backends.get(self.next.fetch_add(1, Ordering::Relaxed) % n),
                Strategy::WeightedRoundRobin => {
                    let schedule = &snapshot.weighted;
                    let i = self.next.fetch_add(1, Ordering::Relaxed) % schedule.len().max(1);
                    schedule.get(i).and_then(|&b| backends.get(b as usize))
                }
                Strategy::LeastOutstanding => {
                    let a = fastrand::usize(..n);
                    // A second, different index: offset by 1..n-1.
                    let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                    let load = |i: usize| backends[i].active.load(Ordering::Relaxed);
                    // Ties go to the first pick, which is itself random.
                    backends.get(if load(b) < load(a) { b } else { a })
                }
                Strategy::PeakEwma => self
                    .ewma
                    .pick(backends, crate::backends::latency::now_nanos()),
            },
        }
    }
}

impl Balancer {
    /// Chooses a backend for which `accept` holds (not tried yet, not full),
    /// asking the strategy a bounded number of times and then scanning once,
    /// so the cost stays O(1) unless nearly everything is refused.
    pub fn pick_where<'a>(
        &self,
        snapshot: &'a Snapshot,
        accept: impl Fn(&Backend) -> bool,
    ) -> Option<&'a Arc<Backend>> {
        for _ in 0..3 {
            let candidate = self.pick(snapshot)?;
            if accept(candidate) {
                return Some(candidate);
            }
        }
        let start = fastrand::usize(..snapshot.eligible.len().max(1));
        let n = snapshot.eligible.len();
        (0..n)
            .map(|i| &snapshot.eligible[(start + i) % n])
            .find(|b| accept(b))
    }
}
