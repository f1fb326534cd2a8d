//! Sliding-window request statistics: the data behind `/api/stats/{window}`.
//!
//! Each [`Recorder`] keeps three rings of time buckets, one per [`Window`]:
//! 60 buckets of 1 s (1m), 60 of 5 s (5m) and 60 of 60 s (1h). A bucket holds
//! exact counters and the latencies as the used run of cells of an HDR
//! histogram with two significant digits ([`cells`]), so percentiles are
//! within 1%.
//!
//! Requests are recorded into the current second of a per-CPU shard (exact
//! counters and a full HDR histogram: one update per request, no contention
//! between threads). When the second is over, the shard's figures are folded
//! into all three rings at once, as compact cells: a dense histogram is about
//! 12 KB, the used cells of a second of real traffic a few hundred, stored
//! as varints of mostly one byte, so a series' memory is small and stops
//! growing once its rings are full. A
//! bucket is reused (cleared, keeping its allocation) when its slot comes
//! round again, so a reader only sums the buckets whose epoch lies inside the
//! window, plus the shards' current seconds.
//!
//! Time comes from a [`Clock`] so that tests can move it by hand.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::clock::Clock;

mod cells;
use cells::Cells;

/// Highest latency the histograms resolve, in microseconds (10 minutes).
/// Slower requests are counted at this value; `max` saturates there too.
const MAX_LATENCY_MICROS: u64 = 600_000_000;

/// Buckets per ring. Every window has the same resolution: 1/60 of its span.
const BUCKETS: usize = 60;

/// A statistics window served at `/api/stats/{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last minute, in 1-second buckets.
    OneMinute,
    /// The last five minutes, in 5-second buckets.
    FiveMinutes,
    /// The last hour, in 1-minute buckets.
    OneHour,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 3] = [Window::OneMinute, Window::FiveMinutes, Window::OneHour];

    /// Parses the path segment (`1m`, `5m`, `1h`).
    pub fn parse(name: &str) -> Option<Window> {
        match name {
            "1m" => Some(Window::OneMinute),
            "5m" => Some(Window::FiveMinutes),
            "1h" => Some(Window::OneHour),
            _ => None,
        }
    }

    /// The path segment naming this window.
    pub fn name(self) -> &'static str {
        match self {
            Window::OneMinute => "1m",
            Window::FiveMinutes => "5m",
            Window::OneHour => "1h",
        }
    }

    /// Seconds covered by one bucket.
    fn bucket_secs(self) -> u64 {
        match self {
            Window::OneMinute => 1,
            Window::FiveMinutes => 5,
            Window::OneHour => 60,
        }
    }

    /// Seconds covered by the whole window.
    pub fn span_secs(self) -> u64 {
        self.bucket_secs() * BUCKETS as u64
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What happened to one request, as the stats see it.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Status sent to the client (or received from the upstream, for
    /// per-backend series). `None` when no response was received at all.
    pub status: Option<u16>,
    /// Time from receiving the request to finishing the response head.
    pub latency: Duration,
}

impl Sample {
    /// Errors are 5xx answers and calls that got no answer.
    fn is_error(&self) -> bool {
        self.status.is_none_or(|s| s >= 500)
    }
}

/// The exact figures of a span of time; what every answer adds up.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    requests: u64,
    errors: u64,
    /// Counts by status class: 1xx..5xx, then "no response".
    classes: [u64; 6],
    latency_sum_micros: u64,
    /// Exact, since the histogram only knows values to within 1%.
    latency_max_micros: u64,
}

impl Counts {
    fn record(&mut self, sample: &Sample, micros: u64) {
        self.requests += 1;
        if sample.is_error() {
            self.errors += 1;
        }
        self.classes[class_index(sample.status)] += 1;
        self.latency_sum_micros = self.latency_sum_micros.saturating_add(micros);
        self.latency_max_micros = self.latency_max_micros.max(micros);
    }

    fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (total, n) in self.classes.iter_mut().zip(other.classes) {
            *total += n;
        }
        self.latency_sum_micros = self
            .latency_sum_micros
            .saturating_add(other.latency_sum_micros);
        self.latency_max_micros = self.latency_max_micros.max(other.latency_max_micros);
    }
}

fn new_histogram() -> Histogram<u32> {
    // Bounds are constants known to be valid; fall back to an auto-resizing
    // histogram rather than panicking if that ever changes.
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 2).unwrap_or_else(|_| {
        let mut h = Histogram::new(2).unwrap_or_else(|_| unreachable!("2 sigfigs is valid"));
        h.auto(true);
        h
    })
}

fn class_index(status: Option<u16>) -> usize {
    match status {
        Some(s @ 100..=599) => usize::from(s / 100) - 1,
        _ => 5,
    }
}

/// The current second on one shard: recorded into at full speed.
struct Current {
    /// The second these figures belong to; `u64::MAX` before the first.
    second: u64,
    counts: Counts,
    /// Allocated on first use and reused second after second.
    latency: Option<Histogram<u32>>,
}

/// One slot of a ring: a finished span of time.
struct Sealed {
    /// Which period (time / bucket span) the figures belong to; a slot whose
    /// epoch is stale is cleared before reuse.
    epoch: u64,
    counts: Counts,
    cells: Cells,
}

/// One ring of buckets for one window.
struct Ring {
    window: Window,
    buckets: Vec<Sealed>,
}

impl Ring {
    fn new(window: Window) -> Self {
        Ring {
            window,
            buckets: (0..BUCKETS)
                .map(|_| Sealed {
                    epoch: u64::MAX,
                    counts: Counts::default(),
                    cells: Cells::default(),
                })
                .collect(),
        }
    }

    /// Adds one sealed second to the bucket it falls in.
    fn fold(&mut self, second: u64, counts: &Counts, cells: &Cells) {
        let epoch = second / self.window.bucket_secs();
        let bucket = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            if bucket.epoch != u64::MAX && bucket.epoch > epoch {
                // Sealed so late that its slot already holds newer data.
                return;
            }
            bucket.epoch = epoch;
            bucket.counts = Counts::default();
            // Keeps its capacity: a ring in steady state stops allocating.
            bucket.cells.clear();
        }
        bucket.counts.add(counts);
        bucket.cells.add(cells);
    }

    fn live_buckets(&self, now: u64) -> impl Iterator<Item = &Sealed> {
        let current = now / self.window.bucket_secs();
        self.buckets
            .iter()
            .filter(move |b| b.epoch <= current && current - b.epoch < BUCKETS as u64)
    }
}

/// Request statistics for one series (the whole service, or one backend).
///
/// Cheap to share: clone the `Arc` the constructor returns.
pub struct Recorder {
    clock: Arc<dyn Clock>,
    /// When the series started, so that requests per second are not diluted
    /// by the part of a window before the process existed.
    started: u64,
    /// The current second, one per CPU: each thread records into its own
    /// shard (one histogram update per request), so workers do not contend.
    shards: Box<[Mutex<Current>]>,
    /// Finished seconds, folded into the three rings once per second per
    /// shard. Shared, and compact, so memory does not grow with the shards
    /// or with how long the process has run.
    history: Mutex<[Ring; 3]>,
}

/// Which shard the current thread records into.
fn shard_index(shards: usize) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i) % shards.max(1)
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("started", &self.started)
            .finish()
    }
}

impl Recorder {
    /// A new, empty series reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        let started = clock.now_secs();
        let shards = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(64);
        Arc::new(Recorder {
            clock,
            started,
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Current {
                        second: u64::MAX,
                        counts: Counts::default(),
                        latency: None,
                    })
                })
                .collect(),
            history: Mutex::new(Window::ALL.map(Ring::new)),
        })
    }

    /// Records one finished request. O(1): one histogram update, plus once
    /// per second a fold of the previous second into the rings.
    pub fn record(&self, sample: Sample) {
        let now = self.clock.now_secs();
        let micros = u64::try_from(sample.latency.as_micros())
            .unwrap_or(u64::MAX)
            .min(MAX_LATENCY_MICROS);
        let shard = &self.shards[shard_index(self.shards.len())];
        let mut current = shard.lock().unwrap_or_else(|p| p.into_inner());
        if current.second != now {
            self.seal(&mut current);
            current.second = now;
        }
        current.counts.record(&sample, micros);
        // Saturating record cannot fail: values are clamped to the range.
        current
            .latency
            .get_or_insert_with(new_histogram)
            .saturating_record(micros);
    }

    /// Moves a shard's figures into the rings and clears the shard. Lock
    /// order: shard, then history (never the other way round).
    fn seal(&self, current: &mut Current) {
        if current.counts.requests == 0 {
            return;
        }
        let cells = current
            .latency
            .as_ref()
            .map_or_else(Cells::default, Cells::from_histogram);
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        for ring in history.iter_mut() {
            ring.fold(current.second, &current.counts, &cells);
        }
        drop(history);
        current.counts = Counts::default();
        if let Some(h) = current.latency.as_mut() {
            h.reset();
        }
    }

    /// Summarizes the requests inside `window`, as of now.
    pub fn summary(&self, window: Window) -> Summary {
        let now = self.clock.now_secs();
        let mut merged = new_histogram();
        let mut counts = Counts::default();
        for shard in self.shards.iter() {
            let mut current = shard.lock().unwrap_or_else(|p| p.into_inner());
            if current.second < now {
                // A shard that went quiet: its last second is history now.
                self.seal(&mut current);
            } else if current.counts.requests > 0 {
                counts.add(&current.counts);
                if let Some(h) = &current.latency {
                    // Same bounds everywhere, so adding cannot fail.
                    let _ = merged.add(h);
                }
            }
        }
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        for bucket in history[window.index()].live_buckets(now) {
            counts.add(&bucket.counts);
            bucket.cells.record_into(&mut merged);
        }
        drop(history);
        let covered = (now.saturating_sub(self.started) + 1).min(window.span_secs());
        Summary::new(window, covered, &counts, &merged)
    }
}

/// Figures for one window, as served in JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// `1m`, `5m` or `1h`.
    pub window: &'static str,
    /// Length of the window.
    pub window_seconds: u64,
    /// How much of the window the series has existed for; the divisor of
    /// `requests_per_second`.
    pub covered_seconds: u64,
    /// Requests finished inside the window.
    pub requests: u64,
    /// `requests / covered_seconds`.
    pub requests_per_second: f64,
    /// 5xx answers plus calls that got no answer.
    pub errors: u64,
    /// `errors / requests` (0 when there were none).
    pub error_rate: f64,
    /// Counts by status class.
    pub status: StatusCounts,
    /// Latency percentiles in milliseconds.
    pub latency_ms: Latency,
}

/// Requests by status class.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StatusCounts {
    /// Informational answers.
    #[serde(rename = "1xx")]
    pub informational: u64,
    /// Successes.
    #[serde(rename = "2xx")]
    pub success: u64,
    /// Redirects.
    #[serde(rename = "3xx")]
    pub redirect: u64,
    /// Client errors.
    #[serde(rename = "4xx")]
    pub client_error: u64,
    /// Server errors.
    #[serde(rename = "5xx")]
    pub server_error: u64,
    /// Calls that got no HTTP answer at all (per-backend series only).
    pub no_response: u64,
}

/// Latency figures in milliseconds; all zero when there were no requests.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest request.
    pub max: f64,
    /// Exact arithmetic mean.
    pub mean: f64,
}

impl Summary {
    /// The answer for `window` from the figures of its buckets and their
    /// merged latency histogram.
    fn new(window: Window, covered_seconds: u64, counts: &Counts, h: &Histogram<u32>) -> Self {
        let [c1, c2, c3, c4, c5, none] = counts.classes;
        let mut summary = Summary {
            window: window.name(),
            window_seconds: window.span_secs(),
            covered_seconds,
            requests: counts.requests,
            requests_per_second: 0.0,
            errors: counts.errors,
            error_rate: 0.0,
            status: StatusCounts {
                informational: c1,
                success: c2,
                redirect: c3,
                client_error: c4,
                server_error: c5,
                no_response: none,
            },
            latency_ms: Latency::default(),
        };
        if counts.requests == 0 {
            return summary;
        }
        let requests = counts.requests as f64;
        summary.requests_per_second = round3(requests / covered_seconds.max(1) as f64);
        summary.error_rate = round6(counts.errors as f64 / requests);
        let max = counts.latency_max_micros;
        let ms = |micros: u64| round3(micros as f64 / 1000.0);
        // The middle of the value's 1% bucket halves the worst-case error;
        // no percentile may exceed the exact maximum.
        let quantile = |q: f64| ms(h.median_equivalent(h.value_at_quantile(q)).min(max));
        summary.latency_ms = Latency {
            p50: quantile(0.50),
            p90: quantile(0.90),
            p95: quantile(0.95),
            p99: quantile(0.99),
            max: ms(max),
            mean: round3(counts.latency_sum_micros as f64 / requests / 1000.0),
        };
        summary
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round6(x: f64) -> f64 {
    (x * 1_000_000.0).round() / 1_000_000.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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
}
