//! The settings loader against files, environment variables and their
//! errors.

#![allow(clippy::unwrap_used)]
use super::*;
use std::io::Write;

fn load_env(env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::load(&Sources::from_pairs(env))
}

#[test]
fn defaults() {
    let s = load_env(&[]).unwrap();
    assert_eq!(s.listen.port, 8000);
    assert_eq!(s.balancer.strategy, Strategy::RoundRobin);
    assert!(s.servers.is_empty());
    assert!(s.log.access_log);
}

#[test]
fn file_env_and_port_layer_in_order() {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    writeln!(
        f,
        "listen:\n  port: 9000\nbalancer:\n  strategy: least_outstanding\nservers:\n  - name: a\n    url: http://127.0.0.1:5000\n    weight: 3\nupstream:\n  request_timeout: 5s\n"
    )
    .unwrap();
    let sources = |env: &[(&str, &str)]| Sources {
        file: Some(f.path().into()),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let s = Settings::load(&sources(&[])).unwrap();
    assert_eq!(s.listen.port, 9000);
    assert_eq!(s.balancer.strategy, Strategy::LeastOutstanding);
    assert_eq!(s.servers[0].weight, Some(3));
    assert_eq!(s.upstream.request_timeout, Duration::from_secs(5));
    let s = Settings::load(&sources(&[("PORT", "9001")])).unwrap();
    assert_eq!(s.listen.port, 9001);
    let s = Settings::load(&sources(&[
        ("PORT", "9001"),
        ("GATEWAY__LISTEN__PORT", "9002"),
        ("GATEWAY__BALANCER__STRATEGY", "weighted_round_robin"),
        ("GATEWAY__UPSTREAM__CONNECT_TIMEOUT", "250ms"),
    ]))
    .unwrap();
    assert_eq!(s.listen.port, 9002);
    assert_eq!(s.balancer.strategy, Strategy::WeightedRoundRobin);
    assert_eq!(s.upstream.connect_timeout, Duration::from_millis(250));
}

/// Every key appears, at its default, in the commented example users
/// copy from, so the example can neither lag nor lie.
#[test]
fn the_example_file_documents_every_key_at_its_default() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/config/gateway.example.yaml"
    );
    let loaded = Settings::load(&Sources {
        file: Some(path.into()),
        env: vec![],
    })
    .unwrap();
    assert_eq!(loaded, Settings::default());
    let text = std::fs::read_to_string(path).unwrap();
    let mut missing = Vec::new();
    collect_keys(
        &serde_json::to_value(Settings::default()).unwrap(),
        &mut missing,
        &text,
    );
    assert!(
        missing.is_empty(),
        "keys missing from the example: {missing:?}"
    );
}

fn collect_keys(value: &serde_json::Value, missing: &mut Vec<String>, text: &str) {
    if let serde_json::Value::Object(map) = value {
        for (key, inner) in map {
            if !text.contains(&format!("{key}:")) {
                missing.push(key.clone());
            }
            collect_keys(inner, missing, text);
        }
    }
}

#[test]
fn print_config_redacts_the_token() {
    let s = load_env(&[("GATEWAY__ADMIN__TOKEN", "hunter2")]).unwrap();
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("hunter2"));
    assert!(json.contains("<redacted>"));
}

#[test]
fn compact_servers_from_the_environment() {
    let s = load_env(&[(
        "GATEWAY__SERVERS",
        "server1=http://localhost:5000, server2=http://localhost:5001",
    )])
    .unwrap();
    assert_eq!(s.servers.len(), 2);
    assert_eq!(s.servers[1].name, "server2");
    assert_eq!(s.servers[1].url, "http://localhost:5001");
}

#[test]
fn token_file_is_read_and_trimmed() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "  s3cret  ").unwrap();
    let path = f.path().to_str().unwrap().to_owned();
    let s = load_env(&[("GATEWAY__ADMIN__TOKEN_FILE", &path)]).unwrap();
    assert_eq!(s.admin.token, "s3cret");
    let e = load_env(&[("GATEWAY__ADMIN__TOKEN_FILE", "/nonexistent/token")]).unwrap_err();
    assert!(e.to_string().contains("admin.token_file"), "{e}");
}

#[test]
fn each_invalid_value_names_its_key() {
    for (key, value, expect) in [
        ("GATEWAY__LISTEN__PORT", "eighty", "listen.port"),
        ("GATEWAY__BALANCER__STRATEGY", "random", "strategy"),
        (
            "GATEWAY__UPSTREAM__CONNECT_TIMEOUT",
            "0s",
            "upstream.connect_timeout",
        ),
        (
            "GATEWAY__UPSTREAM__REQUEST_TIMEOUT",
            "fast",
            "upstream.request_timeout",
        ),
        (
            "GATEWAY__UPSTREAM__POOL_IDLE_TIMEOUT",
            "0s",
            "upstream.pool_idle_timeout",
        ),
        (
            "GATEWAY__UPSTREAM__POOL_MAX_IDLE_PER_HOST",
            "1000000",
            "upstream.pool_max_idle_per_host",
        ),
        ("GATEWAY__SERVERS", "server1", "name=url"),
        ("GATEWAY__SERVERS", "bad name=http://x", "servers[0].name"),
        ("GATEWAY__SERVERS", "a=ftp://x", "servers[0].url"),
        (
            "GATEWAY__SERVERS",
            "a=http://x,a=http://y",
            "servers[1].name",
        ),
        ("GATEWAY__DISCOVERY__DNS_NAME", "x", "discovery"),
        (
            "GATEWAY__HTTP__HEADER_READ_TIMEOUT",
            "0s",
            "http.header_read_timeout",
        ),
        ("GATEWAY__HTTP__WRITE_TIMEOUT", "0s", "http.write_timeout"),
        ("GATEWAY__HTTP__WRITE_TIMEOUT", "soon", "http.write_timeout"),
        ("GATEWAY__LOG__LEVEL", "loud[", "log.level"),
        ("GATEWAY__LOG__FORMAT", "xml", "format"),
        ("GATEWAY__NOPE", "1", "nope"),
        ("GATEWAY__ADMIN__LISTEN", "nine thousand", "admin.listen"),
        (
            "GATEWAY__ADMIN__ALLOWED_NETWORKS",
            "10.0.0.0/8,10.0.0.0/33",
            "allowed_networks",
        ),
        (
            "GATEWAY__HEALTH_CHECK__PATH",
            "healthz",
            "health_check.path",
        ),
        (
            "GATEWAY__HEALTH_CHECK__TIMEOUT",
            "5s",
            "health_check.timeout",
        ),
        (
            "GATEWAY__HEALTH_CHECK__UNHEALTHY_THRESHOLD",
            "0",
            "threshold",
        ),
        (
            "GATEWAY__OUTLIER__CONSECUTIVE_FAILURES",
            "0",
            "outlier.consecutive_failures",
        ),
        (
            "GATEWAY__OUTLIER__MAX_EJECTION_PERCENT",
            "101",
            "outlier.max_ejection_percent",
        ),
        (
            "GATEWAY__OUTLIER__BASE_EJECTION_TIME",
            "2m",
            "outlier.max_ejection_time",
        ),
        ("GATEWAY__RETRY__MAX_ATTEMPTS", "0", "retry.max_attempts"),
        (
            "GATEWAY__RETRY__PER_TRY_TIMEOUT",
            "0s",
            "retry.per_try_timeout",
        ),
        ("GATEWAY__RETRY__BUDGET_RATIO", "-1", "retry.budget_ratio"),
    ] {
        let env: Vec<(&str, &str)> = if key == "GATEWAY__DISCOVERY__DNS_NAME" {
            vec![(key, value), ("GATEWAY__DISCOVERY__INTERVAL", "1ms")]
        } else {
            vec![(key, value)]
        };
        let e = load_env(&env).unwrap_err().to_string();
        assert!(e.contains(expect), "{key}={value}: {e}");
    }
}

#[test]
fn peak_ewma_settings_are_read_and_checked() {
    let s = load_env(&[
        ("GATEWAY__BALANCER__STRATEGY", "peak_ewma"),
        ("GATEWAY__BALANCER__PEAK_EWMA__DECAY", "5s"),
        ("GATEWAY__BALANCER__PEAK_EWMA__DEFAULT_RTT", "20ms"),
    ])
    .unwrap();
    assert_eq!(s.balancer.strategy, Strategy::PeakEwma);
    assert_eq!(s.balancer.peak_ewma.decay, Duration::from_secs(5));
    assert_eq!(s.balancer.peak_ewma.default_rtt, Duration::from_millis(20));
    assert_eq!(s.balancer.peak_ewma.penalty, Duration::from_secs(1));
    for (key, value) in [
        ("GATEWAY__BALANCER__PEAK_EWMA__DECAY", "0s"),
        ("GATEWAY__BALANCER__PEAK_EWMA__DEFAULT_RTT", "0ms"),
        ("GATEWAY__BALANCER__PEAK_EWMA__PENALTY", "2h"),
    ] {
        let e = load_env(&[(key, value)]).unwrap_err().to_string();
        let named = key
            .trim_start_matches("GATEWAY__")
            .to_lowercase()
            .replace("__", ".");
        assert!(e.contains(&named), "{e}");
        assert!(e.contains("must be greater than zero"), "{e}");
    }
}

#[test]
fn hash_settings_are_read_and_checked() {
    let s = load_env(&[
        ("GATEWAY__BALANCER__STRATEGY", "hash"),
        ("GATEWAY__BALANCER__HASH__KEY", "header:X-User"),
        ("GATEWAY__BALANCER__HASH__FALLBACK", "random"),
    ])
    .unwrap();
    assert_eq!(s.balancer.strategy, Strategy::Hash);
    assert_eq!(s.balancer.hash.fallback, HashFallback::Random);
    assert_eq!(
        HashKey::parse(&s.balancer.hash.key),
        Ok(HashKey::Header(http::HeaderName::from_static("x-user")))
    );
    let s = load_env(&[
        ("GATEWAY__BALANCER__STRATEGY", "hash"),
        ("GATEWAY__BALANCER__HASH__KEY", "client_address"),
    ])
    .unwrap();
    assert_eq!(s.balancer.hash.fallback, HashFallback::RoundRobin);
    for (key, parsed) in [
        ("path", HashKey::Path),
        ("client_address", HashKey::ClientAddress),
        ("cookie:session", HashKey::Cookie("session".to_owned())),
        ("query:user", HashKey::Query("user".to_owned())),
    ] {
        assert_eq!(HashKey::parse(key), Ok(parsed));
    }
    for (key, expect) in [
        ("", "is required"),
        ("header:X User", "not a valid header name"),
        ("header:", "not a valid header name"),
        ("header:X-Us\u{e9}r", "not a valid header name"),
        ("cookie:a;b", "not a valid cookie name"),
        ("query:", "not a valid query parameter name"),
        ("query:a\tb", "not a valid query parameter name"),
        ("query:\u{fc}ser", "not a valid query parameter name"),
        ("query:a b", "not a valid query parameter name"),
        ("body", "is not one of"),
        ("Header:X-User", "is not one of"),
    ] {
        let e = load_env(&[
            ("GATEWAY__BALANCER__STRATEGY", "hash"),
            ("GATEWAY__BALANCER__HASH__KEY", key),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("balancer.hash.key"), "{key}: {e}");
        assert!(e.contains(expect), "{key}: {e}");
    }
    let long = format!("header:{}", "a".repeat(100_000));
    let e = load_env(&[
        ("GATEWAY__BALANCER__STRATEGY", "hash"),
        ("GATEWAY__BALANCER__HASH__KEY", &long),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("at most 256") && e.len() < 300, "{e}");
    let e = load_env(&[("GATEWAY__BALANCER__HASH__FALLBACK", "sticky")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("fallback"), "{e}");
    assert!(e.contains("expected one of round_robin, random"), "{e}");
}

#[test]
fn an_unknown_strategy_names_the_key_and_lists_the_strategies() {
    for value in ["bogus", "HASH", "peak-ewma", ""] {
        let e = load_env(&[("GATEWAY__BALANCER__STRATEGY", value)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("balancer.strategy"), "{value}: {e}");
        assert!(
            e.contains(
                "expected one of round_robin, weighted_round_robin, least_outstanding, peak_ewma, hash"
            ),
            "{value}: {e}"
        );
        assert!(!e.contains("enum"), "{value}: {e}");
    }
    for (name, strategy) in Strategy::ALL {
        let s = load_env(&[
            ("GATEWAY__BALANCER__STRATEGY", name),
            ("GATEWAY__BALANCER__HASH__KEY", "path"),
        ])
        .unwrap();
        assert_eq!(s.balancer.strategy, strategy);
        assert_eq!(strategy.name(), name);
    }
}
