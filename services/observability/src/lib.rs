//! What the `gateway` and `backend` services record and report about
//! themselves: request statistics, log lines and traces.
//!
//! # Layout
//!
//! - [`stats`]: sliding 1-minute, 5-minute and 1-hour windows of request
//!   counts and latency percentiles, behind `/api/stats/{window}`;
//!   [`clock`]: the time source the windows read, swappable in tests.
//! - [`telemetry`]: logging (plain text or JSON lines) and OpenTelemetry
//!   tracing start-up, W3C trace-context propagation helpers;
//!   [`log_writer`]: log lines batched per runtime thread on their way to
//!   stdout; [`log_line`]: the per-request line formatted by hand, byte for
//!   byte as the subscriber would; [`log_settings`]: the `log` settings and
//!   filter parsing both use; [`escape`]: values from outside made safe
//!   for a log line.
//! - [`install_crypto_provider`]: the TLS provider the OTLP exporter (and
//!   every other reqwest client in the process) needs.
//!
//! # Dependencies
//!
//! Third-party crates only: no other crate of this workspace. The Prometheus
//! metrics are not here but in `serving`, because their per-request observer
//! is the server's `Observe` hook and `serving` already depends on this
//! crate (for its spans and escaped log fields).

pub mod clock;
pub mod escape;
pub mod log_line;
pub mod log_settings;
pub mod log_writer;
pub mod stats;
pub mod telemetry;

/// Installs the TLS crypto provider (ring) that every reqwest client in the
/// process needs, https backends and the OTLP exporter alike. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
