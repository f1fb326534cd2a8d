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
//! - `hash`: consistent hashing of a key taken from the request
//!   ([`hash`]): a binary search of the snapshot's ring
//!   ([`crate::backends::ring`]) for the key's hash, then a walk to the next
//!   point while its backend is not `up` or not acceptable (already tried,
//!   full). Requests without the key fall back to round robin or random.
//!
//! The counter lives here, not in the snapshot, so rotation carries on
//! smoothly across registry changes.
//!
//! Depends on `backends` (the snapshot it picks from, the estimates),
//! `outcome` (what an attempt's latency counts as) and `config`.

pub mod hash;
pub mod peak_ewma;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backends::{Backend, Snapshot};
use crate::config::{BalancerSettings, HashFallback, HashKey, Strategy};
use crate::outcome::Outcome;
use hash::RequestParts;
use peak_ewma::PeakEwma;

/// Picks backends according to a [`Strategy`].
#[derive(Debug)]
pub struct Balancer {
    strategy: Strategy,
    next: AtomicUsize,
    ewma: PeakEwma,
    /// Under `hash`, where the key is (unset when the key did not parse:
    /// then every request takes the fallback).
    hash_key: Option<HashKey>,
    hash_fallback: HashFallback,
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
            hash_key: HashKey::parse(&settings.hash.key).ok(),
            hash_fallback: settings.hash.fallback,
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

    /// The hash of the request's key under `hash` (`None` under the other
    /// strategies, or when the request lacks the key): computed once per
    /// request, then handed to each attempt's [`Balancer::pick_keyed`].
    pub fn request_key(&self, request: RequestParts<'_>) -> Option<u64> {
        if self.strategy != Strategy::Hash {
            return None;
        }
        hash::key_hash(self.hash_key.as_ref()?, request)
    }

    /// Chooses an `up` backend, or `None` when there are none. Under `hash`
    /// this is the fallback (the request has no key).
    pub fn pick<'a>(&self, snapshot: &'a Snapshot) -> Option<&'a Arc<Backend>> {
        let backends = &snapshot.eligible;
        match backends.len() {
            0 => None,
            1 => backends.first(),
            n => match self.strategy {
                Strategy::RoundRobin => backends.get(self.next.fetch_add(1, Ordering::Relaxed) % n),
                Strategy::Hash => match self.hash_fallback {
                    HashFallback::RoundRobin => {
                        backends.get(self.next.fetch_add(1, Ordering::Relaxed) % n)
                    }
                    HashFallback::Random => backends.get(fastrand::usize(..n)),
                },
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
    /// Chooses a backend for which `accept` holds, for a request whose key
    /// hashed to `key`: under `hash`, the first `up` and accepted backend
    /// from the key's place on the ring (so a retry, refusing the backend
    /// tried, goes to the next backend along it); otherwise, or without a
    /// key, as [`Balancer::pick_where`].
    pub fn pick_keyed<'a>(
        &self,
        snapshot: &'a Snapshot,
        key: Option<u64>,
        accept: impl Fn(&Backend) -> bool,
    ) -> Option<&'a Arc<Backend>> {
        let Some(key) = key.filter(|_| self.strategy == Strategy::Hash) else {
            return self.pick_where(snapshot, accept);
        };
        if snapshot.eligible.is_empty() {
            return None;
        }
        let found = snapshot.ring.walk(key).find_map(|i| {
            let backend = snapshot.backends.get(i)?;
            (snapshot.up.get(i) == Some(&true) && accept(backend)).then_some(backend)
        });
        // The walk is bounded; past it (nearly everything refused), a scan.
        found.or_else(|| snapshot.eligible.iter().find(|b| accept(b)))
    }

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
