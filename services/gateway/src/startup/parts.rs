//! The parts [`super::Gateway`] is assembled from: the registry restored
//! from the settings and the state file, and the HTTP clients (health
//! probes, `https` backends). Depends on `backends`, `config`, `metrics`,
//! `state_file` and `upstream::resolve`.

use std::sync::Arc;

use observability::clock::SystemClock;

use super::StartupError;
use crate::backends::Registry;
use crate::config::{Settings, Strategy, UpstreamSettings};
use crate::metrics::GatewayMetrics;
use crate::state_file::StateFile;
use crate::upstream::resolve::Resolver;

/// The registry with the static servers and, when configured, the saved
/// API registrations (a static server wins over a saved one of its name).
/// Each backend holds its name's metric series until it is gone.
pub(super) fn build_registry(
    settings: &Settings,
    metrics: GatewayMetrics,
    no_https: Option<String>,
) -> Result<Registry, StartupError> {
    let mut registry =
        Registry::new(Arc::new(SystemClock)).on_added(move |name| metrics.backend_added(name));
    if let Some(reason) = no_https {
        registry = registry.without_https(reason);
    }
    if settings.balancer.strategy != Strategy::Hash {
        registry = registry.without_hash_ring();
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
pub(super) fn health_client(
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
pub(super) fn tls_client(
    settings: &UpstreamSettings,
    resolver: Resolver,
) -> reqwest::ClientBuilder {
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
pub(super) fn build_client(
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
