//! Building blocks shared by the `gateway` and `backend` services.
//!
//! Both services answer the same operational endpoints in the same shape, so
//! everything that makes them alike lives here:
//!
//! - [`stats`]: sliding 1-minute, 5-minute and 1-hour windows of request
//!   counts and latency percentiles, behind `/api/stats/{window}`.
//! - [`body`]: reading request bodies with a hard size limit.
//! - [`cli`]: the `probe` subcommand and `--print-config`, shared by both
//!   binaries.
//! - [`clock`]: the time source the windows read, swappable in tests.
//! - [`metrics`]: the Prometheus registry, the HTTP server metrics both
//!   services export on `/metrics`, and the text encoder.
//! - [`telemetry`]: logging (plain text or JSON lines) and OpenTelemetry
//!   tracing start-up, W3C trace-context propagation helpers;
//!   [`log_writer`]: log lines batched per runtime thread on their way to
//!   stdout; [`log_line`]: the per-request line formatted by hand, byte for
//!   byte as the subscriber would; [`escape`]: values from outside made safe
//!   for a log line.
//! - [`settings`]: layered configuration loading (defaults, file,
//!   environment) with errors that name the offending key.
//! - [`server`]: serving a service's request handler on a listener we bound
//!   ourselves, with header-read limits and a bounded graceful drain; [`coalesce`]: small
//!   answers written with one `send` instead of a `writev`.
//! - [`shutdown`]: turning SIGTERM/SIGINT into a future, and the readiness
//!   flag that `/readyz` reports.
//! - [`errors`]: the JSON error body both services use; [`methods`]: route
//!   templates, HEAD wherever GET is, and `Allow` on every 405.
//! - [`probe`]: a tiny HTTP GET client for health checks inside images that
//!   have no shell or curl.

pub mod body;
pub mod cli;
pub mod clock;
pub mod coalesce;
pub mod errors;
pub mod escape;
pub mod log_line;
pub mod log_writer;
pub mod methods;
pub mod metrics;
pub mod probe;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod stats;
pub mod telemetry;

/// Installs the TLS crypto provider (ring) that every reqwest client in the
/// process needs, https backends and the OTLP exporter alike. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
