//! Backend selection, the first thing every proxied request does.
//!
//! `pick/<strategy>/<n>` measures what the request path pays: load the
//! registry's current snapshot and let the balancer choose among `n`
//! registered backends, for `n` = 3 and 1,000. The performance target is that
//! choosing among 1,000 costs less than twice choosing among 3 (O(1) or
//! O(log n) selection); compare the two figures of each strategy.
//!
//! `observe/<strategy>` is what booking one attempt's end costs the
//! balancer (only `peak_ewma` does anything: a clock read and one
//! estimate's update).
//!
//! `pick_threads/<strategy>/<t>` does the same from `t` threads at once on
//! one shared balancer and registry (3 backends), which is what a
//! multi-threaded runtime does: it shows the cost of the shared rotation
//! counter and of the snapshot's reference count bouncing between cores.
//! One iteration is one pick on every thread; throughput is in picks.
//!
//! `pick_hash/<n>` is the `hash` strategy's share of one request among `n`
//! backends: finding and hashing an `X-User` header (once per request),
//! then the pick (a binary search of the ring and, all backends being up,
//! no walk). `pick_hash_down/<n>` is the pick alone with every other
//! backend down, so about half the keys walk on to a next point.
//! `build_ring/<n>` is what each membership change pays to build the ring
//! (off the request path).
//!
//! Run with `cargo bench -p gateway --bench balancer`.

// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gateway::backends::ring::HashRing;
use gateway::backends::Registry;
use gateway::balancer::hash::RequestParts;
use gateway::balancer::Balancer;
use gateway::config::{BalancerSettings, HashSettings, Strategy};
use gateway::outcome::Outcome;
use gateway::spec::ServerSpec;
use observability::clock::SystemClock;

mod support;

const STRATEGIES: [(Strategy, &str); 4] = [
    (Strategy::RoundRobin, "round_robin"),
    (Strategy::WeightedRoundRobin, "weighted_round_robin"),
    (Strategy::LeastOutstanding, "least_outstanding"),
    (Strategy::PeakEwma, "peak_ewma"),
];

/// A registry with `n` backends, as start-up registers the static ones.
/// Weights cycle 1..=5 so that the weighted schedule is not trivial.
fn registry(n: usize) -> Registry {
    let specs: Vec<ServerSpec> = (0..n)
        .map(|i| ServerSpec {
            name: format!("backend-{i}"),
            url: format!("http://127.0.0.1:{}", 10_000 + i),
            weight: Some(1 + (i % 5) as u32),
        })
        .collect();
    let registry = match Registry::new(Arc::new(SystemClock)).with_servers(&specs, &[]) {
        Ok((registry, _)) => registry,
        Err(e) => panic!("registering: {e}"),
    };
    assert_eq!(registry.snapshot().backends.len(), n);
    registry
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in [3usize, 1000] {
        let reg = registry(n);
        for (strategy, name) in STRATEGIES {
            let balancer = Balancer::new(strategy);
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    let snapshot = reg.snapshot();
                    let chosen = balancer.pick(black_box(&snapshot)).map(|b| b.weight);
                    black_box(chosen)
                })
            });
        }
    }
    group.finish();
}

fn pick_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick_threads");
    let reg = registry(3);
    for (strategy, name) in STRATEGIES {
        for threads in [1usize, 2, 4] {
            let balancer = Balancer::new(strategy);
            group.throughput(Throughput::Elements(threads as u64));
            group.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &t| {
                b.iter_custom(|iters| {
                    support::on_threads(t, iters, |_, iters| {
                        for _ in 0..iters {
                            let snapshot = reg.snapshot();
                            black_box(balancer.pick(black_box(&snapshot)).map(|b| b.weight));
                        }
                    })
                })
            });
        }
    }
    group.finish();
}

fn observe(c: &mut Criterion) {
    let mut group = c.benchmark_group("observe");
    let reg = registry(3);
    let snapshot = reg.snapshot();
    let backend = snapshot.backends[0].clone();
    let outcome = Outcome::Answered(http::StatusCode::OK);
    for (strategy, name) in STRATEGIES {
        let balancer = Balancer::new(strategy);
        group.bench_function(name, |b| {
            b.iter(|| {
                balancer.observe(
                    black_box(&backend),
                    black_box(&outcome),
                    Duration::from_micros(900),
                )
            })
        });
    }
    group.finish();
}

fn hashing() -> Balancer {
    Balancer::from_settings(&BalancerSettings {
        strategy: Strategy::Hash,
        hash: HashSettings {
            key: "header:X-User".to_owned(),
            ..HashSettings::default()
        },
        ..BalancerSettings::default()
    })
}

fn pick_hash(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick_hash");
    let balancer = hashing();
    let mut headers = http::HeaderMap::new();
    headers.insert("accept", http::HeaderValue::from_static("*/*"));
    headers.insert("x-user", http::HeaderValue::from_static("user-1234567"));
    headers.insert("user-agent", http::HeaderValue::from_static("bench/1"));
    for n in [3usize, 1000] {
        let reg = registry(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let key = balancer.request_key(RequestParts {
                    headers: black_box(&headers),
                    path: "/api/data",
                    query: None,
                    client: std::net::Ipv4Addr::LOCALHOST.into(),
                });
                let snapshot = reg.snapshot();
                let chosen = balancer
                    .pick_keyed(black_box(&snapshot), key, |_| true)
                    .map(|b| b.weight);
                black_box(chosen)
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("pick_hash_down");
    for n in [3usize, 1000] {
        let reg = registry(n);
        for i in (1..n).step_by(2) {
            reg.set_draining(&format!("backend-{i}"), true);
        }
        let mut key = 0u64;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let snapshot = reg.snapshot();
                let chosen = balancer
                    .pick_keyed(black_box(&snapshot), Some(key), |_| true)
                    .map(|b| b.weight);
                black_box(chosen)
            })
        });
    }
    group.finish();
}

fn build_ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("build_ring");
    group.sample_size(10);
    for n in [3usize, 1000] {
        let names: Vec<String> = (0..n).map(|i| format!("backend-{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let weights: Vec<u32> = (0..n).map(|i| 1 + (i % 5) as u32).collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(HashRing::build(black_box(&names), &weights).len()))
        });
    }
    group.finish();
}

criterion_group!(benches, pick, pick_threads, observe, pick_hash, build_ring);
criterion_main!(benches);
