//! Wiring: build the shared state from settings, serve, stop gracefully.

use std::future::Future;
use std::sync::Arc;

use common::clock::SystemClock;
use common::metrics::{HttpServerMetrics, ServerObserver};
use common::server::Drain;
use common::shutdown::Readiness;
use common::stats::Recorder;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::AdminState;
use crate::balancer::Balancer;
use crate::config::{Settings, UpstreamSettings};
use crate::metrics::GatewayMetrics;
use crate::proxy::ProxyState;
use crate::registry::{Registry, Source};
use crate::routes::{self, AppState};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listener's address could not be read.
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
    /// A metric could not be registered (a programming error).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The upstream client could not be built.
    #[error("upstream client: {0}")]
    Client(#[from] reqwest::Error),
    /// A static server from the settings was refused.
    #[error("servers: {0}")]
    Server(#[from] crate::registry::RegistryError),
}

/// Serves the gateway on `listener` until `shutdown` resolves, then turns
/// `/readyz` to 503, waits `shutdown.delay`, closes the listener and drains
/// requests in flight for up to `shutdown.drain_timeout`.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Drain, StartupError> {
    let address = listener.local_addr()?;
    let metrics_registry = common::metrics::new_registry();
    let server_metrics = HttpServerMetrics::register(&metrics_registry)?;
    let gateway_metrics = GatewayMetrics::register(&metrics_registry)?;

    let registry = Arc::new(Registry::new(Arc::new(SystemClock)));
    for spec in &settings.servers {
        registry.register(spec, Source::Config)?;
    }

    let readiness = Readiness::new();
    let proxy = Arc::new(ProxyState {
        registry: registry.clone(),
        balancer: Balancer::new(settings.balancer.strategy),
        client: upstream_client(&settings.upstream)?,
        request_timeout: settings.upstream.request_timeout,
        stats: Recorder::new(Arc::new(SystemClock)),
        metrics: gateway_metrics,
        access_log: settings.log.access_log,
    });
    let token = Some(settings.admin.token.clone()).filter(|t| !t.is_empty());
    let state = Arc::new(AppState {
        proxy,
        admin: Arc::new(AdminState {
            registry: registry.clone(),
            token: token.clone(),
        }),
        metrics_registry,
        readiness: readiness.clone(),
    });

    // Background tasks stop when this flips.
    let (stopped_tx, stopped_rx) = watch::channel(false);
    if !settings.discovery.dns_name.is_empty() {
        let mut rx = stopped_rx.clone();
        tokio::spawn(crate::discovery::run(
            settings.discovery.clone(),
            registry.clone(),
            async move {
                let _ = rx.wait_for(|stopped| *stopped).await;
            },
        ));
    }

    tracing::info!(
        %address,
        strategy = ?settings.balancer.strategy,
        servers = settings.servers.len(),
        admin_token = token.is_some(),
        "gateway listening"
    );
    if token.is_none() {
        tracing::warn!("no admin token configured: anyone who can reach this port can change the backend registry");
    }

    let delay = settings.shutdown.delay;
    let stopping = async move {
        shutdown.await;
        readiness.set_not_ready();
        let _ = stopped_tx.send(true);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    };
    let observer = ServerObserver::new(server_metrics, routes::classify, None);
    let drain = common::server::serve(
        listener,
        routes::routes(state),
        observer,
        &settings.http,
        stopping,
        settings.shutdown.drain_timeout,
    )
    .await;
    tracing::info!(?drain, "gateway stopped");
    Ok(drain)
}

/// The one client all upstream calls share: keep-alive pooled, no proxy
/// from the environment, redirects passed through to the client untouched.
fn upstream_client(settings: &UpstreamSettings) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .tcp_nodelay(true)
        .build()
}

/// Installs the TLS crypto provider that https backends (and any other
/// reqwest client in this process) use. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
