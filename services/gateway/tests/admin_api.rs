//! The registration API against a real gateway: idempotency, conflicts,
//! the token, HEAD, the state file. Every malformed or refused request, with
//! its answer, is a row of `tests/data/bad_requests.json` (`bad_requests.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use serde_json::{json, Value};
use support::*;

async fn servers(gw: &TestGateway) -> Value {
    json(client().get(gw.url("/api/servers")).send().await.unwrap()).await
}

#[tokio::test]
async fn register_is_created_then_idempotent_then_conflicts() {
    let gw = spawn_gateway(gateway_settings()).await;
    let c = client();
    let body = json!({"name": "server1", "url": "http://localhost:5000"});
    let r = c
        .post(gw.url("/api/servers"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created = json(r).await;
    assert_eq!(created["name"], "server1");
    assert_eq!(created["url"], "http://localhost:5000");
    assert_eq!(created["weight"], 1);
    assert_eq!(created["state"], "up");

    for _ in 0..3 {
        let r = c
            .post(gw.url("/api/servers"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = c
        .post(gw.url("/api/servers"))
        .json(&json!({"name": "server1", "url": "http://localhost:5001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(json(r).await["error"]["code"], "conflict");
    assert_eq!(servers(&gw).await["servers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn put_get_delete_lifecycle() {
    let gw = spawn_gateway(gateway_settings()).await;
    let c = client();
    let r = c
        .put(gw.url("/api/servers/alpha"))
        .json(&json!({"url": "http://127.0.0.1:5000", "weight": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .put(gw.url("/api/servers/alpha"))
        .json(&json!({"url": "http://127.0.0.1:5001", "weight": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let one = json(c.get(gw.url("/api/servers/alpha")).send().await.unwrap()).await;
    assert_eq!(one["url"], "http://127.0.0.1:5001");
    assert_eq!(one["weight"], 7);
    let list = servers(&gw).await;
    assert_eq!(list["servers"][0]["name"], "alpha");
    for key in [
        "active_requests",
        "requests_total",
        "failures_total",
        "state",
        "registered_at",
    ] {
        assert!(list["servers"][0].get(key).is_some(), "{key} missing");
    }

    let r = c.delete(gw.url("/api/servers/alpha")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = c.delete(gw.url("/api/servers/alpha")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await["error"]["code"], "not_found");
    let r = c.get(gw.url("/api/servers/alpha")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(servers(&gw).await["servers"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn chunked_bodies_are_accepted_and_limited() {
    let gw = spawn_gateway(gateway_settings()).await;
    let c = client();
    let chunks = vec![
        Ok::<_, std::io::Error>(r#"{"name":"chunky","#.to_string()),
        Ok(r#""url":"http://127.0.0.1:5000"}"#.to_string()),
    ];
    let r = c
        .post(gw.url("/api/servers"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let big = vec![
        Ok::<_, std::io::Error>("x".repeat(40 * 1024)),
        Ok("y".repeat(40 * 1024)),
    ];
    let r = c
        .post(gw.url("/api/servers"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(big)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn admin_token_guards_changes_but_not_reads() {
    let mut settings = gateway_settings();
    settings.admin.token = "s3cret".into();
    let gw = spawn_gateway(settings).await;
    let c = client();
    let body = json!({"name": "a", "url": "http://127.0.0.1:5000"});
    let r = c
        .post(gw.url("/api/servers"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = c
        .post(gw.url("/api/servers"))
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c.delete(gw.url("/api/servers/a")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A header that is not text counts as no token, not as a routing error.
    let garbled = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
    let r = c
        .post(gw.url("/api/servers"))
        .header("authorization", garbled)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(servers(&gw).await["servers"].as_array().unwrap().len(), 0);
    let r = c
        .post(gw.url("/api/servers"))
        .bearer_auth("s3cret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c.get(gw.url("/api/servers/a")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn static_servers_from_settings_are_registered_at_start() {
    let mut settings = gateway_settings();
    settings.servers =
        gateway::config::parse_compact_servers("s1=http://127.0.0.1:5000,s2=http://127.0.0.1:5001")
            .unwrap();
    let gw = spawn_gateway(settings).await;
    let list = servers(&gw).await;
    let names: Vec<&str> = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["s1", "s2"]);
    assert_eq!(list["servers"][0]["source"], "config");
}

#[tokio::test]
async fn own_get_routes_answer_head_as_they_answer_get() {
    let gw = spawn_gateway(gateway_settings()).await;
    let backend = spawn_backend("backend-1").await;
    register(&gw, "server1", &backend).await;
    let c = client();
    for path in [
        "/api/servers",
        "/api/servers/server1",
        "/api/stats/1m",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        let get = c.get(gw.url(path)).send().await.unwrap();
        assert_eq!(get.status(), 200, "GET {path}");
        let head = c.head(gw.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(
            head.headers()["content-type"],
            get.headers()["content-type"],
            "HEAD {path}"
        );
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} sent a body"
        );
    }
    // A refused change (no body) is still a 400, not a 405.
    let r = c.post(gw.url("/api/servers")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("allow").is_none());
    // HEAD through the proxy: no body, and the pooled connection is still
    // good for the GET after it.
    for _ in 0..3 {
        let head = c.head(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["x-served-by"], "backend-1");
        assert!(head.bytes().await.unwrap().is_empty());
        let get = c.get(gw.url("/api/data")).send().await.unwrap();
        assert_eq!(get.status(), 200);
        let body: Value = get.json().await.unwrap();
        assert_eq!(body["instance"]["name"], "backend-1");
    }
}

#[tokio::test]
async fn changes_the_state_file_cannot_hold_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let mut settings = gateway_settings();
    settings.state_file = path.to_str().unwrap().to_owned();
    let gw = spawn_gateway(settings).await;
    let c = client();
    let r = c
        .post(gw.url("/api/servers"))
        .json(&json!({"name": "keep", "url": "http://127.0.0.1:5000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let before = servers(&gw).await;

    // A directory where the file was: new contents cannot replace it
    // (whatever the permissions; tests may run as root).
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("occupied"), "").unwrap();
    let changes = [
        (
            "POST",
            "/api/servers",
            Some(json!({"name": "new", "url": "http://127.0.0.1:5001"})),
        ),
        (
            "PUT",
            "/api/servers/keep",
            Some(json!({"url": "http://127.0.0.1:5002"})),
        ),
        ("DELETE", "/api/servers/keep", None),
    ];
    for (method, route, body) in &changes {
        let mut request = c.request(method.parse().unwrap(), gw.url(route));
        if let Some(body) = body {
            request = request.json(body);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 500, "{method} {route}");
        let error = json(r).await;
        assert_eq!(
            error["error"]["code"], "state_not_saved",
            "{method} {route}"
        );
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("registry.json"),
            "{error}"
        );
    }
    assert_eq!(
        servers(&gw).await,
        before,
        "a change that was not saved took effect"
    );
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["registry.json"], "temporary files left behind");

    std::fs::remove_dir_all(&path).unwrap();
    let r = c.delete(gw.url("/api/servers/keep")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(!std::fs::read_to_string(&path).unwrap().contains("keep"));
}
