//! The strategies' picks over registries of a few backends.

#![allow(clippy::unwrap_used)]
use super::*;
use crate::backends::Registry;
use crate::spec::ServerSpec;
use observability::clock::SystemClock;
use std::collections::HashMap;

pub(super) fn registry(weights: &[u32]) -> Registry {
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
