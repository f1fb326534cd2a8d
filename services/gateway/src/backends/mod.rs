//! The backend set: what is registered, in which state, and the snapshot
//! the request path reads.
//!
//! - [`registry`]: the set itself, its membership changes (register,
//!   replace, remove) and the lock-free [`Snapshot`];
//! - [`backend`]: one registered backend and its counters;
//! - [`state`]: `up`, `down`, `ejected`, `draining`, and why;
//! - [`latency`]: the latency estimate `peak_ewma` balancing reads;
//! - [`schedule`]: the weighted order built with each snapshot;
//! - [`ring`]: the consistent-hash ring built with each membership change.
//!
//! Depends only on `spec` and `observability` (stats windows, clock). Metrics,
//! persistence, health checks and balancing sit above it: they are handed
//! in (a hook, a [`Store`]) or read snapshots and change states.

pub mod backend;
pub mod latency;
pub mod registry;
pub mod ring;
pub mod schedule;
pub mod state;

pub use backend::{Backend, InFlight, ServerView, Source};
pub use registry::{Registered, Registry, RegistryError, Snapshot, Store, MAX_SERVERS};
pub use state::{EjectionCause, EjectionId, Health, State, StateChange};
