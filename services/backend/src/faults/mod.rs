//! Fault injection on `/api/data`: extra latency, error answers, and
//! requests that hang, get their connection reset, or find the listener
//! closed.
//!
//! The configured faults (the `faults` settings) are in force until the
//! fault API changes them, and again when it clears them or the change's
//! `duration` runs out. A request may override the latency and status of
//! the faults in force (`?delay_ms=`, `?status=`); the mode applies all the
//! same.
//!
//! Each module depends only on those listed after it, and on the backend's
//! `config` (the shared range rules):
//!
//! - [`api`]: `GET`, `PUT` and `DELETE /api/faults`.
//! - [`state`]: the faults in force, their expiry, and waiting for a change.
//! - [`metrics`]: the faults in force on `/metrics`.
//! - [`plan`]: one request's delay and status.
//! - [`spec`]: what faults are, and reading a change to them.

pub mod api;
pub mod metrics;
pub mod plan;
pub mod spec;
pub mod state;

pub use spec::{Faults, Mode};
pub use state::FaultState;
