//! Sliding-window request statistics: the data behind `/api/stats/{window}`.
//!
//! Each [`Recorder`] keeps three rings of time buckets, one per [`Window`]:
//! 60 buckets of 1 s (1m), 60 of 5 s (5m) and 60 of 60 s (1h). A bucket holds
//! exact counters and the latencies as the used run of cells of an HDR
//! histogram with two significant digits (`cells`), so percentiles are
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
//! round again.
//!
//! A reader first seals every shard's figures so far, the current second
//! included, so that the ring alone holds the whole answer; it then copies
//! the window's buckets under one lock and works on the copy (`series`):
//! the totals and the per-bucket series come from that one copy and agree
//! exactly.
//!
//! Time comes from a [`Clock`] so that tests can move it by hand.
//!
//! Depends on [`crate::clock`] only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::clock::Clock;

mod cells;
mod series;
mod summary;

use cells::Cells;
use series::Snapshot;
pub use series::{wants_series, QueryError, Series};
pub use summary::{Latency, StatusCounts, Summary};

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

    /// This series' clock, in Unix seconds: the `now` to pass to
    /// [`Recorder::summary_at`].
    pub fn now_secs(&self) -> u64 {
        self.clock.now_secs()
    }

    /// Summarizes the requests inside `window`, as of now.
    pub fn summary(&self, window: Window) -> Summary {
        self.summary_at(window, self.clock.now_secs(), false)
    }

    /// Summarizes the requests inside the `window` that ends at `now` (a
    /// reading of [`Recorder::now_secs`]), with the per-bucket [`Series`]
    /// when `series` is set. Recorders read with the same `now` give their
    /// buckets the same start times.
    pub fn summary_at(&self, window: Window, now: u64, series: bool) -> Summary {
        let snapshot = self.snapshot(window, now);
        // No lock is held from here on: merging cells and reading
        // percentiles never delays a request being recorded.
        let (counts, merged) = snapshot.totals();
        let covered = (now.saturating_sub(self.started) + 1).min(window.span_secs());
        let mut summary = Summary::new(window, covered, &counts, &merged);
        if series {
            summary.series = Some(snapshot.series());
        }
        summary
    }

    /// Seals what every shard holds, then copies `window`'s buckets.
    ///
    /// Reading the shards and then the rings, as two steps, could count a
    /// second twice (a shard seals it in between) or not at all. Sealing
    /// the current second too puts everything recorded so far into the
    /// rings: the rest of that second is sealed later into the same
    /// bucket, where the two parts add up. The copy, under one lock, is
    /// then the one consistent view both the totals and the series are
    /// computed from. Each shard is held only for its own seal, as when a
    /// second ends; the history lock only for the copy of 60 buckets.
    fn snapshot(&self, window: Window, now: u64) -> Snapshot {
        for shard in self.shards.iter() {
            let mut current = shard.lock().unwrap_or_else(|p| p.into_inner());
            self.seal(&mut current);
        }
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = Snapshot::copy(&history[window.index()], now);
        drop(history);
        snapshot
    }
}

#[cfg(test)]
mod series_tests;
#[cfg(test)]
mod tests;
