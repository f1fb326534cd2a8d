//! Test harness: real gateways and backends on port 0, in this process,
//! and `eventually`, how a test waits for something to happen (a request in
//! flight, a state change) instead of sleeping for a guessed time.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use serving::server::Drain;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running service: its address and a way to stop it.
pub struct Running<E> {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<Drain, E>>,
}

impl<E: std::fmt::Debug> Running<E> {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends the shutdown signal without waiting.
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the service and returns how the drain ended.
    pub async fn stop(mut self) -> Drain {
        self.signal_stop();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("service did not stop")
            .expect("service task panicked")
            .expect("service failed")
    }
}

pub type TestGateway = Running<gateway::startup::StartupError>;
pub type TestBackend = Running<std::io::Error>;

/// Settings for a gateway with quiet logs and short timeouts.
pub fn gateway_settings() -> gateway::config::Settings {
    let mut s = gateway::config::Settings::default();
    s.listen.host = "127.0.0.1".into();
    s.listen.port = 0;
    s.upstream.connect_timeout = Duration::from_millis(500);
    s.upstream.request_timeout = Duration::from_secs(5);
    s.shutdown.drain_timeout = Duration::from_secs(5);
    s.log.access_log = false;
    s
}

pub async fn spawn_gateway(settings: gateway::config::Settings) -> TestGateway {
    settings.validate().expect("test settings are valid");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let handle = tokio::spawn(gateway::run(listener, settings, async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        handle,
    }
}

pub fn backend_settings(name: &str) -> backend::config::Settings {
    let mut s = backend::config::Settings::default();
    s.listen.host = "127.0.0.1".into();
    s.name = name.into();
    s.shutdown.drain_timeout = Duration::from_secs(5);
    s
}

pub async fn spawn_backend_with(settings: backend::config::Settings) -> TestBackend {
    spawn_backend_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), settings)
}

/// A backend on `listener` (bound to the address a stopped backend had, to
/// bring it back).
pub fn spawn_backend_on(listener: TcpListener, settings: backend::config::Settings) -> TestBackend {
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let handle = tokio::spawn(backend::run(listener, settings, async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        handle,
    }
}

pub async fn spawn_backend(name: &str) -> TestBackend {
    spawn_backend_with(backend_settings(name)).await
}

/// A plain client: no proxy, no pooling surprises between tests.
pub fn client() -> reqwest::Client {
    gateway::startup::install_crypto_provider();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Registers `name` -> `backend` through the admin API.
pub async fn register(gw: &TestGateway, name: &str, backend: &TestBackend) {
    register_addr(gw, name, backend.addr).await;
}

/// Registers `name` -> `http://addr` through the admin API (for test
/// servers that are not project backends).
pub async fn register_addr(gw: &TestGateway, name: &str, addr: SocketAddr) {
    let response = client()
        .post(gw.url("/api/servers"))
        .json(&serde_json::json!({"name": name, "url": format!("http://{addr}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

/// A gateway with three registered backends, `server1`..`server3`.
pub async fn gateway_with_three(
    settings: gateway::config::Settings,
) -> (TestGateway, Vec<TestBackend>) {
    let gw = spawn_gateway(settings).await;
    let mut backends = Vec::new();
    for i in 1..=3 {
        let b = spawn_backend(&format!("backend-{i}")).await;
        register(&gw, &format!("server{i}"), &b).await;
        backends.push(b);
    }
    (gw, backends)
}

/// An address nothing listens on (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// The gateway's `/metrics` text.
pub async fn metrics_text(gw: &TestGateway) -> String {
    client()
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.unwrap()
}

/// Polls `check` every 20 ms until it returns `Some`, and returns that;
/// panics naming `what` once `within` has passed without it.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `field` of each backend in `GET /api/servers`, by name.
pub async fn server_field(
    gw: &TestGateway,
    field: &str,
) -> std::collections::HashMap<String, serde_json::Value> {
    let list = json(client().get(gw.url("/api/servers")).send().await.unwrap()).await;
    list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s[field].clone()))
        .collect()
}

/// Requests the gateway has in flight at each backend (`GET /api/servers`),
/// by name.
pub async fn in_flight(gw: &TestGateway) -> std::collections::HashMap<String, u64> {
    let field = server_field(gw, "active_requests").await;
    field
        .into_iter()
        .map(|(name, n)| (name, n.as_u64().unwrap()))
        .collect()
}

/// Each backend's state (`up`, `down`, `ejected`, `draining`), by name.
pub async fn server_states(gw: &TestGateway) -> std::collections::HashMap<String, String> {
    let field = server_field(gw, "state").await;
    field
        .into_iter()
        .map(|(name, state)| (name, state.as_str().unwrap().to_owned()))
        .collect()
}

/// Waits until the gateway has `n` requests in flight at its backends.
pub async fn until_in_flight(gw: &TestGateway, n: u64) {
    eventually(
        &format!("{n} requests in flight at the backends"),
        Duration::from_secs(5),
        || async { (in_flight(gw).await.values().sum::<u64>() >= n).then_some(()) },
    )
    .await;
}
