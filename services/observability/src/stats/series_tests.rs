//! The per-bucket series against a manual clock: shape, alignment, sums
//! equal to the totals, empty and partial buckets, roll-over, and reading
//! while other threads record.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::clock::ManualClock;

fn sample(status: u16, ms: u64) -> Sample {
    Sample {
        status: Some(status),
        latency: Duration::from_millis(ms),
    }
}

/// A recorder whose clock stands at a whole hour, so every window's
/// buckets start on the clock's own round numbers.
fn setup() -> (ManualClock, Arc<Recorder>) {
    let clock = ManualClock::new(1_733_432_400);
    let recorder = Recorder::new(Arc::new(clock.clone()));
    (clock, recorder)
}

fn read(r: &Recorder, window: Window) -> (Summary, Series) {
    let mut summary = r.summary_at(window, r.now_secs(), true);
    let series = summary.series.take().expect("asked for the series");
    (summary, series)
}

/// What must hold of every answer, whatever the traffic.
fn assert_consistent(summary: &Summary, series: &Series) {
    assert_eq!(series.requests.iter().sum::<u64>(), summary.requests);
    assert_eq!(series.errors.iter().sum::<u64>(), summary.errors);
    for (i, &n) in series.requests.iter().enumerate() {
        assert_eq!(series.p50_ms[i].is_none(), n == 0, "bucket {i}");
        assert_eq!(series.p99_ms[i].is_none(), n == 0, "bucket {i}");
    }
}

#[test]
fn one_entry_per_bucket_oldest_first_ending_with_the_current_one() {
    let (clock, r) = setup();
    clock.advance(7);
    let now = clock.now_secs();
    for window in Window::ALL {
        let (_, s) = read(&r, window);
        let span = window.bucket_secs();
        assert_eq!(s.bucket_seconds, span);
        for len in [
            s.start.len(),
            s.requests.len(),
            s.errors.len(),
            s.p50_ms.len(),
            s.p99_ms.len(),
        ] {
            assert_eq!(len, BUCKETS, "{window:?}");
        }
        // The last bucket holds "now"; each starts one span after the last.
        let last = *s.start.last().unwrap();
        assert!(last <= now && now < last + span, "{window:?}");
        assert_eq!(last % span, 0);
        assert!(s.start.windows(2).all(|w| w[1] == w[0] + span));
        assert_eq!(s.start[0], last - (BUCKETS as u64 - 1) * span);
    }
}

#[test]
fn counts_land_in_their_buckets_and_add_up_to_the_totals() {
    let (clock, r) = setup();
    r.record(sample(200, 10)); // t = 0
    r.record(sample(503, 30));
    clock.advance(10);
    r.record(sample(200, 20)); // t = 10
    clock.advance(49); // t = 59: the current bucket, empty
    let (summary, s) = read(&r, Window::OneMinute);
    assert_eq!(summary.requests, 3);
    assert_eq!(summary.errors, 1);
    assert_consistent(&summary, &s);
    // Buckets 0 and 10 of the last minute; everything else empty.
    assert_eq!(s.start[0], 1_733_432_400);
    assert_eq!((s.requests[0], s.errors[0]), (2, 1));
    assert_eq!((s.requests[10], s.errors[10]), (1, 0));
    assert_eq!(s.p50_ms[10], Some(20.0));
    let busy: Vec<usize> = (0..BUCKETS).filter(|&i| s.requests[i] > 0).collect();
    assert_eq!(busy, [0, 10]);
    assert!(s.p50_ms[59].is_none() && s.requests[59] == 0);
    // In 5 s buckets: t = 0 and t = 10 are the 12th and 10th bucket
    // before the current one (t = 55..59).
    let (summary, s) = read(&r, Window::FiveMinutes);
    assert_consistent(&summary, &s);
    let busy: Vec<usize> = (0..BUCKETS).filter(|&i| s.requests[i] > 0).collect();
    assert_eq!(busy, [59 - 11, 59 - 9]);
    assert_eq!(s.start[48], 1_733_432_400);
    // In 1 min buckets all three are in the current one.
    let (summary, s) = read(&r, Window::OneHour);
    assert_consistent(&summary, &s);
    assert_eq!(s.requests[59], 3);
    assert_eq!(s.requests.iter().sum::<u64>(), 3);
}

#[test]
fn the_current_bucket_is_partial_and_grows() {
    let (clock, r) = setup();
    r.record(sample(200, 1));
    assert_eq!(read(&r, Window::OneMinute).1.requests[59], 1);
    // More in the same second, after a reader sealed the first part.
    r.record(sample(200, 1));
    r.record(sample(500, 1));
    let (summary, s) = read(&r, Window::OneMinute);
    assert_eq!((s.requests[59], s.errors[59]), (3, 1));
    assert_consistent(&summary, &s);
    // A 5 s bucket keeps filling over its seconds, and then is history.
    clock.advance(3);
    r.record(sample(200, 1));
    assert_eq!(read(&r, Window::FiveMinutes).1.requests[59], 4);
    clock.advance(2);
    let (_, s) = read(&r, Window::FiveMinutes);
    assert_eq!((s.requests[58], s.requests[59]), (4, 0));
}

#[test]
fn bucket_percentiles_are_within_one_percent_and_never_above_the_max() {
    let (clock, r) = setup();
    for ms in 1..=100 {
        r.record(sample(200, ms));
    }
    clock.advance(1);
    r.record(sample(200, 20));
    let (_, s) = read(&r, Window::OneMinute);
    let (p50, p99) = (s.p50_ms[58].unwrap(), s.p99_ms[58].unwrap());
    assert!((p50 - 50.0).abs() / 50.0 <= 0.01, "{p50}");
    assert!((p99 - 99.0).abs() / 99.0 <= 0.01, "{p99}");
    // One request: both percentiles are that request, capped at its
    // exact latency rather than the middle of its cell.
    assert_eq!((s.p50_ms[59], s.p99_ms[59]), (Some(20.0), Some(20.0)));
}

#[test]
fn the_series_rolls_over_as_the_clock_moves_past_the_window() {
    let (clock, r) = setup();
    r.record(sample(200, 1)); // t = 0
    clock.advance(59);
    let (_, s) = read(&r, Window::OneMinute);
    assert_eq!(s.requests[0], 1, "still the oldest bucket");
    clock.advance(1);
    let (summary, s) = read(&r, Window::OneMinute);
    assert_eq!(summary.requests, 0);
    assert!(s.requests.iter().all(|&n| n == 0));
    assert_eq!(s.start[0], 1_733_432_401);
    // A slot reused on the next lap holds only the new lap's figures.
    r.record(sample(200, 3)); // t = 60, the slot of t = 0
    let (summary, s) = read(&r, Window::OneMinute);
    assert_eq!(s.requests[59], 1);
    assert_eq!(s.p50_ms[59], Some(3.0));
    assert_consistent(&summary, &s);
    // Far past every window: 60 empty buckets, ending now.
    clock.advance(10 * 3600);
    for window in Window::ALL {
        let (summary, s) = read(&r, window);
        assert_eq!(summary.requests, 0);
        assert_eq!(s.requests, vec![0; BUCKETS]);
        assert_eq!(s.p99_ms, vec![None; BUCKETS]);
        assert!(*s.start.last().unwrap() + window.bucket_secs() > clock.now_secs());
    }
}

#[test]
fn recorders_read_at_one_now_share_their_start_times() {
    let (clock, a) = setup();
    let b = Recorder::new(Arc::new(clock.clone()));
    b.record(sample(200, 1));
    let now = a.now_secs();
    clock.advance(1); // a reader's second may end between two recorders
    let sa = a.summary_at(Window::OneMinute, now, true).series.unwrap();
    let sb = b.summary_at(Window::OneMinute, now, true).series.unwrap();
    assert_eq!(sa.start, sb.start);
    assert_eq!(sb.requests[59], 1);
}

#[test]
fn without_the_series_the_answer_is_unchanged() {
    let (_, r) = setup();
    r.record(sample(200, 1));
    let plain = r.summary(Window::OneMinute);
    assert!(plain.series.is_none());
    let json = serde_json::to_value(&plain).unwrap();
    assert!(json.get("series").is_none(), "{json}");
    let mut with = r.summary_at(Window::OneMinute, r.now_secs(), true);
    let series = serde_json::to_value(with.series.take().unwrap()).unwrap();
    assert_eq!(with, plain);
    let mut keys: Vec<&str> = series.as_object().unwrap().keys().map(|k| &**k).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bucket_seconds",
            "errors",
            "p50_ms",
            "p99_ms",
            "requests",
            "start"
        ]
    );
}

/// Readers copy one consistent view while threads record and the clock
/// moves: every answer's series adds up to its totals, and nothing is
/// counted twice or lost.
#[test]
fn sums_equal_totals_in_every_answer_while_traffic_flows() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (clock, r) = setup();
    let done = AtomicBool::new(false);
    // The recorders start once the reader has answered once, so reads and
    // records overlap however the threads are scheduled (on a busy machine
    // the recorders could otherwise finish before the reader first ran).
    let reading = AtomicBool::new(false);
    let answers = std::thread::scope(|scope| {
        let recorders: Vec<_> = (0..3u64)
            .map(|t| {
                let r = &r;
                let reading = &reading;
                scope.spawn(move || {
                    while !reading.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                    for i in 0..20_000u64 {
                        let status = if (i + t) % 10 == 0 { 503 } else { 200 };
                        r.record(sample(status, 1 + i % 50));
                    }
                })
            })
            .collect();
        // The clock moves a second every 100 µs, so seconds end (and the
        // 1m window rolls) under the readers' feet, but stays well inside
        // the hour, whose ring must end up holding every request.
        scope.spawn(|| {
            for _ in 0..1_000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                clock.advance(1);
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        let reader = scope.spawn(|| {
            let mut answers = 0;
            while !done.load(Ordering::Relaxed) {
                for window in Window::ALL {
                    let (summary, s) = read(&r, window);
                    assert_consistent(&summary, &s);
                    answers += 1;
                }
                reading.store(true, Ordering::Release);
            }
            answers
        });
        for t in recorders {
            t.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(answers > 0);
    assert!(clock.now_secs() - 1_733_432_400 < 3_000);
    let (summary, s) = read(&r, Window::OneHour);
    assert_consistent(&summary, &s);
    assert_eq!(summary.requests, 60_000);
    assert_eq!(summary.errors, 6_000);
}

#[test]
fn the_query_takes_series_true_and_nothing_else() {
    assert_eq!(wants_series(None), Ok(false));
    assert_eq!(wants_series(Some("")), Ok(false));
    assert_eq!(wants_series(Some("series=true")), Ok(true));
    assert_eq!(wants_series(Some("&series=true&")), Ok(true));
    for (query, names) in [
        ("series=maybe", "series"),
        ("series=false", "series"),
        ("series", "series"),
        ("series=TRUE", "series"),
        ("bogus=1", "\"bogus\""),
        ("series=true&bogus", "\"bogus\""),
    ] {
        let message = wants_series(Some(query)).unwrap_err().0;
        assert!(message.contains(names), "{query}: {message}");
    }
}
