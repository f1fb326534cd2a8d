//! Serving HTTP the same way in the `gateway` and the `backend`: both answer
//! their own routes and the operational endpoints through this crate, so they
//! accept, refuse, measure, answer errors and stop alike.
//!
//! # Layout
//!
//! - [`server`]: serving a service's request handler on a listener we
//!   bound ourselves, with header-read limits and a bounded graceful drain;
//!   `refusals`: requests refused before any route sees them;
//!   [`connection`]: what a handler may do to its connection (reset it) and
//!   to the listener (stop it for a while); [`write_stall`]: a bound on
//!   answers nobody reads; [`coalesce`]: small answers written with one
//!   `send` instead of a `writev`.
//! - [`metrics`]: the Prometheus registry and text encoder, the HTTP server
//!   metrics both services export on `/metrics`, the label rules, and the
//!   per-request observer the server calls.
//! - [`errors`]: the JSON error body both services use; [`methods`]: route
//!   templates, HEAD wherever GET is, and `Allow` on every 405; [`token`]:
//!   the bearer token admin calls may require.
//! - [`body`]: reading request bodies with a hard size limit;
//!   [`response`]: every answer's type, bytes or a stream.
//! - [`dashboard`]: the live page both services serve at `/dashboard`: the
//!   files every page shares (uPlot, stylesheet, polling and charts) and the
//!   answers that serve a page's files under a strict Content-Security-Policy.
//! - [`shutdown`]: turning SIGTERM/SIGINT into a future, and the readiness
//!   flag that `/readyz` reports.
//!
//! # Dependencies
//!
//! `observability` (server spans, escaped log fields, the stats windows the
//! observer records into) and `launch` (the settings error type that
//! [`server::HttpSettings`] validation returns), and `http1-client` for the
//! one `Transfer-Encoding` rule the server keeps for requests as the client
//! does for answers; none of them depends on this crate.

pub mod body;
pub mod coalesce;
pub mod connection;
pub mod dashboard;
pub mod errors;
pub mod methods;
pub mod metrics;
mod refusals;
pub mod response;
pub mod server;
pub mod shutdown;
pub mod token;
pub mod write_stall;
