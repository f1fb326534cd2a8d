//! A host without CA certificates (a scratch image, a minimal host):
//! the gateway starts and serves plain-HTTP backends, and refuses `https`
//! ones at registration, saying why.
//!
//! The platform verifier reads `SSL_CERT_FILE` and `SSL_CERT_DIR` (set, they
//! replace the system store); pointing both at nothing removes every CA
//! certificate. Environment variables are the process's, so this is the
//! only test in its binary, and sets them before any thread could read
//! them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[test]
fn the_gateway_starts_without_ca_certificates_and_refuses_https_backends() {
    let empty = tempfile::tempdir().unwrap();
    std::env::set_var("SSL_CERT_FILE", empty.path().join("none.pem"));
    std::env::set_var("SSL_CERT_DIR", empty.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut settings = gateway_settings();
        settings.health_check.interval = Duration::from_millis(100);
        settings.health_check.timeout = Duration::from_millis(100);
        let gw = spawn_gateway(settings).await;
        let backend = spawn_backend("plain").await;
        // The test's own client needs no CA certificates either.
        gateway::startup::install_crypto_provider();
        let c = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only(Vec::new())
            .build()
            .unwrap();
        let r = c
            .post(gw.url("/api/servers"))
            .json(&json!({"name": "plain", "url": format!("http://{}", backend.addr)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = c.get(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-served-by"], "plain");

        let r = c
            .post(gw.url("/api/servers"))
            .json(&json!({"name": "tls", "url": "https://localhost:8443"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body = json(r).await;
        assert_eq!(body["error"]["code"], "invalid_field");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("url: https backends are not available")
                && message.contains("CA certificates"),
            "{message}"
        );

        // Health checks (the other reqwest client) run on: the plain
        // backend stays up through several rounds of them.
        let checked = || async {
            let metrics = c.get(gw.url("/metrics")).send().await.unwrap();
            let text = metrics.text().await.unwrap();
            text.lines()
                .find(|l| {
                    l.starts_with("gateway_health_checks_total")
                        && l.contains(r#"upstream="plain""#)
                        && l.contains(r#"result="success""#)
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        eventually(
            "three successful health checks of plain",
            Duration::from_secs(5),
            || async { (checked().await >= 3.0).then_some(()) },
        )
        .await;
        gw.stop().await;
    });
}
