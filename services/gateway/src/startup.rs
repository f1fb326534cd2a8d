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
use crate::backends::Registry;
use crate::balancer::Balancer;
use crate::config::{Settings, UpstreamSettings};
use crate::health::Outlier;
use crate::metrics::GatewayMetrics;
use crate::policy::Policy;
use crate::proxy::retry::RetryBudget;
use crate::proxy::ProxyState;
use crate::routes::{self, AppState};
use crate::state_file::StateFile;
use crate::upstream::resolve::Resolver;
use crate::upstream::Upstream;

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
            balancer: Balancer::new(settings.balancer.strategy),
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
            strategy = ?self.settings.balancer.strategy,
            servers = self.state.proxy.registry.snapshot().backends.len(),
            admin_token = token,
            "gateway listening"
        );
        if !token {
            tracing::warn!("no admin token configured: anyone who can reach the admin API can change the backend registry");
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

/// How the binary serves: `workers` threads, each with its own
/// single-threaded runtime, its own `SO_REUSEPORT` listener on the public
/// address and its own upstream connection pool. The kernel spreads
/// connections over the listeners, and a request never changes thread, which
/// saves the cross-thread wake-ups a work-stealing runtime pays on every
/// proxied request. Shared state (registry, stats, metrics) is lock-free or
/// sharded. Blocks until shutdown completes.
pub fn run_workers(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Drain, StartupError> {
    let workers = settings.effective_workers();
    let address = format!("{}:{}", settings.listen.host, settings.listen.port);
    let listeners = (0..workers)
        .map(|_| serving::server::bind_reuseport(&address))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
    let admin = if settings.admin.listen.is_empty() {
        None
    } else {
        let admin_address = settings.admin.listen.clone();
        Some(
            std::net::TcpListener::bind(&admin_address)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| StartupError::AdminListener {
                    address: admin_address,
                    source,
                })?,
        )
    };
    let changes = if admin.is_some() {
        Changes::Refused
    } else {
        Changes::Allowed
    };
    let gateway = Arc::new(Gateway::new(settings)?);
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            // Log lines queued during this turn of the event loop go out in
            // one write (observability::log_writer).
            .on_thread_park(observability::log_writer::flush_thread)
            .build()
            .map_err(StartupError::Listener)
    };

    let main_runtime = runtime()?;
    let mut listeners = listeners.into_iter();
    let first = listeners.next();
    let (stopped, mut handles) = main_runtime.block_on(async {
        let stopped = gateway.stop_on(shutdown);
        gateway.spawn_background(&stopped)?;
        let mut handles = Vec::new();
        for (i, listener) in listeners.enumerate() {
            let gateway = gateway.clone();
            let stopped = stopped.clone();
            let rt = runtime()?;
            let handle = std::thread::Builder::new()
                .name(format!("gateway-worker-{}", i + 1))
                .spawn(move || {
                    rt.block_on(async move {
                        let listener = TcpListener::from_std(listener)?;
                        gateway.serve_public(listener, changes, stopped).await
                    })
                })
                .map_err(StartupError::Listener)?;
            handles.push(handle);
        }
        Ok::<_, StartupError>((stopped, handles))
    })?;
    gateway.log_start(
        &address,
        admin.as_ref().and_then(|l| l.local_addr().ok()),
        workers,
    );

    let mut drain = main_runtime.block_on(async {
        let admin = admin.map(TcpListener::from_std).transpose()?;
        match first {
            Some(listener) => {
                serve_main(&gateway, TcpListener::from_std(listener)?, admin, stopped).await
            }
            None => Ok(Drain::Complete),
        }
    })?;
    for handle in handles.drain(..) {
        match handle.join() {
            Ok(Ok(Drain::TimedOut)) => drain = Drain::TimedOut,
            Ok(Ok(Drain::Complete)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => tracing::error!("a worker thread panicked"),
        }
    }
    tracing::info!(?drain, "gateway stopped");
    Ok(drain)
}

/// Serves the public listener on the current runtime, and the admin
/// listener beside it when there is one (the public port then refuses
/// registry changes). The drain timed out if either one's did.
async fn serve_main(
    gateway: &Arc<Gateway>,
    public: TcpListener,
    admin: Option<TcpListener>,
    stopped: Stopped,
) -> Result<Drain, StartupError> {
    let changes = if admin.is_some() {
        Changes::Refused
    } else {
        Changes::Allowed
    };
    let admin_server = admin.map(|listener| {
        let gateway = gateway.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move { gateway.serve_admin(listener, stopped).await })
    });
    let mut drain = gateway.serve_public(public, changes, stopped).await?;
    if let Some(admin) = admin_server {
        if let Ok(Drain::TimedOut) = admin.await {
            drain = Drain::TimedOut;
        }
    }
    Ok(drain)
}

/// The registry with the static servers and, when configured, the saved
/// API registrations (a static server wins over a saved one of its name).
/// Each backend holds its name's metric series until it is gone.
fn build_registry(
    settings: &Settings,
    metrics: GatewayMetrics,
    no_https: Option<String>,
) -> Result<Registry, StartupError> {
    let mut registry =
        Registry::new(Arc::new(SystemClock)).on_added(move |name| metrics.backend_added(name));
    if let Some(reason) = no_https {
        registry = registry.without_https(reason);
    }
    let (file, saved) = if settings.state_file.is_empty() {
        (None, Vec::new())
    } else {
        let file = StateFile::new(&settings.state_file);
        let saved = file.load()?;
        (Some(file), saved)
    };
    let (mut registry, shadowed) = registry.with_servers(&settings.servers, &saved)?;
    for name in &shadowed {
        tracing::warn!(%name, "saved registration shadowed by a static server of the same name");
    }
    if !saved.is_empty() {
        tracing::info!(servers = saved.len() - shadowed.len(), file = %settings.state_file, "registrations restored from the state file");
    }
    if let Some(file) = file {
        registry = registry.with_store(Arc::new(file));
    }
    Ok(registry)
}

/// A small client for health probes, apart from the proxy's pool so a
/// probe never waits behind (or takes) a proxied request's connection.
fn health_client(
    settings: &Settings,
    resolver: Resolver,
) -> Result<reqwest::Client, reqwest::Error> {
    build_client(|| {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.health_check.timeout)
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(settings.upstream.pool_idle_timeout)
            .dns_resolver(resolver.clone())
    })
}

/// The client for `https` backends: keep-alive pooled, no proxy from the
/// environment, redirects passed through to the client untouched.
/// Plain-HTTP backends use the gateway's own pooled client (`upstream`).
fn tls_client(settings: &UpstreamSettings, resolver: Resolver) -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .tcp_nodelay(true)
        .dns_resolver(resolver)
}

/// Builds a client; when it cannot be (without CA certificates the
/// platform verifier refuses to start), one that trusts no certificate
/// at all. Its https calls all fail, but no https backend can be
/// registered then (`Registry::without_https`), and plain-HTTP calls
/// (health checks) work as usual: the gateway starts without CA
/// certificates as long as it needs none.
fn build_client(
    builder: impl Fn() -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    builder()
        .build()
        .or_else(|_| builder().tls_certs_only(Vec::new()).build())
}

/// Installs the TLS crypto provider that https backends (and any other
/// reqwest client in this process) use. Idempotent.
pub fn install_crypto_provider() {
    observability::install_crypto_provider();
}
