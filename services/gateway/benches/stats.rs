//! The stats windows (`observability::stats`) on the gateway's request path and
//! behind `GET /api/stats/{window}`.
//!
//! - `record/threads/<t>`: `t` threads record finished requests into one
//!   shared [`Recorder`] at once, as the gateway does for every proxied
//!   request (into the gateway-wide series and the backend's own). One
//!   iteration is one record on every thread; throughput is in records, so
//!   the figures show how recording scales (or contends) across threads.
//!   `t` = 4 is more threads than this project's 2-core machines have, on
//!   purpose: a lock holder that gets preempted stalls the others.
//! - `summary/<window>`: reading a window after an hour of traffic has
//!   filled every bucket of every ring (a [`ManualClock`] spreads the
//!   records over 3,600 seconds, with latencies from 100 µs to 50 ms so the
//!   histograms are not trivially small). `1h` is the largest window; `1m`
//!   and `5m` are read the same way and shown for comparison.
//! - `series/<window>`: the same read with the per-bucket series
//!   (`?series=true`), which adds each of the 60 buckets' p50 and p99; a
//!   gateway answer costs this once for itself and once per backend.
//!
//! Run with `cargo bench -p gateway --bench stats`.

// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use observability::clock::{ManualClock, SystemClock};
use observability::stats::{Recorder, Sample, Window};

mod support;

/// Deterministic spread of latencies between 100 µs and ~50 ms and of
/// statuses (mostly 200, some 404, 503 and no answer), so that recording
/// and merging see the variety real traffic has.
fn sample(i: u64) -> Sample {
    let mixed = i.wrapping_mul(6_364_136_223_846_793_005).rotate_left(17);
    let latency = Duration::from_micros(100 + mixed % 50_000);
    let status = match i % 100 {
        0 => None,
        1 | 2 => Some(503),
        3..=7 => Some(404),
        _ => Some(200),
    };
    Sample { status, latency }
}

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("record");
    for threads in [1usize, 2, 4] {
        let recorder = Recorder::new(Arc::new(SystemClock));
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, &t| {
            b.iter_custom(|iters| {
                support::on_threads(t, iters, |thread, iters| {
                    for i in 0..iters {
                        recorder.record(black_box(sample(i ^ (thread << 32))));
                    }
                })
            })
        });
    }
    group.finish();
}

/// A recorder whose every bucket, in every window, holds traffic: one
/// hour of `per_second` requests a second, the last of them at the
/// clock's "now". The start is a whole minute, so the hour fills exactly
/// the 60 one-minute buckets of the `1h` ring.
fn full_hour(per_second: u64) -> Arc<Recorder> {
    let clock = ManualClock::new(1_699_999_980);
    let recorder = Recorder::new(Arc::new(clock.clone()));
    let mut i = 0u64;
    for second in 0..Window::OneHour.span_secs() {
        if second > 0 {
            clock.advance(1);
        }
        for _ in 0..per_second {
            recorder.record(sample(i));
            i += 1;
        }
    }
    recorder
}

fn summary(c: &mut Criterion) {
    let recorder = full_hour(20);
    // Every record is inside the hour, and each shorter window holds
    // exactly its own span of seconds: the rings really are full.
    for window in Window::ALL {
        assert_eq!(recorder.summary(window).requests, 20 * window.span_secs());
    }
    let mut group = c.benchmark_group("summary");
    for window in Window::ALL {
        group.bench_with_input(
            BenchmarkId::from_parameter(window.name()),
            &window,
            |b, &w| b.iter(|| black_box(recorder.summary(black_box(w)))),
        );
    }
    group.finish();
    let mut group = c.benchmark_group("series");
    for window in Window::ALL {
        group.bench_with_input(
            BenchmarkId::from_parameter(window.name()),
            &window,
            |b, &w| {
                let now = recorder.now_secs();
                b.iter(|| black_box(recorder.summary_at(black_box(w), now, true)))
            },
        );
    }
    group.finish();
}

criterion_group!(benches, record, summary);
criterion_main!(benches);
