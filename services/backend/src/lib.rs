//! The dummy backend: the upstream that the gateway load-balances over.
//!
//! `GET /api/data` answers a small JSON document naming the instance that
//! served it. On top of that it has the same operational endpoints as the
//! gateway (`/healthz`, `/readyz`, `/metrics`, `/api/stats/{window}`) and
//! bounded fault injection for experiments, changeable at run time
//! (`/api/faults`).
//!
//! # Layout
//!
//! Each module depends only on those listed after it, and on the `serving`,
//! `observability` and `launch` crates:
//!
//! - [`startup`]: [`run`], which serves the routes on a given listener until
//!   shutdown; `main.rs` only parses flags and calls it.
//! - [`routes`]: the route table and the dispatch of every request;
//!   [`handlers`]: what each route answers, and the state they share.
//! - [`dashboard`]: the live page at `/dashboard` (its own HTML and script;
//!   the shared files come from `serving::dashboard`).
//! - [`faults`]: injected latency, errors, hangs, resets and refused
//!   connections: configured, set at run time (`/api/faults`), or per
//!   request.
//! - [`config`]: typed settings and their validation.

pub mod config;
pub mod dashboard;
pub mod faults;
pub mod handlers;
pub mod routes;
pub mod startup;

pub use startup::run;
