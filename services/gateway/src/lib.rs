//! The gateway: a reverse proxy that load-balances requests over backends
//! registered at run time, with windowed statistics and Prometheus metrics.
//!
//! A request's journey, module by module:
//!
//! - [`routes`]: the route table of the gateway's own routes
//!   (`/api/servers*` in [`admin`], `/api/stats/*`, `/metrics`, `/healthz`,
//!   `/readyz`, answered by [`reports`]), dispatched on hyper; everything
//!   else goes to [`proxy`].
//! - [`proxy`]: reads the client's body ([`request_body`]: limits, and the
//!   client's faults), picks a backend with the [`balancer`] from the
//!   [`registry`]'s current snapshot, forwards the request with the
//!   worker's [`upstream`] client (its own HTTP/1.1 codec on httparse with a
//!   keep-alive pool; reqwest for `https` backends), waits for and
//!   classifies the answer (`attempt`), relays it back ([`relay`], with
//!   [`idle`] timeouts on both bodies) and records it, when its body ends,
//!   in the stats windows (`common::stats`) and [`metrics`].
//! - [`headers`]: what is forwarded (hop-by-hop stripping, `X-Forwarded-*`,
//!   request ids).
//! - [`errors`]: every error the gateway answers with, mapped to its status
//!   in one place (no backends 503, unreachable 502, timeout 504, ...).
//! - [`health`]: backend states (up, down, ejected, draining) and the active
//!   health checks; [`outlier`]: passive ejection of failing backends;
//!   [`retry`]: what may be retried, and the retry budget.
//! - [`spec`]: what a registration says and how its URL is read;
//!   [`policy`]: which destinations the admin API may register;
//!   [`state_file`]: registrations that survive restarts.
//! - [`discovery`]: optional DNS discovery that keeps the registry in step
//!   with a headless Service.
//! - [`config`]: typed, layered settings; [`startup`]: [`run`], which wires
//!   it all together on a listener the caller bound.

pub mod admin;
mod attempt;
pub mod balancer;
pub mod config;
pub mod discovery;
pub mod errors;
pub mod headers;
pub mod health;
pub mod idle;
pub mod metrics;
pub mod outlier;
pub mod policy;
pub mod proxy;
pub mod registry;
pub mod relay;
pub mod reports;
pub mod request_body;
pub mod retry;
pub mod routes;
pub mod spec;
pub mod startup;
pub mod state_file;
pub mod upstream;

pub use startup::run;
