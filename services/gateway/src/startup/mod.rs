//! Wiring: build the shared state from settings, serve, stop gracefully.
//!
//! At the top: depends on every module it wires together, and nothing
//! depends on it but `main.rs` and the tests.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use observability::clock::SystemClock;
use observability::stats::Recorder;
use serving::metrics::{HttpServerMetrics, ServerObserver};
use serving::server::Drain;
use serving::shutdown::Readiness;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{AdminState, Changes};
use crate::balancer::Balancer;
use crate::config::{Settings, Strategy};
use crate::health::Outlier;
use crate::metrics::GatewayMetrics;
use crate::policy::Policy;
use crate::proxy::retry::RetryBudget;
use crate::proxy::ProxyState;
use crate::reports::About;
use crate::routes::{self, AppState};
use crate::upstream::resolve::Resolver;
use crate::upstream::Upstream;

mod parts;
mod workers;

pub use parts::install_crypto_provider;
use parts::{build_client, build_registry, health_client, tls_client};
pub use workers::run_workers;
use workers::serve_main;

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
    Server(#[from] crate::backends::RegistryError),
    /// The state file could not be loaded.
    #[error("{0}")]
    StateFile(#[from] crate::state_file::StateFileError),
    /// The public listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// host:port.
        address: String,
        /// Why binding failed.
        source: std::io::Error,
    },
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

/// Everything the gateway shares between its workers: built once from the
/// settings, then served on one or more listeners.
#[derive(Debug)]
pub struct Gateway {
    settings: Settings,
    state: Arc<AppState>,
    observer: ServerObserver,
}

/// Resolves once shutdown has reached the point where listeners close
/// (after the readiness delay); cheap to clone into every worker.
#[derive(Debug, Clone)]
pub struct Stopped(watch::Receiver<bool>);

impl Stopped {
    /// Waits for the stop.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

impl Gateway {
    /// Builds the registry (static servers, saved registrations), metrics
    /// and shared state. Needs no runtime.
    pub fn new(settings: Settings) -> Result<Self, StartupError> {
        let metrics_registry = serving::metrics::new_registry();
        let server_metrics = HttpServerMetrics::register(&metrics_registry)?;
        let gateway_metrics = GatewayMetrics::register(&metrics_registry)?;
        let no_https = tls_client(&settings.upstream, Resolver::default())
            .build()
            .err()
            .map(|e| {
                format!(
                    "{} (install CA certificates, or point SSL_CERT_FILE or SSL_CERT_DIR at them)",
                    crate::upstream::error_chain(&e)
                )
            });
        if let Some(reason) = &no_https {
            tracing::warn!(%reason, "https backends are not available");
        }
        let registry = Arc::new(build_registry(
            &settings,
            gateway_metrics.clone(),
            no_https,
        )?);
        let proxy = Arc::new(ProxyState {
            registry: registry.clone(),
            balancer: Balancer::from_settings(&settings.balancer),
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
            metrics: gateway_metrics,
            access_log: settings.log.access_log,
            record_stats: settings.stats.enabled,
            record_metrics: settings.metrics.enabled,
            body_idle_timeout: settings.upstream.body_idle_timeout,
        });
        let token = Some(settings.admin.token.clone()).filter(|t| !t.is_empty());
        let state = Arc::new(AppState {
            proxy,
            admin: Arc::new(AdminState {
                registry,
                token,
                policy: Policy::new(&settings.admin),
                max_body_bytes: settings.admin.max_body_bytes,
            }),
            metrics_registry,
            readiness: Readiness::new(),
            about: About::new(&settings),
        });
        let server_metrics = Some(server_metrics).filter(|_| settings.metrics.enabled);
        let observer = ServerObserver::new(server_metrics, routes::classify, None);
        Ok(Gateway {
            settings,
            state,
            observer,
        })
    }

    /// The stop sequence: when `shutdown` resolves, `/readyz` turns 503,
    /// `shutdown.delay` passes, then everything holding the returned
    /// [`Stopped`] closes its listener and drains. Spawned on the current
    /// runtime.
    pub fn stop_on(&self, shutdown: impl Future<Output = ()> + Send + 'static) -> Stopped {
        let (tx, rx) = watch::channel(false);
        let readiness = self.state.readiness.clone();
        let delay = self.settings.shutdown.delay;
        tokio::spawn(async move {
            shutdown.await;
            readiness.set_not_ready();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let _ = tx.send(true);
        });
        Stopped(rx)
    }

    /// Starts health checks and DNS discovery on the current runtime.
    pub fn spawn_background(&self, stopped: &Stopped) -> Result<(), StartupError> {
        let registry = &self.state.proxy.registry;
        if !self.settings.discovery.dns_name.is_empty() {
            tokio::spawn(crate::discovery::run(
                self.settings.discovery.clone(),
                registry.clone(),
                self.resolver(),
                stopped.clone().wait(),
            ));
        }
        if self.settings.health_check.enabled {
            tokio::spawn(crate::health::run_checks(
                self.settings.health_check.clone(),
                registry.clone(),
                health_client(&self.settings, self.resolver())?,
                self.state.proxy.metrics.clone(),
                stopped.clone().wait(),
            ));
        }
        Ok(())
    }

    /// Serves the public routes on `listener` until stopped, then drains.
    /// Each call gets its own upstream client, so a worker's connections to
    /// backends stay on that worker's runtime.
    pub async fn serve_public(
        &self,
        listener: TcpListener,
        changes: Changes,
        stopped: Stopped,
    ) -> Result<Drain, StartupError> {
        let resolver = self.resolver();
        let tls = build_client(|| tls_client(&self.settings.upstream, resolver.clone()))?;
        let upstream = Upstream::new(&self.settings.upstream, tls, self.resolver());
        Ok(serving::server::serve(
            listener,
            routes::Routes::public(self.state.clone(), upstream, changes),
            self.observer.clone(),
            &self.settings.http,
            stopped.wait(),
            self.settings.shutdown.drain_timeout,
        )
        .await)
    }

    /// What every connection to a backend by name resolves through.
    fn resolver(&self) -> Resolver {
        Resolver::new(&self.settings.admin.denied_networks)
    }

    /// Serves the registration API alone on the admin listener.
    pub async fn serve_admin(&self, listener: TcpListener, stopped: Stopped) -> Drain {
        serving::server::serve(
            listener,
            routes::Routes::admin(self.state.clone()),
            self.observer.clone(),
            &self.settings.http,
            stopped.wait(),
            self.settings.shutdown.drain_timeout,
        )
        .await
    }

    fn log_start(&self, address: &str, admin: Option<std::net::SocketAddr>, workers: usize) {
        let token = self.state.admin.token.is_some();
        tracing::info!(
            address,
            admin = %admin.map_or("same port".to_owned(), |a| a.to_string()),
            workers,
            strategy = %self.settings.balancer.strategy.name(),
            servers = self.state.proxy.registry.snapshot().backends.len(),
            admin_token = token,
            "gateway listening"
        );
        if !token {
            tracing::warn!("no admin token configured: anyone who can reach the admin API can change the backend registry");
        }
        let balancer = &self.settings.balancer;
        if balancer.strategy != Strategy::Hash && !balancer.hash.key.is_empty() {
            tracing::warn!(
                strategy = %balancer.strategy.name(),
                "balancer.hash.key is set but only the hash strategy reads it"
            );
        }
        if balancer.strategy != Strategy::PeakEwma && balancer.peak_ewma != Default::default() {
            tracing::warn!(
                strategy = %balancer.strategy.name(),
                "balancer.peak_ewma is set but only the peak_ewma strategy reads it"
            );
        }
    }
}

/// Serves the gateway on `listener` until `shutdown` resolves, then turns
/// `/readyz` to 503, waits `shutdown.delay`, closes the listener and drains
/// requests in flight for up to `shutdown.drain_timeout`. When
/// `admin.listen` is set, the admin listener is bound here too. One
/// listener on the current runtime: what tests use; the binary serves with
/// [`run_workers`].
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
    let gateway = Arc::new(Gateway::new(settings)?);
    let stopped = gateway.stop_on(shutdown);
    gateway.spawn_background(&stopped)?;
    let admin_address = listeners.admin.as_ref().and_then(|l| l.local_addr().ok());
    gateway.log_start(
        &listeners.public.local_addr()?.to_string(),
        admin_address,
        1,
    );
    let drain = serve_main(&gateway, listeners.public, listeners.admin, stopped).await?;
    tracing::info!(?drain, "gateway stopped");
    Ok(drain)
}
