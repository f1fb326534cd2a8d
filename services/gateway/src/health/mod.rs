//! What watches the backends and takes failing ones out of rotation:
//! [`checks`], the active health checks that mark a backend `down` and `up`
//! again, and [`outlier`], passive ejection of a backend that keeps failing
//! real requests.
//!
//! Both change a backend's state (`crate::backends::Health`) and ask the
//! registry for a new snapshot; they depend on `backends`, `config`,
//! `metrics`, `outcome` and `upstream` (to describe a failed probe), and
//! nothing in those depends on them.

pub mod checks;
pub mod outlier;

pub use checks::run_checks;
pub use outlier::Outlier;
