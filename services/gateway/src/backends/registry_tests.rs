//! The registry's membership rules, in-flight guards and attachments.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use observability::clock::SystemClock;
use std::sync::atomic::Ordering;

fn spec(name: &str, url: &str, weight: Option<u32>) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        url: url.into(),
        weight,
    }
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::new(Arc::new(SystemClock)))
}

#[tokio::test]
async fn registration_is_idempotent_and_conflicts_are_refused() {
    let r = registry();
    let s = spec("server1", "http://localhost:5000", None);
    assert_eq!(
        r.register(&s, Source::Api).await.unwrap().0,
        Registered::Created
    );
    assert_eq!(
        r.register(&s, Source::Api).await.unwrap().0,
        Registered::Unchanged
    );
    // The same URL written differently is the same registration.
    let same = spec("server1", "HTTP://LOCALHOST:5000/", None);
    assert_eq!(
        r.register(&same, Source::Api).await.unwrap().0,
        Registered::Unchanged
    );
    let other = spec("server1", "http://localhost:5001", None);
    assert!(matches!(
        r.register(&other, Source::Api).await,
        Err(RegistryError::Conflict { .. })
    ));
    let heavier = spec("server1", "http://localhost:5000", Some(5));
    assert!(matches!(
        r.register(&heavier, Source::Api).await,
        Err(RegistryError::Conflict { .. })
    ));
    assert_eq!(
        r.upsert(&heavier, Source::Api).await.unwrap().0,
        Registered::Replaced
    );
    assert_eq!(r.get("server1").unwrap().weight, 5);
    assert_eq!(r.snapshot().backends.len(), 1);
}

#[tokio::test]
async fn try_begin_never_exceeds_the_limit() {
    let r = registry();
    let (_, b) = r
        .register(&spec("a", "http://x:1", None), Source::Api)
        .await
        .unwrap();
    let held: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| (0..100).filter_map(|_| b.try_begin(50)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(held.len(), 50);
    assert_eq!(b.active.load(Ordering::Relaxed), 50);
    drop(held);
    assert_eq!(b.active.load(Ordering::Relaxed), 0);
    assert!(b.try_begin(0).is_some());
}

#[tokio::test]
async fn removal_keeps_in_flight_handles_alive() {
    let r = registry();
    let (_, b) = r
        .register(&spec("a", "http://x:1", None), Source::Api)
        .await
        .unwrap();
    let guard = b.begin();
    assert!(r.remove("a").await.unwrap().is_some());
    assert!(r.remove("a").await.unwrap().is_none());
    assert_eq!(guard.0.active.load(Ordering::Relaxed), 1);
    drop(guard);
    assert_eq!(b.active.load(Ordering::Relaxed), 0);
    assert!(r.snapshot().backends.is_empty());
}

#[tokio::test]
async fn attachments_are_dropped_with_their_backend() {
    struct Attached(String, Arc<Mutex<Vec<String>>>);
    impl Drop for Attached {
        fn drop(&mut self) {
            self.1.lock().unwrap().push(self.0.clone());
        }
    }
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let added = AtomicU64::new(0);
    let log = dropped.clone();
    let r = Arc::new(Registry::new(Arc::new(SystemClock)).on_added(move |name| {
        let n = added.fetch_add(1, Ordering::Relaxed) + 1;
        Attached(format!("{name}#{n}"), log.clone())
    }));
    r.register(&spec("a", "http://x:1", None), Source::Api)
        .await
        .unwrap();
    r.upsert(&spec("a", "http://x:2", None), Source::Api)
        .await
        .unwrap();
    assert_eq!(*dropped.lock().unwrap(), ["a#1"], "replaced");
    let (_, b) = r
        .register(&spec("b", "http://x:3", None), Source::Api)
        .await
        .unwrap();
    let in_flight = b.begin();
    drop(b);
    r.remove("b").await.unwrap();
    assert_eq!(
        *dropped.lock().unwrap(),
        ["a#1"],
        "b has a request in flight"
    );
    drop(in_flight);
    assert_eq!(*dropped.lock().unwrap(), ["a#1", "b#3"]);
}

#[tokio::test]
async fn invalid_specs_change_nothing() {
    let r = registry();
    assert!(r
        .register(&spec("ok", "http://x:1", Some(0)), Source::Api)
        .await
        .is_err());
    assert!(r
        .upsert(&spec("ok", "http://x:1", Some(1001)), Source::Api)
        .await
        .is_err());
    assert!(r.snapshot().backends.is_empty());
}

#[tokio::test]
async fn https_backends_are_refused_with_the_reason_when_unavailable() {
    let r = Arc::new(
        Registry::new(Arc::new(SystemClock)).without_https("no CA certificates were loaded".into()),
    );
    let e = r
        .register(&spec("tls", "https://x:8443", None), Source::Api)
        .await
        .unwrap_err();
    let RegistryError::Invalid(e) = e else {
        panic!("{e}")
    };
    assert_eq!(e.field, "url");
    assert!(e.message.contains("no CA certificates"), "{e}");
    assert!(r
        .register(&spec("plain", "http://x:8080", None), Source::Api)
        .await
        .is_ok());
}
