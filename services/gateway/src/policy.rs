//! The registration policy: which destinations the admin API may point the
//! gateway at. Without it, anyone who can register a backend can make the
//! gateway an open proxy into the cluster or to a cloud metadata service.
//!
//! A host name must match `admin.allowed_hosts` and not be in
//! `admin.denied_hosts`; an IP address must be inside
//! `admin.allowed_networks` and outside `admin.denied_networks`. Names are
//! not resolved here: resolution happens at connect time and may change, so
//! the addresses a name resolves to are checked against
//! `admin.denied_networks` then ([`crate::upstream::resolve`]).
//!
//! Depends on `config` and `spec`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::AdminSettings;
use crate::spec::FieldError;

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    allowed_hosts: Vec<String>,
    denied_hosts: Vec<String>,
    allowed_networks: Vec<IpNet>,
    denied_networks: Vec<IpNet>,
}

impl Policy {
    /// From the `admin` settings.
    pub fn new(settings: &AdminSettings) -> Self {
        let lower = |v: &[String]| v.iter().map(|h| h.to_ascii_lowercase()).collect();
        Policy {
            allowed_hosts: lower(&settings.allowed_hosts),
            denied_hosts: lower(&settings.denied_hosts),
            allowed_networks: settings.allowed_networks.clone(),
            denied_networks: settings.denied_networks.clone(),
        }
    }

    /// Checks a registration URL (already validated as a URL).
    pub fn check(&self, url: &str) -> Result<(), FieldError> {
        let refuse = |message: String| FieldError {
            field: "url",
            message,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| refuse(e.to_string()))?;
        match parsed.host() {
            Some(url::Host::Ipv4(v4)) => self.check_ip(IpAddr::V4(v4)).map_err(refuse),
            Some(url::Host::Ipv6(v6)) => {
                let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
                self.check_ip(ip).map_err(refuse)
            }
            Some(url::Host::Domain(name)) => self.check_name(name).map_err(refuse),
            None => Err(refuse("has no host".into())),
        }
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if in_networks(&self.denied_networks, ip) {
            return Err(format!(
                "{ip} is in a denied network (admin.denied_networks)"
            ));
        }
        if !self.allowed_networks.iter().any(|n| n.contains(&ip)) {
            return Err(format!("{ip} is outside admin.allowed_networks"));
        }
        Ok(())
    }

    fn check_name(&self, name: &str) -> Result<(), String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.denied_hosts.contains(&name) {
            return Err(format!("host {name:?} is denied (admin.denied_hosts)"));
        }
        if self.allowed_hosts.iter().any(|p| host_matches(p, &name)) {
            Ok(())
        } else {
            Err(format!("host {name:?} does not match admin.allowed_hosts"))
        }
    }
}

/// Whether `ip` is in one of `networks`; an IPv4-mapped IPv6 address
/// counts as its IPv4 address.
pub fn in_networks(networks: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    networks.iter().any(|n| n.contains(&ip))
}

/// `**` any name, `*` any single label, `*.suffix` any name ending in
/// `.suffix`, otherwise an exact (case-insensitive) match.
fn host_matches(pattern: &str, name: &str) -> bool {
    match pattern {
        "**" => true,
        "*" => !name.contains('.'),
        p => match p.strip_prefix("*.") {
            Some(suffix) => name.len() > suffix.len() + 1 && name.ends_with(&format!(".{suffix}")),
            None => p == name,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_allow_local_and_cluster_destinations_only() {
        let p = Policy::new(&AdminSettings::default());
        for ok in [
            "http://localhost:5000",
            "http://127.0.0.1:5000",
            "http://[::1]:5000",
            "http://server1:5000",
            "http://backend-0.backend.default.svc.cluster.local:5000",
            "http://backend.default.svc:5000",
            "http://10.1.2.3:5000",
            "http://192.168.1.1",
            "http://172.20.0.5",
        ] {
            assert!(p.check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:169.254.169.254]/",
            "http://[fe80::1]/",
            "http://0.0.0.0:80",
            "http://8.8.8.8",
            "http://example.com",
            "http://metadata.google.internal",
            "http://metadata/computeMetadata",
            "http://METADATA.google.internal.",
            "http://224.0.0.1",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
        ] {
            let e = p.check(bad).expect_err(bad);
            assert_eq!(e.field, "url");
        }
    }

    #[test]
    fn patterns() {
        assert!(host_matches("*.svc", "a.b.svc"));
        assert!(!host_matches("*.svc", "svc"));
        assert!(!host_matches("*.svc", "asvc"));
        assert!(host_matches("*", "server1"));
        assert!(!host_matches("*", "a.b"));
        assert!(host_matches("**", "anything.example.com"));
        assert!(host_matches("api.example.com", "api.example.com"));
    }
}
