//! One `/api/data` request's delay and status under the faults in force.
//!
//! The faults (configured, or set at run time) apply to every request; a
//! request may override them with `?delay_ms=N` (exact delay, replaces the
//! faults' one) and `?status=N` (answer with that status). Every delay is
//! capped by `faults.max_delay`, so a typo cannot hang a test run.
//!
//! Depends on `spec` only.

use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

use super::spec::Faults;

/// Per-request overrides from the query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Delay before answering, in milliseconds.
    pub delay_ms: Option<u64>,
    /// Status to answer with (200 to 599).
    pub status: Option<u16>,
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Wait this long before answering.
    pub delay: Duration,
    /// Answer with this status instead of 200.
    pub status: Option<u16>,
}

/// A bad override, with a message naming the parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOverride(pub String);

/// Decides the faults for one request under `faults`, no delay longer
/// than `max_delay`.
pub fn plan(
    faults: &Faults,
    max_delay: Duration,
    overrides: &Overrides,
) -> Result<Plan, InvalidOverride> {
    let delay = match overrides.delay_ms {
        Some(ms) => {
            let requested = Duration::from_millis(ms);
            if requested > max_delay {
                return Err(InvalidOverride(format!(
                    "delay_ms: {ms} exceeds the maximum of {} ms",
                    max_delay.as_millis()
                )));
            }
            requested
        }
        None => delay(faults, max_delay),
    };
    let status = match overrides.status {
        Some(s @ 200..=599) => Some(s),
        Some(s) => {
            return Err(InvalidOverride(format!(
                "status: {s} is not between 200 and 599"
            )))
        }
        None if faults.error_rate > 0.0 && rand::rng().random_bool(faults.error_rate) => {
            Some(faults.error_status)
        }
        None => None,
    };
    Ok(Plan { delay, status })
}

fn delay(faults: &Faults, max_delay: Duration) -> Duration {
    let jitter = if faults.jitter.is_zero() {
        Duration::ZERO
    } else {
        let nanos = u64::try_from(faults.jitter.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    };
    (faults.latency + jitter).min(max_delay)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::FaultSettings;

    const MAX: Duration = Duration::from_secs(30);

    fn off() -> Faults {
        Faults::configured(&FaultSettings::default())
    }

    #[test]
    fn off_by_default() {
        let p = plan(&off(), MAX, &Overrides::default()).unwrap();
        assert_eq!(
            p,
            Plan {
                delay: Duration::ZERO,
                status: None
            }
        );
    }

    #[test]
    fn overrides_are_bounded_and_named() {
        let s = off();
        let p = plan(
            &s,
            MAX,
            &Overrides {
                delay_ms: Some(30_000),
                status: Some(503),
            },
        )
        .unwrap();
        assert_eq!(p.delay, Duration::from_secs(30));
        assert_eq!(p.status, Some(503));
        let e = plan(
            &s,
            MAX,
            &Overrides {
                delay_ms: Some(30_001),
                status: None,
            },
        )
        .unwrap_err();
        assert!(e.0.starts_with("delay_ms"), "{e:?}");
        let e = plan(
            &s,
            MAX,
            &Overrides {
                delay_ms: None,
                status: Some(99),
            },
        )
        .unwrap_err();
        assert!(e.0.starts_with("status"), "{e:?}");
    }

    #[test]
    fn error_rate_and_jitter_apply() {
        let s = Faults {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            error_rate: 1.0,
            error_status: 503,
            ..off()
        };
        for _ in 0..100 {
            let p = plan(&s, MAX, &Overrides::default()).unwrap();
            assert_eq!(p.status, Some(503));
            assert!(p.delay >= Duration::from_millis(10) && p.delay <= Duration::from_millis(15));
        }
        let half = Faults {
            error_rate: 0.5,
            ..off()
        };
        let errors = (0..2000)
            .filter(|_| {
                plan(&half, MAX, &Overrides::default())
                    .unwrap()
                    .status
                    .is_some()
            })
            .count();
        assert!((800..1200).contains(&errors), "{errors}");
    }
}
