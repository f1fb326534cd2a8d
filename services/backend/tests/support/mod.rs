//! What the backend's test files share: a backend on a port of its own, a
//! client, and waiting for a condition.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A backend serving on a port of its own.
pub struct Backend {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Starts the shutdown.
    pub stop: oneshot::Sender<()>,
    /// How the drain ended.
    pub handle: tokio::task::JoinHandle<std::io::Result<serving::server::Drain>>,
}

pub async fn spawn(settings: backend::config::Settings) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = oneshot::channel();
    let handle = tokio::spawn(backend::run(listener, settings, async move {
        let _ = rx.await;
    }));
    Backend { base, stop, handle }
}

pub fn settings() -> backend::config::Settings {
    backend::config::Settings {
        name: "b1".into(),
        ..Default::default()
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Polls `check` every 20 ms until it holds; panics naming `what` after 5 s.
/// (The gateway's tests have the same in their support module.)
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the series `series` (name and labels as /metrics prints
/// them) on the backend at `base`; panics when it is missing.
pub async fn metric(base: &str, series: &str) -> f64 {
    let text = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
}

/// `http_server_active_requests` from the backend's /metrics.
pub async fn active_requests(base: &str) -> f64 {
    metric(base, "http_server_active_requests").await
}
