//! Resilience in-process: retries, outlier ejection, health checks, limits,
//! drain, names resolving into denied networks, the separate admin listener
//! and the state file. The destinations the registration policy refuses are
//! rows of `tests/data/bad_requests.json` (`bad_requests.rs`); process-level
//! chaos (SIGKILL, SIGSTOP, slow clients) lives in `tests/resilience/` at the
//! repository root.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use support::*;

async fn state_of(gw: &TestGateway, name: &str) -> String {
    let v = json(
        client()
            .get(gw.url(&format!("/api/servers/{name}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    v["state"].as_str().unwrap().to_owned()
}

/// Waits until the gateway says `name` is in `state`.
async fn until_state(gw: &TestGateway, name: &str, state: &str) {
    eventually(
        &format!("{name} {state}"),
        Duration::from_secs(3),
        || async { (state_of(gw, name).await == state).then_some(()) },
    )
    .await;
}

async fn register_url(gw: &TestGateway, name: &str, url: String) -> reqwest::Response {
    client()
        .post(gw.url("/api/servers"))
        .json(&json!({"name": name, "url": url}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dead_backend_costs_no_client_failures_and_is_ejected() {
    let mut settings = gateway_settings();
    settings.health_check.enabled = false;
    let (gw, backends) = gateway_with_three(settings).await;
    let dead = closed_port().await;
    register_url(&gw, "dead", format!("http://{dead}")).await;
    let c = client();
    for _ in 0..60 {
        let r = c.get(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(state_of(&gw, "dead").await, "ejected");
    let servers = json(c.get(gw.url("/api/servers/dead")).send().await.unwrap()).await;
    assert!(servers["last_state_change"]["reason"]
        .as_str()
        .unwrap()
        .contains("consecutive failures"));
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains(r#"gateway_outlier_ejections_total{upstream="dead"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"gateway_retries_total{reason="connect"}"#));
    assert!(metrics.contains(r#"gateway_backend_state{state="ejected",upstream="dead"} 1"#));
    assert!(metrics.contains(r#"gateway_backends{state="ejected"} 1"#));
    drop(backends);
}

#[tokio::test]
async fn ejected_backends_come_back_after_the_ejection_time() {
    let mut settings = gateway_settings();
    settings.health_check.enabled = false;
    settings.outlier.count_5xx = true;
    settings.outlier.consecutive_failures = 2;
    settings.outlier.base_ejection_time = Duration::from_millis(400);
    settings.retry.max_attempts = 1;
    let (gw, _backends) = gateway_with_three(settings).await;
    let c = client();
    // server1 and server2 answer 500 to the same requests; make server1 fail
    // twice in a row by sending it only failing requests: round robin
    // visits it every third request.
    for _ in 0..6 {
        c.get(gw.url("/api/data?status=500")).send().await.unwrap();
    }
    let states: Vec<String> =
        futures_util::future::join_all(["server1", "server2", "server3"].map(|n| state_of(&gw, n)))
            .await;
    let ejected = states.iter().filter(|s| *s == "ejected").count();
    // max_ejection_percent (50%) of 3 lets one go, never all.
    assert_eq!(ejected, 1, "{states:?}");
    eventually("every backend up again", Duration::from_secs(3), || async {
        for n in ["server1", "server2", "server3"] {
            if state_of(&gw, n).await != "up" {
                return None;
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test]
async fn health_checks_take_a_dead_backend_down_and_bring_it_back() {
    let mut settings = gateway_settings();
    settings.health_check.interval = Duration::from_millis(100);
    settings.health_check.timeout = Duration::from_millis(80);
    settings.outlier.enabled = false;
    let gw = spawn_gateway(settings).await;
    let b = spawn_backend("flaky").await;
    let addr = b.addr;
    register(&gw, "flaky", &b).await;
    assert_eq!(b.stop().await, serving::server::Drain::Complete);
    until_state(&gw, "flaky", "down").await;
    let r = client().get(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(json(r).await["error"]["code"], "no_healthy_backends");

    // Restart on the same port: back within a couple of intervals.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _back = spawn_backend_on(listener, backend_settings("flaky"));
    until_state(&gw, "flaky", "up").await;
    let r = client().get(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_hung_backend_is_retried_elsewhere_within_the_per_try_timeout() {
    let mut settings = gateway_settings();
    settings.retry.per_try_timeout = Duration::from_millis(200);
    settings.health_check.enabled = false;
    let (gw, _backends) = gateway_with_three(settings).await;
    // A socket that accepts connections and never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            held.push(s);
        }
    });
    register_url(&gw, "hung", format!("http://{hung_addr}")).await;
    let c = client();
    for _ in 0..12 {
        let started = std::time::Instant::now();
        let r = c.get(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(started.elapsed() < Duration::from_millis(1500));
    }
    assert_eq!(state_of(&gw, "hung").await, "ejected");
}

#[tokio::test]
async fn statuses_are_retried_only_when_configured_and_posts_are_not_retried() {
    let mut settings = gateway_settings();
    settings.retry.on_statuses = vec![503];
    settings.health_check.enabled = false;
    settings.outlier.enabled = false;
    let (gw, _backends) = gateway_with_three(settings).await;
    let c = client();
    // Every backend answers 503 to this: 3 attempts, then the last answer.
    let r = c.get(gw.url("/api/data?status=503")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let stats = json(c.get(gw.url("/api/stats/1m")).send().await.unwrap()).await;
    assert_eq!(stats["requests"], 1);
    let attempts: u64 = stats["servers"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(attempts, 3);
    // A POST is not idempotent: one attempt only.
    let r = c
        .post(gw.url("/api/echo?status=503"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.post(gw.url("/api/data?status=503")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn the_retry_budget_stops_retry_storms() {
    let mut settings = gateway_settings();
    settings.health_check.enabled = false;
    settings.outlier.enabled = false;
    settings.retry.budget_ratio = 0.0;
    settings.retry.budget_min_per_second = 1; // 10 retries per 10 s
    let gw = spawn_gateway(settings).await;
    let dead = closed_port().await;
    register_url(&gw, "dead", format!("http://{dead}")).await;
    let c = client();
    for _ in 0..20 {
        c.get(gw.url("/api/data")).send().await.unwrap();
    }
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains(r#"gateway_retries_total{reason="connect"} 10"#),
        "{metrics}"
    );
    // Five requests used two retries each; the other fifteen were refused one.
    assert!(
        metrics.contains("gateway_retry_budget_exhausted_total 15"),
        "{metrics}"
    );
}

#[tokio::test]
async fn in_flight_limits_answer_503_with_retry_after() {
    let mut settings = gateway_settings();
    settings.limits.max_in_flight = 2;
    let (gw, _backends) = gateway_with_three(settings).await;
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = gw.url("/api/data?delay_ms=600");
            tokio::spawn(async move { client().get(url).send().await.unwrap().status() })
        })
        .collect();
    until_in_flight(&gw, 2).await;
    let r = client().get(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(json(r).await["error"]["code"], "overloaded");
    for s in slow {
        assert_eq!(s.await.unwrap(), 200);
    }
    let metrics = metrics_text(&gw).await;
    assert!(metrics.contains(r#"gateway_limit_rejections_total{limit="gateway"} 1"#));
}

#[tokio::test]
async fn per_backend_limits_skip_a_full_backend() {
    let mut settings = gateway_settings();
    settings.limits.max_in_flight_per_backend = 1;
    let (gw, _backends) = gateway_with_three(settings).await;
    let url = gw.url("/api/data?delay_ms=600");
    let parked = tokio::spawn(async move { client().get(url).send().await.unwrap() });
    until_in_flight(&gw, 1).await;
    let mut served: HashMap<String, usize> = HashMap::new();
    for _ in 0..6 {
        let r = client().get(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        *served
            .entry(r.headers()["x-served-by"].to_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let parked = parked.await.unwrap();
    let busy = parked.headers()["x-served-by"].to_str().unwrap().to_owned();
    assert!(
        !served.contains_key(&busy),
        "{busy} was full but got traffic: {served:?}"
    );
}

#[tokio::test]
async fn draining_stops_new_requests_and_can_be_undone() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let c = client();
    let r = c
        .patch(gw.url("/api/servers/server2"))
        .json(&json!({"state": "draining"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["state"], "draining");
    for _ in 0..9 {
        let r = c.get(gw.url("/api/data")).send().await.unwrap();
        assert_ne!(r.headers()["x-served-by"], "backend-2");
    }
    let r = c
        .patch(gw.url("/api/servers/server2"))
        .json(&json!({"state": "up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await["state"], "up");
    let r = c
        .patch(gw.url("/api/servers/server2"))
        .json(&json!({"state": "gone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .patch(gw.url("/api/servers/nope"))
        .json(&json!({"state": "up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// `localhost` passes the policy as a name, but resolves into networks
/// these settings deny: neither the proxied request nor the health checks
/// (reqwest's resolver) may connect to it.
#[tokio::test]
async fn a_name_resolving_into_a_denied_network_is_never_connected_to() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let accepted = accepted.clone();
        async move {
            while listener.accept().await.is_ok() {
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let mut settings = gateway_settings();
    settings.health_check.interval = Duration::from_millis(100);
    settings.health_check.timeout = Duration::from_millis(100);
    settings.health_check.unhealthy_threshold = 1;
    settings.health_check.enabled = false;
    for net in ["127.0.0.0/8", "::1/128"] {
        settings.admin.denied_networks.push(net.parse().unwrap());
    }
    let gw = spawn_gateway(settings.clone()).await;
    let r = register_url(&gw, "by-name", format!("http://localhost:{port}")).await;
    assert_eq!(r.status(), 201);
    let r = client().post(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body = json(r).await;
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("admin.denied_networks"), "{message}");
    gw.stop().await;

    settings.health_check.enabled = true;
    let gw = spawn_gateway(settings).await;
    register_url(&gw, "by-name", format!("http://localhost:{port}")).await;
    let reason = eventually("by-name down", Duration::from_secs(5), || async {
        let v = json(
            client()
                .get(gw.url("/api/servers/by-name"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        (v["state"] == "down").then(|| {
            v["last_state_change"]["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
    })
    .await;
    assert!(reason.contains("admin.denied_networks"), "{reason:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a denied address was connected to"
    );
}

#[tokio::test]
async fn a_separate_admin_listener_keeps_the_public_port_read_only() {
    let settings = gateway_settings();
    let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (public_addr, admin_addr) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let listeners = gateway::startup::Listeners {
        public,
        admin: Some(admin),
    };
    let handle = tokio::spawn(gateway::startup::run_with(
        listeners,
        settings,
        async move {
            let _ = rx.await;
        },
    ));
    let c = client();
    let body = json!({"name": "a", "url": "http://127.0.0.1:5000"});
    let r = c
        .post(format!("http://{public_addr}/api/servers"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(json(r).await["error"]["code"], "admin_port_only");
    let r = c
        .post(format!("http://{admin_addr}/api/servers"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .get(format!("http://{public_addr}/api/servers/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .delete(format!("http://{public_addr}/api/servers/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Read-only answers the dashboard served there polls are on it too.
    for path in [
        "/readyz",
        "/healthz",
        "/metrics",
        "/api/servers/a",
        "/api/stats/1m",
        "/api/settings",
        "/dashboard",
    ] {
        let r = c
            .get(format!("http://{admin_addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // The admin listener proxies nothing.
    for path in ["/api/data"] {
        let r = c
            .get(format!("http://{admin_addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(json(r).await["error"]["code"], "not_found", "{path}");
    }
    tx.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn registrations_survive_a_restart_with_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let mut settings = gateway_settings();
    settings.state_file = path.to_str().unwrap().to_owned();
    let gw = spawn_gateway(settings.clone()).await;
    let c = client();
    for (name, port) in [("one", 5001), ("two", 5002)] {
        let r = register_url(&gw, name, format!("http://127.0.0.1:{port}")).await;
        assert_eq!(r.status(), 201);
    }
    c.put(gw.url("/api/servers/two"))
        .json(&json!({"url": "http://127.0.0.1:5003", "weight": 4}))
        .send()
        .await
        .unwrap();
    c.post(gw.url("/api/servers"))
        .json(&json!({"name": "three", "url": "http://127.0.0.1:5004"}))
        .send()
        .await
        .unwrap();
    c.delete(gw.url("/api/servers/three")).send().await.unwrap();
    gw.stop().await;

    let gw = spawn_gateway(settings.clone()).await;
    let list = json(c.get(gw.url("/api/servers")).send().await.unwrap()).await;
    let got: Vec<(String, String, u64)> = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["url"].as_str().unwrap().into(),
                s["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("one".into(), "http://127.0.0.1:5001".into(), 1),
            ("two".into(), "http://127.0.0.1:5003".into(), 4)
        ]
    );
    gw.stop().await;

    std::fs::write(&path, "{ not json").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = gateway::run(listener, settings, async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("corrupt") && err.contains("registry.json"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");
}
