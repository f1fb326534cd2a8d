//! Host names resolved under `admin.denied_networks`.
//!
//! The registration policy can only check a literal address when a backend
//! is registered; a host name is resolved when connecting, and may point
//! anywhere (a DNS name for 169.254.169.254, a Kubernetes ExternalName
//! Service). Every connection to a backend by name therefore goes through
//! [`Resolver`]: the plain-HTTP client's ([`Resolver::connect`]), reqwest's
//! for `https` backends and health checks (as its `reqwest::dns::Resolve`),
//! and DNS discovery's lookups. Addresses in a denied network are left out;
//! when none is left, the lookup fails with a [`Denied`] error that names the
//! policy, and no connection is made. Literal IP authorities are connected
//! to as they are, without a lookup (registration checked them).
//!
//! Depends on `policy` (the network rules) only.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use tokio::net::TcpStream;

use crate::policy::in_networks;

/// Resolves host names, leaving out denied addresses. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    denied: Arc<[IpNet]>,
}

/// Every address a name resolved to is in a denied network.
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} resolves only to addresses in admin.denied_networks ({}); no connection was made",
    addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
)]
pub struct Denied {
    /// The name looked up.
    pub host: String,
    /// What it resolved to.
    pub addresses: Vec<IpAddr>,
}

impl Resolver {
    /// Leaves out addresses in `denied`.
    pub fn new(denied: &[IpNet]) -> Self {
        Resolver {
            denied: denied.into(),
        }
    }

    /// Whether connecting to `ip` is refused.
    pub fn is_denied(&self, ip: IpAddr) -> bool {
        in_networks(&self.denied, ip)
    }

    /// The addresses `host` resolves to, in the resolver's order, without
    /// denied ones. An error of kind `PermissionDenied` carrying [`Denied`]
    /// when every address was denied.
    pub async fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        let allowed: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| !self.is_denied(a.ip()))
            .collect();
        if allowed.is_empty() && !found.is_empty() {
            let mut addresses: Vec<IpAddr> = found.iter().map(SocketAddr::ip).collect();
            addresses.dedup();
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                Denied {
                    host: host.to_owned(),
                    addresses,
                },
            ));
        }
        Ok(allowed)
    }

    /// A TCP connection to `authority` (`host:port`, `[v6]:port`): a literal
    /// address directly, a name to each allowed address in turn until one
    /// answers (the last error otherwise).
    pub async fn connect(&self, authority: &str) -> io::Result<TcpStream> {
        if let Ok(address) = authority.parse::<SocketAddr>() {
            return TcpStream::connect(address).await;
        }
        let invalid = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{authority:?} is not host:port"),
            )
        };
        let (host, port) = authority.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        let mut last = None;
        for address in self.lookup(host, port).await? {
            match TcpStream::connect(address).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} resolves to no address"),
            )
        }))
    }
}

/// Whether `error`, or an error in its chain, is a [`Denied`] refusal.
pub fn is_denied(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        // An `io::Error`'s `source()` skips the error it wraps.
        let wrapped = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref);
        if e.is::<Denied>() || wrapped.is_some_and(|w| w.is::<Denied>()) {
            return true;
        }
        next = e.source();
    }
    false
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            // reqwest puts the URL's port on the addresses.
            let addresses = this.lookup(name.as_str(), 0).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn loopback_denied() -> Resolver {
        Resolver::new(&["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()])
    }

    #[tokio::test]
    async fn names_resolving_only_to_denied_networks_are_refused_naming_the_policy() {
        let e = loopback_denied().lookup("localhost", 80).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(is_denied(&e));
        let text = e.to_string();
        assert!(
            text.contains("admin.denied_networks") && text.contains("127.0.0.1"),
            "{text}"
        );
        let allowed = Resolver::default().lookup("localhost", 80).await.unwrap();
        assert!(allowed
            .iter()
            .all(|a| a.port() == 80 && a.ip().is_loopback()));
        assert!(!allowed.is_empty());
    }

    #[tokio::test]
    async fn literal_addresses_are_connected_to_without_a_lookup() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        // Denied or not: a literal address was checked at registration.
        assert!(loopback_denied().connect(&authority).await.is_ok());
        let by_name = format!("localhost:{}", listener.local_addr().unwrap().port());
        let e = loopback_denied().connect(&by_name).await.unwrap_err();
        assert!(is_denied(&e), "{e}");
        for bad in ["nohostport", "x:port", "x:99999"] {
            let e = Resolver::default().connect(bad).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
        }
    }
}
