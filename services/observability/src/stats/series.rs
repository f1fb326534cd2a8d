//! One consistent copy of a window's buckets, and what is served from it:
//! the window's totals and, with `?series=true`, one entry per bucket, so
//! that the two always agree.
//!
//! A [`Snapshot`] is taken under the history lock: it copies the window's
//! 60 buckets (exact counters plus compact cells, a few hundred bytes
//! each). Everything costly happens on the copy with no lock held:
//! merging the cells for the window's percentiles, and each bucket's own
//! percentiles, read straight from its cells. A reader therefore holds up
//! recording only for that copy.
//!
//! Also the query string of `/api/stats/{window}` ([`wants_series`]), read
//! the same way by both services.
//!
//! Depends on the rings and counters in [`super`] and on [`super::cells`].

use hdrhistogram::Histogram;
use serde::Serialize;

use super::cells::Cells;
use super::{new_histogram, summary::round3, Counts, Ring, Window, BUCKETS};

/// The buckets of one window as of one second, copied out of its ring.
pub(super) struct Snapshot {
    window: Window,
    /// The period (time / bucket span) of the oldest bucket.
    first_epoch: u64,
    /// One entry per period from `first_epoch` to the current one, oldest
    /// first; a period whose slot holds nothing of it is empty.
    buckets: Vec<(Counts, Cells)>,
}

impl Snapshot {
    /// Copies the buckets of `ring` inside the window that ends at `now`:
    /// the current (partial) period and the 59 before it.
    pub(super) fn copy(ring: &Ring, now: u64) -> Snapshot {
        let current = now / ring.window.bucket_secs();
        // Only a clock less than a window past the Unix epoch (tests) has
        // fewer periods behind it than the ring has slots.
        let first_epoch = current.saturating_sub(BUCKETS as u64 - 1);
        let buckets = (first_epoch..=current)
            .map(|epoch| {
                let slot = &ring.buckets[(epoch % BUCKETS as u64) as usize];
                // A slot not (or no longer) holding this period: it had no
                // traffic, or the ring has moved past it.
                if slot.epoch == epoch {
                    (slot.counts, slot.cells.clone())
                } else {
                    (Counts::default(), Cells::default())
                }
            })
            .collect();
        Snapshot {
            window: ring.window,
            first_epoch,
            buckets,
        }
    }

    /// The window's figures: every bucket's counts added up, and their
    /// latencies in one histogram for the percentiles.
    pub(super) fn totals(&self) -> (Counts, Histogram<u32>) {
        let mut counts = Counts::default();
        let mut merged = new_histogram();
        for (c, cells) in &self.buckets {
            counts.add(c);
            cells.record_into(&mut merged);
        }
        (counts, merged)
    }

    /// One entry per bucket, from the same copy as [`Snapshot::totals`], so
    /// the series' counts add up to the totals exactly.
    pub(super) fn series(&self) -> Series {
        let bucket_seconds = self.window.bucket_secs();
        let n = self.buckets.len();
        let mut series = Series {
            bucket_seconds,
            start: Vec::with_capacity(n),
            requests: Vec::with_capacity(n),
            errors: Vec::with_capacity(n),
            p50_ms: Vec::with_capacity(n),
            p99_ms: Vec::with_capacity(n),
        };
        for (epoch, (counts, cells)) in (self.first_epoch..).zip(&self.buckets) {
            // As in the totals: the middle of the value's 1% cell, never
            // above the bucket's exact maximum.
            let ms = |q: f64| {
                cells
                    .value_at_quantile(q)
                    .map(|micros| round3(micros.min(counts.latency_max_micros) as f64 / 1000.0))
            };
            series.start.push(epoch * bucket_seconds);
            series.requests.push(counts.requests);
            series.errors.push(counts.errors);
            series.p50_ms.push(ms(0.50));
            series.p99_ms.push(ms(0.99));
        }
        series
    }
}

/// A window's buckets, one array element per bucket, oldest first; the
/// last is the current, partial bucket. All arrays have the same length
/// (60, one per bucket of the window).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Series {
    /// Seconds per bucket: 1, 5 or 60.
    pub bucket_seconds: u64,
    /// Each bucket's start, in Unix seconds; a multiple of
    /// `bucket_seconds`.
    pub start: Vec<u64>,
    /// Requests finished in each bucket; they add up to the window's
    /// `requests`.
    pub requests: Vec<u64>,
    /// Errors in each bucket; they add up to the window's `errors`.
    pub errors: Vec<u64>,
    /// Median latency of each bucket in milliseconds, `null` when empty.
    pub p50_ms: Vec<Option<f64>>,
    /// 99th percentile of each bucket in milliseconds, `null` when empty.
    pub p99_ms: Vec<Option<f64>>,
}

/// A query string `/api/stats/{window}` does not take; the message names
/// the parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryError {}

/// Reads the query string of `/api/stats/{window}`: `Ok(true)` for
/// `series=true`, `Ok(false)` for no query at all. Anything else (another
/// value of `series`, another parameter) is refused rather than ignored,
/// so a misspelt request fails loudly instead of silently losing the
/// series.
pub fn wants_series(query: Option<&str>) -> Result<bool, QueryError> {
    let mut series = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (key, value) {
            ("series", "true") => series = true,
            ("series", _) => {
                return Err(QueryError(format!(
                    "series: {value:?} is not a valid value; use series=true or leave it out"
                )))
            }
            _ => {
                return Err(QueryError(format!(
                    "unknown query parameter {key:?}: /api/stats/{{window}} takes only series=true"
                )))
            }
        }
    }
    Ok(series)
}
