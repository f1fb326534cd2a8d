//! DNS discovery: the backends are the addresses a name resolves to.
//!
//! Meant for a Kubernetes headless Service, whose A/AAAA records are the
//! ready pods' IPs. Every `discovery.interval` the name is resolved again
//! and the registry reconciled: new addresses are registered as
//! `<first label of the name>-<ip>` (dots and colons as dashes), vanished
//! ones removed (their requests in flight finish). Only servers that
//! discovery added are ever removed by it. A failed lookup changes nothing,
//! so a DNS hiccup does not empty the registry. Addresses in
//! `admin.denied_networks` are left out (and logged), as they would be
//! when connecting.
//!
//! Depends on `backends` (which it feeds), `config`, `spec` and
//! `upstream::resolve`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use crate::backends::{Registered, Registry, Source};
use crate::config::DiscoverySettings;
use crate::spec::ServerSpec;
use crate::upstream::resolve::Resolver;

/// Resolves and reconciles until `stop` resolves.
pub async fn run(
    settings: DiscoverySettings,
    registry: Arc<Registry>,
    resolver: Resolver,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(name = %settings.dns_name, port = settings.port, interval = ?settings.interval, "DNS discovery on");
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut stop => return,
        }
        match resolve(&resolver, &settings.dns_name, settings.port).await {
            Ok(ips) => reconcile(&registry, &settings, &ips).await,
            Err(e) => {
                tracing::warn!(name = %settings.dns_name, error = %e, "DNS discovery lookup failed; keeping the current servers")
            }
        }
    }
}

async fn resolve(resolver: &Resolver, name: &str, port: u16) -> std::io::Result<BTreeSet<IpAddr>> {
    let (denied, allowed): (BTreeSet<IpAddr>, BTreeSet<IpAddr>) =
        tokio::net::lookup_host((name, port))
            .await?
            .map(|a| a.ip())
            .partition(|ip| resolver.is_denied(*ip));
    if !denied.is_empty() {
        tracing::warn!(%name, ?denied, "discovered addresses in admin.denied_networks left out");
    }
    Ok(allowed)
}

/// The name a discovered address is registered under.
pub fn server_name(dns_name: &str, ip: &IpAddr) -> String {
    let label = dns_name.split('.').next().unwrap_or("backend");
    let ip = ip.to_string().replace(['.', ':'], "-");
    let mut name = format!("{label}-{ip}");
    name.truncate(63);
    name
}

/// Makes the discovered servers in `registry` exactly `ips`.
pub async fn reconcile(
    registry: &Arc<Registry>,
    settings: &DiscoverySettings,
    ips: &BTreeSet<IpAddr>,
) {
    let wanted: Vec<ServerSpec> = ips
        .iter()
        .map(|ip| ServerSpec {
            name: server_name(&settings.dns_name, ip),
            url: match ip {
                IpAddr::V4(v4) => format!("http://{v4}:{}", settings.port),
                IpAddr::V6(v6) => format!("http://[{v6}]:{}", settings.port),
            },
            weight: None,
        })
        .collect();
    for name in registry.names_from(Source::Discovery) {
        if !wanted.iter().any(|s| s.name == name) {
            if let Ok(Some(_)) = registry.remove_from(Source::Discovery, &name).await {
                tracing::info!(%name, "discovered server gone; removed");
            }
        }
    }
    for spec in &wanted {
        match registry.register(spec, Source::Discovery).await {
            Ok((Registered::Created, _)) => {
                tracing::info!(name = %spec.name, url = %spec.url, "discovered server added");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(name = %spec.name, error = %e, "discovered server not added"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use observability::clock::SystemClock;

    #[tokio::test]
    async fn reconcile_adds_and_removes_only_its_own() {
        let registry = Arc::new(Registry::new(Arc::new(SystemClock)));
        let manual = ServerSpec {
            name: "manual".into(),
            url: "http://127.0.0.1:9".into(),
            weight: None,
        };
        registry.register(&manual, Source::Api).await.unwrap();
        let settings = DiscoverySettings {
            dns_name: "backend.default.svc.cluster.local".into(),
            ..DiscoverySettings::default()
        };
        let ips: BTreeSet<IpAddr> =
            ["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()].into();
        reconcile(&registry, &settings, &ips).await;
        let names = registry.names_from(Source::Discovery);
        assert_eq!(names, ["backend-10-0-0-1", "backend-10-0-0-2"]);
        assert_eq!(
            registry.get("backend-10-0-0-1").unwrap().url,
            "http://10.0.0.1:5000"
        );

        let ips: BTreeSet<IpAddr> = ["10.0.0.2".parse().unwrap(), "::1".parse().unwrap()].into();
        reconcile(&registry, &settings, &ips).await;
        assert_eq!(
            registry.names_from(Source::Discovery),
            ["backend-10-0-0-2", "backend---1"]
        );
        assert!(registry.get("manual").is_some());
    }

    #[tokio::test]
    async fn localhost_resolves_and_denied_addresses_are_left_out() {
        let ips = resolve(&Resolver::default(), "localhost", 80)
            .await
            .unwrap();
        assert!(!ips.is_empty());
        let loopback = Resolver::new(&["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        let ips = resolve(&loopback, "localhost", 80).await.unwrap();
        assert!(ips.is_empty(), "{ips:?}");
    }
}
