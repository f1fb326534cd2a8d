//! What a service binary does before it serves, shared by the `gateway` and
//! `backend` binaries.
//!
//! # Layout
//!
//! - [`cli`]: the `probe` subcommand and `--print-config`;
//!   [`probe`]: the tiny HTTP GET client behind `probe`, for health checks
//!   inside images that have no shell or curl.
//! - [`settings`]: layered configuration loading (defaults, file,
//!   environment) with errors that name the offending key.
//!
//! # Dependencies
//!
//! Third-party crates only: no other crate of this workspace, and no async
//! runtime (the probe uses blocking std I/O).

pub mod cli;
pub mod probe;
pub mod settings;
