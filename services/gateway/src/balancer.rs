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
//!
//! The counter lives here, not in the snapshot, so rotation carries on
//! smoothly across registry changes.
//!
//! Depends on `backends` (the snapshot it picks from) and `config`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::backends::{Backend, Snapshot};
use crate::config::Strategy;

/// Picks backends according to a [`Strategy`].
#[derive(Debug)]
pub struct Balancer {
    strategy: Strategy,
    next: AtomicUsize,
}

impl Balancer {
    /// A balancer with its own rotation counter.
    pub fn new(strategy: Strategy) -> Self {
        Balancer {
            strategy,
            next: AtomicUsize::new(0),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::backends::Registry;
    use crate::spec::ServerSpec;
    use observability::clock::SystemClock;
    use std::collections::HashMap;

    fn registry(weights: &[u32]) -> Registry {
        let specs: Vec<ServerSpec> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| ServerSpec {
                name: format!("s{i}"),
                url: format!("http://127.0.0.1:{}", 5000 + i),
                weight: Some(w),
            })
            .collect();
        Registry::new(Arc::new(SystemClock))
            .with_servers(&specs, &[])
            .unwrap()
            .0
    }

    fn picks(b: &Balancer, r: &Registry, n: usize) -> Vec<String> {
        let snap = r.snapshot();
        (0..n)
            .map(|_| b.pick(&snap).unwrap().name.clone())
            .collect()
    }

    #[test]
    fn nothing_to_pick_from() {
        let r = registry(&[]);
        for s in [
            Strategy::RoundRobin,
            Strategy::WeightedRoundRobin,
            Strategy::LeastOutstanding,
        ] {
            assert!(Balancer::new(s).pick(&r.snapshot()).is_none());
        }
    }

    #[test]
    fn round_robin_is_exact_and_ignores_weights() {
        let r = registry(&[5, 1, 1]);
        let got = picks(&Balancer::new(Strategy::RoundRobin), &r, 7);
        assert_eq!(got, ["s0", "s1", "s2", "s0", "s1", "s2", "s0"]);
    }

    #[test]
    fn weighted_is_proportional_and_interleaved() {
        let r = registry(&[5, 1, 1]);
        let got = picks(&Balancer::new(Strategy::WeightedRoundRobin), &r, 7 * 100);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for n in &got {
            *counts.entry(n).or_default() += 1;
        }
        assert_eq!(counts["s0"], 500);
        assert_eq!(counts["s1"], 100);
        assert_eq!(counts["s2"], 100);
        // Smooth: after every prefix of the sequence each backend has had
        // its proportional share to within one turn, so no backend is
        // starved or served in a burst.
        let weights = [("s0", 5.0), ("s1", 1.0), ("s2", 1.0)];
        let mut seen: HashMap<&str, f64> = HashMap::new();
        for (m, name) in got.iter().enumerate() {
            *seen.entry(name).or_default() += 1.0;
            for (w_name, w) in weights {
                let share = (m + 1) as f64 * w / 7.0;
                let had = seen.get(w_name).copied().unwrap_or(0.0);
                assert!(
                    (had - share).abs() < 1.0,
                    "{w_name} after {}: {had} vs {share}",
                    m + 1
                );
            }
        }
    }

    #[test]
    fn least_outstanding_prefers_the_less_loaded() {
        let r = registry(&[1, 1]);
        let snap = r.snapshot();
        let busy = snap.eligible[0].clone();
        let _held: Vec<_> = (0..10).map(|_| busy.begin()).collect();
        let b = Balancer::new(Strategy::LeastOutstanding);
        // With two backends both choices are always the pair, so the idle
        // one must win every time.
        for _ in 0..200 {
            assert_eq!(b.pick(&snap).unwrap().name, "s1");
        }
    }

    #[test]
    fn least_outstanding_spreads_when_loads_are_equal() {
        let r = registry(&[1, 1, 1, 1]);
        let got = picks(&Balancer::new(Strategy::LeastOutstanding), &r, 4000);
        for name in ["s0", "s1", "s2", "s3"] {
            let n = got.iter().filter(|g| *g == name).count();
            assert!((700..1300).contains(&n), "{name}: {n}");
        }
    }
}
