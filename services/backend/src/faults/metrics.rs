//! The faults in force, on `/metrics`: one gauge per value, the mode as a
//! gauge per mode (1 for the current one), and a count of changes.
//!
//! Depends on `spec` only, and on `prometheus`.

use prometheus::{Gauge, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

use super::spec::{Faults, Mode};

/// The fault metrics, registered on the backend's registry.
#[derive(Debug, Clone)]
pub struct FaultMetrics {
    latency: Gauge,
    jitter: Gauge,
    error_rate: Gauge,
    error_status: IntGauge,
    mode: IntGaugeVec,
    changes: IntCounter,
}

impl FaultMetrics {
    /// Registers the metrics on `registry`, showing `faults`.
    pub fn register(registry: &Registry, faults: &Faults) -> prometheus::Result<Self> {
        let metrics = FaultMetrics {
            latency: Gauge::new(
                "backend_fault_latency_seconds",
                "Latency added to every /api/data answer.",
            )?,
            jitter: Gauge::new(
                "backend_fault_jitter_seconds",
                "Largest random delay added on top of the latency.",
            )?,
            error_rate: Gauge::new(
                "backend_fault_error_rate",
                "Share of /api/data answered with the fault error status.",
            )?,
            error_status: IntGauge::new(
                "backend_fault_error_status",
                "Status of injected error answers.",
            )?,
            mode: IntGaugeVec::new(
                Opts::new(
                    "backend_fault_mode",
                    "What /api/data does: 1 for the current mode, 0 for the others.",
                ),
                &["mode"],
            )?,
            changes: IntCounter::new(
                "backend_fault_changes_total",
                "Changes of the faults: set, cleared, or expired.",
            )?,
        };
        registry.register(Box::new(metrics.latency.clone()))?;
        registry.register(Box::new(metrics.jitter.clone()))?;
        registry.register(Box::new(metrics.error_rate.clone()))?;
        registry.register(Box::new(metrics.error_status.clone()))?;
        registry.register(Box::new(metrics.mode.clone()))?;
        registry.register(Box::new(metrics.changes.clone()))?;
        metrics.show(faults);
        Ok(metrics)
    }

    /// Shows `faults` as the ones in force.
    pub fn show(&self, faults: &Faults) {
        self.latency.set(faults.latency.as_secs_f64());
        self.jitter.set(faults.jitter.as_secs_f64());
        self.error_rate.set(faults.error_rate);
        self.error_status.set(i64::from(faults.error_status));
        for (mode, name) in Mode::ALL {
            self.mode
                .with_label_values(&[name])
                .set(i64::from(mode == faults.mode));
        }
    }

    /// Counts one change.
    pub fn changed(&self) {
        self.changes.inc();
    }
}
