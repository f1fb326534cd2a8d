//! Shutdown signals and readiness.
//!
//! A service stops in three steps: readiness turns false (load balancers and
//! Kubernetes stop sending new work), the listener closes after an optional
//! delay, and requests in flight get a bounded drain time. [`Readiness`] is
//! the flag `/readyz` reports; [`signal`] resolves on SIGTERM or SIGINT.
//!
//! Depends on nothing else in the crate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether the service wants new traffic. Cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// Starts ready.
    pub fn new() -> Self {
        Readiness(Arc::new(AtomicBool::new(true)))
    }

    /// True until [`Readiness::set_not_ready`].
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Marks the service as draining.
    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                    _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
                }
                return;
            }
            _ => tracing::warn!("could not install signal handlers; falling back to Ctrl-C"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
