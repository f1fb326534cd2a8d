//! The stats windows against a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::clock::ManualClock;

fn ok(ms: u64) -> Sample {
    Sample {
        status: Some(200),
        latency: Duration::from_millis(ms),
    }
}

fn setup() -> (ManualClock, Arc<Recorder>) {
    let clock = ManualClock::new(1_000_000);
    let recorder = Recorder::new(Arc::new(clock.clone()));
    (clock, recorder)
}

#[test]
fn counts_are_exact_and_classes_add_up() {
    let (_, r) = setup();
    for _ in 0..70 {
        r.record(ok(5));
    }
    for status in [404, 500, 503] {
        r.record(Sample {
            status: Some(status),
            latency: Duration::from_millis(1),
        });
    }
    r.record(Sample {
        status: None,
        latency: Duration::from_millis(1),
    });
    let s = r.summary(Window::OneMinute);
    assert_eq!(s.requests, 74);
    assert_eq!(s.errors, 3);
    assert_eq!(s.status.success, 70);
    assert_eq!(s.status.client_error, 1);
    assert_eq!(s.status.server_error, 2);
    assert_eq!(s.status.no_response, 1);
    assert!((s.error_rate - 3.0 / 74.0).abs() < 1e-6);
}

#[test]
fn percentiles_are_within_one_percent() {
    let (_, r) = setup();
    for ms in 1..=1000 {
        r.record(ok(ms));
    }
    let s = r.summary(Window::OneMinute).latency_ms;
    for (got, want) in [
        (s.p50, 500.0),
        (s.p90, 900.0),
        (s.p95, 950.0),
        (s.p99, 990.0),
        (s.max, 1000.0),
    ] {
        assert!((got - want).abs() / want <= 0.01, "got {got}, want {want}");
    }
    assert!((s.mean - 500.5).abs() < 0.001);
}

#[test]
fn one_minute_window_rolls_over_second_by_second() {
    let (clock, r) = setup();
    r.record(ok(1)); // t = 0
    clock.advance(30);
    r.record(ok(1)); // t = 30
    assert_eq!(r.summary(Window::OneMinute).requests, 2);
    clock.advance(29); // t = 59: both still inside the last 60 s
    assert_eq!(r.summary(Window::OneMinute).requests, 2);
    clock.advance(1); // t = 60: the first has left
    assert_eq!(r.summary(Window::OneMinute).requests, 1);
    assert_eq!(r.summary(Window::FiveMinutes).requests, 2);
    clock.advance(30); // t = 90: the second has left too
    assert_eq!(r.summary(Window::OneMinute).requests, 0);
    assert_eq!(r.summary(Window::OneMinute).latency_ms, Latency::default());
    assert_eq!(r.summary(Window::OneHour).requests, 2);
}

#[test]
fn a_reused_slot_forgets_its_old_counts() {
    let (clock, r) = setup();
    r.record(ok(100));
    clock.advance(60); // same slot in the 1m ring, next lap
    r.record(ok(1));
    let s = r.summary(Window::OneMinute);
    assert_eq!(s.requests, 1);
    assert_eq!(s.latency_ms.max, 1.0);
    assert_eq!(r.summary(Window::FiveMinutes).requests, 2);
}

#[test]
fn long_windows_expire_too() {
    let (clock, r) = setup();
    r.record(ok(1));
    clock.advance(299);
    assert_eq!(r.summary(Window::FiveMinutes).requests, 1);
    clock.advance(10);
    assert_eq!(r.summary(Window::FiveMinutes).requests, 0);
    assert_eq!(r.summary(Window::OneHour).requests, 1);
    clock.advance(3600);
    assert_eq!(r.summary(Window::OneHour).requests, 0);
}

#[test]
fn rate_divides_by_the_time_covered() {
    let (clock, r) = setup();
    clock.advance(9); // the series has existed for 10 whole seconds
    for _ in 0..20 {
        r.record(ok(1));
    }
    let s = r.summary(Window::OneMinute);
    assert_eq!(s.covered_seconds, 10);
    assert_eq!(s.requests_per_second, 2.0);
    clock.advance(100);
    for _ in 0..60 {
        r.record(ok(1));
    }
    let s = r.summary(Window::OneMinute);
    assert_eq!(s.covered_seconds, 60);
    assert_eq!(s.requests_per_second, 1.0);
}

#[test]
fn huge_latencies_saturate_instead_of_failing() {
    let (_, r) = setup();
    r.record(ok(24 * 3600 * 1000));
    let s = r.summary(Window::OneMinute);
    assert_eq!(s.requests, 1);
    assert_eq!(s.latency_ms.max, 600_000.0);
}

#[test]
fn concurrent_recording_loses_nothing() {
    let (_, r) = setup();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let r = r.clone();
            scope.spawn(move || {
                for _ in 0..10_000 {
                    r.record(ok(2));
                }
            });
        }
    });
    assert_eq!(r.summary(Window::OneHour).requests, 40_000);
}

#[test]
fn percentiles_stay_within_one_percent_across_sealed_seconds() {
    let (clock, r) = setup();
    // 1..=1000 ms spread over 100 seconds, ten a second, shuffled by a
    // stride so every second holds a spread of values.
    for i in 0..1000u64 {
        r.record(ok((i * 7919) % 1000 + 1));
        if i % 10 == 9 {
            clock.advance(1);
        }
    }
    for window in [Window::FiveMinutes, Window::OneHour] {
        let s = r.summary(window);
        assert_eq!(s.requests, 1000, "{window:?}");
        let l = s.latency_ms;
        for (got, want) in [
            (l.p50, 500.0),
            (l.p90, 900.0),
            (l.p99, 990.0),
            (l.max, 1000.0),
        ] {
            assert!(
                (got - want).abs() / want <= 0.01,
                "{window:?}: got {got}, want {want}"
            );
        }
    }
    // The last minute: the current second (empty) and the 59 before it.
    assert_eq!(r.summary(Window::OneMinute).requests, 590);
}

#[test]
fn a_second_sealed_late_never_overwrites_newer_data() {
    let (clock, r) = setup();
    let start = clock.now_secs();
    // Another thread records once and then goes quiet.
    let other = r.clone();
    std::thread::spawn(move || other.record(ok(5)))
        .join()
        .unwrap();
    // Seventy seconds later: the same 1m slot, one lap on.
    clock.advance(60);
    r.record(ok(7));
    clock.advance(1);
    let minute = r.summary(Window::OneMinute);
    assert_eq!(minute.requests, 1, "the old second leaked into the new lap");
    assert_eq!(minute.latency_ms.max, 7.0);
    let five = r.summary(Window::FiveMinutes);
    assert_eq!(five.requests, 2);
    assert_eq!(clock.now_secs() - start, 61);
}

#[test]
fn sealed_history_is_compact() {
    let (clock, r) = setup();
    // Two hours of one request a millisecond apart per second.
    for second in 0..7200u64 {
        for ms in 0..20 {
            r.record(ok(1 + (second + ms) % 50));
        }
        clock.advance(1);
    }
    let history = r.history.lock().unwrap();
    let bytes: usize = history
        .iter()
        .flat_map(|ring| ring.buckets.iter())
        .map(|b| b.cells.capacity())
        .sum();
    drop(history);
    // 180 buckets of the 50 one-millisecond values' cells (one cell
    // each, with the cells between them: 1..50 ms is 1000..50000 µs,
    // 6 powers of two of 128 cells) at one byte per cell (no bucket
    // holds 128 requests in one cell), instead of 180 dense histograms
    // of about 3,000 four-byte cells.
    assert!(bytes <= 180 * 6 * 128, "{bytes} bytes");
    // 59 whole minutes plus however much of the current one has passed.
    let hour = r.summary(Window::OneHour).requests;
    assert!((59 * 60 * 20..=60 * 60 * 20).contains(&hour), "{hour}");
}

#[test]
fn window_names_parse_both_ways() {
    for w in Window::ALL {
        assert_eq!(Window::parse(w.name()), Some(w));
    }
    assert_eq!(Window::parse("2m"), None);
    assert_eq!(Window::parse(""), None);
}
