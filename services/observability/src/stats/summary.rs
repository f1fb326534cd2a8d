//! What a window's figures look like when served: counts by status class,
//! rates and latency percentiles, from the window's merged buckets.
//!
//! Depends on the windows' figures in [`super`] and the per-bucket
//! [`Series`] type of `series`.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Counts, Series, Window};

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
    /// The window bucket by bucket, when asked for (`?series=true`); read
    /// from the same copy of the buckets as the figures above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Series>,
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
    pub(super) fn new(
        window: Window,
        covered_seconds: u64,
        counts: &Counts,
        h: &Histogram<u32>,
    ) -> Self {
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
            series: None,
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

pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round6(x: f64) -> f64 {
    (x * 1_000_000.0).round() / 1_000_000.0
}
