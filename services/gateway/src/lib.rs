//! The gateway: a reverse proxy that load-balances requests over backends
//! registered at run time, with windowed statistics and Prometheus metrics.
//!
//! # Layout
//!
//! Layers: a module uses modules of its own row or of rows below it, never
//! above, and there are no cycles (checked against the `use crate::` lines;
//! every module's doc names what it uses):
//!
//! ```text
//!  wiring       startup, routes              the listeners, the route table, run()
//!  on top       proxy/  admin  reports       the request path, the admin API, the
//!               errors  dashboard/           stats/metrics/probe answers; every
//!                                            error mapped to its status; the
//!                                            live page at /dashboard
//!  around the   balancer  health/  metrics   pick a backend; watch and eject;
//!  backend set  state_file  discovery        count; persist; follow DNS;
//!               policy  upstream/  headers   what may be registered; the client
//!                                            to backends; what is forwarded
//!  the set      backends/                    registry, backend, state, schedule
//!  bottom       config/  spec  outcome       settings, registrations, how an
//!                                            attempt ended and whose fault it was
//! ```
//!
//! # A request, accept to answer
//!
//! [`startup`] binds the listeners and serves them ([`run`]); [`routes`]
//! looks the path up in its one table ([`routes::ROUTES`]) and sends the
//! gateway's own paths to their handlers ([`admin`], [`reports`]) and
//! everything else to [`proxy::handle`], which reads
//! top to bottom: read the client's body ([`proxy::client_body`]), admit
//! the request, pick an `up` backend with the [`balancer`] from the
//! registry's snapshot ([`backends`]), send it with the worker's
//! [`upstream`] client, wait for the answer and judge it (`proxy::attempt`,
//! giving an [`outcome::Outcome`]), then relay the answer
//! ([`proxy::relay`]) or retry ([`proxy::retry`]). Every attempt is booked
//! in one place (`proxy::booking`): the backend's stats and counters,
//! [`metrics`], and outlier detection ([`health::outlier`]).
//!
//! # A registration, POST to disk
//!
//! [`admin`] parses and checks the body ([`spec`], [`policy`]), then
//! [`backends::Registry::register`] plans the new set, hands the API
//! registrations to its [`backends::Store`] (the [`state_file`]) on a
//! blocking thread, and swaps the new snapshot in only once they are saved.
//! The metrics learn of the new backend through the registry's `on_added`
//! hook; the health checks ([`health::checks`]) find it in the next
//! snapshot.

pub mod admin;
pub mod backends;
pub mod balancer;
pub mod config;
pub mod dashboard;
pub mod discovery;
pub mod errors;
pub mod headers;
pub mod health;
pub mod metrics;
pub mod outcome;
pub mod policy;
pub mod proxy;
pub mod reports;
pub mod routes;
pub mod spec;
pub mod startup;
pub mod state_file;
pub mod upstream;

pub use startup::run;
