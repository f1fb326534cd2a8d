//! Wiring: build the state, serve the routes, stop gracefully.
//!
//! Depends on `config`, `routes`, `handlers` and `faults` (the shared
//! state), and on `serving` and `observability`.

use std::future::Future;
use std::sync::Arc;

use observability::clock::SystemClock;
use observability::stats::Recorder;
use serving::metrics::{HttpServerMetrics, ServerObserver};
use serving::server::Drain;
use serving::shutdown::Readiness;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::faults::metrics::FaultMetrics;
use crate::faults::{FaultState, Faults};
use crate::handlers::{AppState, Instance};
use crate::routes;

/// Serves the backend on `listener` until `shutdown` resolves, then turns
/// `/readyz` to 503, waits `shutdown.delay`, closes the listener and drains
/// requests in flight for up to `shutdown.drain_timeout`.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Drain> {
    let port = listener.local_addr()?.port();
    let registry = serving::metrics::new_registry();
    let server_metrics = HttpServerMetrics::register(&registry).map_err(std::io::Error::other)?;
    let configured = Faults::configured(&settings.faults);
    let fault_metrics =
        FaultMetrics::register(&registry, &configured).map_err(std::io::Error::other)?;
    let faults = FaultState::new(configured, settings.faults.max_delay, fault_metrics);
    let stats = Recorder::new(Arc::new(SystemClock));
    let readiness = Readiness::new();
    let state = Arc::new(AppState {
        instance: Instance {
            name: settings.instance_name(port),
            port,
            hostname: hostname(),
        },
        faults,
        admin_token: Some(settings.admin.token.clone()).filter(|t| !t.is_empty()),
        stats: stats.clone(),
        registry,
        readiness: readiness.clone(),
    });
    tracing::info!(
        name = %state.instance.name,
        address = %listener.local_addr()?,
        "backend listening"
    );

    let observer = ServerObserver::new(Some(server_metrics), routes::classify, Some(stats));
    let delay = settings.shutdown.delay;
    let stopping = async move {
        shutdown.await;
        readiness.set_not_ready();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    };
    let drain = serving::server::serve(
        listener,
        routes::Routes::new(state),
        observer,
        &settings.http,
        stopping,
        settings.shutdown.drain_timeout,
    )
    .await;
    tracing::info!(?drain, "backend stopped");
    Ok(drain)
}

/// The host (or pod) name: `HOSTNAME` when set, else the kernel's.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
