//! Wiring: build the shared state from settings, serve, stop gracefully.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use common::clock::SystemClock;
use common::metrics::{HttpServerMetrics, ServerObserver};
use common::server::Drain;
use common::shutdown::Readiness;
use common::stats::Recorder;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{AdminState, Changes};
use crate::balancer::Balancer;
use crate::config::{Settings, UpstreamSettings};
use crate::metrics::GatewayMetrics;
use crate::outlier::Outlier;
use crate::policy::Policy;
use crate::proxy::ProxyState;
use crate::registry::{Registry, Source};
use crate::retry::RetryBudget;
use crate::routes::{self, AppState};
use crate::state_file::StateFile;

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
    /// The state file could not be loaded.
    #[error("{0}")]
    StateFile(#[from] crate::state_file::StateFileError),
    /// The admin listener could not be bound.
    #[error("admin.listen {address}: {source}")]
    AdminListener {
        /// The configured address.
        address: String,
        /// Why binding failed.
        source: std::io::Error,
    },
}

/// The sockets the gateway serves on.
#[derive(Debug)]
pub struct Listeners {
    /// Proxied traffic, stats, metrics, health, and (without a separate
    /// admin listener) the registration API.
    pub public: TcpListener,
    /// The registration API alone, when `admin.listen` is set.
    pub admin: Option<TcpListener>,
}

/// Serves the gateway on `listener` until `shutdown` resolves, then turns
/// `/readyz` to 503, waits `shutdown.delay`, closes the listener and drains
/// requests in flight for up to `shutdown.drain_timeout`. When
/// `admin.listen` is set, the admin listener is bound here too.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Drain, StartupError> {
    let admin = if settings.admin.listen.is_empty() {
        None
    } else {
        let address = settings.admin.listen.clone();
        Some(
            TcpListener::bind(&address)
                .await
                .map_err(|source| StartupError::AdminListener { address, source })?,
        )
    };
    run_with(
        Listeners {
            public: listener,
            admin,
        },
        settings,
        shutdown,
    )
    .await
}

/// [`run`] on listeners the caller bound (tests bind both on port 0).
pub async fn run_with(
    listeners: Listeners,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Drain, StartupError> {
    let address = listeners.public.local_addr()?;
    let metrics_registry = common::metrics::new_registry();
    let server_metrics = HttpServerMetrics::register(&metrics_registry)?;
    let gateway_metrics = GatewayMetrics::register(&metrics_registry)?;

    let registry = Arc::new(build_registry(&settings)?);
    let readiness = Readiness::new();
    let proxy = Arc::new(ProxyState {
        registry: registry.clone(),
        balancer: Balancer::new(settings.balancer.strategy),
        client: upstream_client(&settings.upstream)?,
        request_timeout: settings.upstream.request_timeout,
        attempt_timeout: settings.attempt_timeout(),
        retry: settings.retry.clone(),
        budget: RetryBudget::new(&settings.retry),
        outlier: Outlier::new(
            settings.outlier.clone(),
            registry.clone(),
            gateway_metrics.clone(),
        ),
        limits: settings.limits.clone(),
        in_flight: AtomicU64::new(0),
        stats: Recorder::new(Arc::new(SystemClock)),
        metrics: gateway_metrics.clone(),
        access_log: settings.log.access_log,
    });
    let token = Some(settings.admin.token.clone()).filter(|t| !t.is_empty());
    let state = Arc::new(AppState {
        proxy,
        admin: Arc::new(AdminState {
            registry: registry.clone(),
            token: token.clone(),
            policy: Policy::new(&settings.admin),
            max_body_bytes: settings.admin.max_body_bytes,
        }),
        metrics_registry,
        readiness: readiness.clone(),
    });

    // Background tasks and both servers stop when this flips.
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stopped_rx.clone();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    };
    if !settings.discovery.dns_name.is_empty() {
        tokio::spawn(crate::discovery::run(
            settings.discovery.clone(),
            registry.clone(),
            stopped(),
        ));
    }
    if settings.health_check.enabled {
        tokio::spawn(crate::health::run_checks(
            settings.health_check.clone(),
            registry.clone(),
            health_client(&settings)?,
            gateway_metrics,
            stopped(),
        ));
    }

    tracing::info!(
        %address,
        admin = %listeners.admin.as_ref().and_then(|l| l.local_addr().ok()).map_or("same port".to_owned(), |a| a.to_string()),
        strategy = ?settings.balancer.strategy,
        servers = registry.snapshot().backends.len(),
        admin_token = token.is_some(),
        "gateway listening"
    );
    if token.is_none() {
        tracing::warn!("no admin token configured: anyone who can reach the admin API can change the backend registry");
    }

    let delay = settings.shutdown.delay;
    tokio::spawn(async move {
        shutdown.await;
        readiness.set_not_ready();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let _ = stopped_tx.send(true);
    });
    let drain_timeout = settings.shutdown.drain_timeout;
    let changes = if listeners.admin.is_some() {
        Changes::Refused
    } else {
        Changes::Allowed
    };
    let observer = ServerObserver::new(server_metrics, routes::classify, None);
    let admin_server = listeners.admin.map(|listener| {
        let routes = routes::admin_routes(state.clone());
        let http = settings.http.clone();
        let observer = observer.clone();
        let stopping = stopped();
        tokio::spawn(async move {
            common::server::serve(listener, routes, observer, &http, stopping, drain_timeout).await
        })
    });
    let mut drain = common::server::serve(
        listeners.public,
        routes::routes(state, changes),
        observer,
        &settings.http,
        stopped(),
        drain_timeout,
    )
    .await;
    if let Some(admin) = admin_server {
        if let Ok(Drain::TimedOut) = admin.await {
            drain = Drain::TimedOut;
        }
    }
    tracing::info!(?drain, "gateway stopped");
    Ok(drain)
}

/// The registry with the static servers and, when configured, the saved
/// API registrations (a static server wins over a saved one of its name).
fn build_registry(settings: &Settings) -> Result<Registry, StartupError> {
    let mut registry = Registry::new(Arc::new(SystemClock));
    let saved = if settings.state_file.is_empty() {
        Vec::new()
    } else {
        let file = StateFile::new(&settings.state_file);
        let saved = file.load()?;
        registry = registry.with_state_file(file);
        saved
    };
    for spec in &settings.servers {
        registry.register(spec, Source::Config)?;
    }
    for spec in &saved {
        if registry.get(&spec.name).is_some() {
            tracing::warn!(name = %spec.name, "saved registration shadowed by a static server of the same name");
            continue;
        }
        registry.upsert(spec, Source::Api)?;
    }
    if !saved.is_empty() {
        tracing::info!(servers = saved.len(), file = %settings.state_file, "registrations restored from the state file");
    }
    Ok(registry)
}

/// A small client for health probes, apart from the proxy's pool so a
/// probe never waits behind (or takes) a proxied request's connection.
fn health_client(settings: &Settings) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.health_check.timeout)
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(settings.upstream.pool_idle_timeout)
        .build()
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
    common::install_crypto_provider();
}
