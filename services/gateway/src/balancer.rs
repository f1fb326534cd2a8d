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

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::Strategy;
use crate::registry::{Backend, Snapshot};

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

/// Smooth weighted round robin as a precomputed schedule of indices.
///
/// Stride scheduling: backend `i`'s `k`-th turn is due at `(k + 1/2) / w_i`
/// of the cycle, and turns are taken in due order (ties to the lower index).
/// Every backend gets exactly `w_i` turns per cycle, evenly spread, which is
/// the property NGINX's smooth algorithm has, but each step costs O(log n)
/// with a heap instead of a scan of all backends. Weights are first divided
/// by their greatest common divisor, so the cycle is as short as possible.
pub fn smooth_weighted_schedule(weights: &[u32]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let weights: Vec<u64> = weights
        .iter()
        .map(|&w| u64::from(w.max(1) / divisor))
        .collect();
    let total: u64 = weights.iter().sum();
    let mut heap: BinaryHeap<Turn> = weights
        .iter()
        .enumerate()
        .map(|(index, &weight)| Turn {
            index,
            turn: 0,
            weight,
        })
        .collect();
    let mut schedule = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    while let Some(mut next) = heap.pop() {
        schedule.push(u32::try_from(next.index).unwrap_or(0));
        next.turn += 1;
        if next.turn < next.weight {
            heap.push(next);
        }
    }
    schedule
}

/// A backend's next turn in the weighted cycle, ordered so that the
/// max-heap pops the earliest due time first.
#[derive(Debug, PartialEq, Eq)]
struct Turn {
    index: usize,
    turn: u64,
    weight: u64,
}

impl Turn {
    /// Due time `(2k + 1) / (2w)`, compared by cross-multiplication.
    fn earlier_than(&self, other: &Turn) -> std::cmp::Ordering {
        let mine = (2 * self.turn + 1) * other.weight;
        let theirs = (2 * other.turn + 1) * self.weight;
        mine.cmp(&theirs).then(self.index.cmp(&other.index))
    }
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.earlier_than(other).reverse()
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
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

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::{Registry, ServerSpec};
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
    fn weighted_schedule_divides_by_the_gcd_and_scales() {
        assert_eq!(smooth_weighted_schedule(&[100, 200]).len(), 3);
        assert_eq!(smooth_weighted_schedule(&[2, 2, 2]), vec![0, 1, 2]);
        let big: Vec<u32> = (0..1000).map(|i| 1 + (i % 1000)).collect();
        let schedule = smooth_weighted_schedule(&big);
        assert_eq!(
            schedule.len() as u64,
            big.iter().map(|&w| u64::from(w)).sum::<u64>()
        );
        assert_eq!(schedule.iter().filter(|&&i| i == 999).count(), 1000);
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
