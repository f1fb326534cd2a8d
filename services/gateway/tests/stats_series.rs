//! `GET /api/stats/{window}?series=true` through the real route: the series
//! of the gateway and of each backend add up to the totals of the same
//! answer while traffic flows, and a query the route does not take is a
//! 400 naming the parameter.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use serde_json::Value;
use support::*;

/// Checks one figures object (the gateway's or one server's) and returns
/// its bucket start times.
fn assert_series_adds_up(figures: &Value, what: &str) -> Vec<Value> {
    let series = &figures["series"];
    let sum = |key: &str| -> u64 {
        let values = series[key].as_array().unwrap();
        assert_eq!(values.len(), 60, "{what}: {key}");
        values.iter().map(|v| v.as_u64().unwrap()).sum()
    };
    assert_eq!(
        sum("requests"),
        figures["requests"].as_u64().unwrap(),
        "{what}"
    );
    assert_eq!(sum("errors"), figures["errors"].as_u64().unwrap(), "{what}");
    for key in ["p50_ms", "p99_ms"] {
        assert_eq!(series[key].as_array().unwrap().len(), 60, "{what}: {key}");
    }
    series["start"].as_array().unwrap().clone()
}

#[tokio::test]
async fn series_add_up_to_the_totals_of_the_same_answer_while_traffic_flows() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let c = client();
    let traffic = tokio::spawn({
        let (c, url, failing) = (
            c.clone(),
            gw.url("/api/data"),
            gw.url("/api/data?status=500"),
        );
        async move {
            for i in 0..300 {
                let url = if i % 10 == 0 { &failing } else { &url };
                c.get(url).send().await.unwrap();
            }
        }
    });
    let mut answers = 0;
    while !traffic.is_finished() || answers == 0 {
        for window in ["1m", "5m", "1h"] {
            let r = c
                .get(gw.url(&format!("/api/stats/{window}?series=true")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let s = json(r).await;
            let start = assert_series_adds_up(&s, window);
            assert_eq!(
                s["series"]["bucket_seconds"],
                s["window_seconds"].as_u64().unwrap() / 60
            );
            for (name, server) in s["servers"].as_object().unwrap() {
                let theirs = assert_series_adds_up(server, name);
                assert_eq!(theirs, start, "{name}: the same buckets as the gateway's");
            }
            answers += 1;
        }
    }
    traffic.await.unwrap();
    let s = json(
        c.get(gw.url("/api/stats/1h?series=true"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_series_adds_up(&s, "1h");
    assert_eq!(s["requests"], 300);
    assert_eq!(s["errors"], 30);
    // Without the parameter the answer has no series anywhere.
    let s = json(c.get(gw.url("/api/stats/1m")).send().await.unwrap()).await;
    assert!(s.get("series").is_none(), "{s}");
    assert!(s["servers"]["server1"].get("series").is_none(), "{s}");
}

#[tokio::test]
async fn other_queries_are_a_400_naming_the_parameter() {
    let (gw, _backends) = gateway_with_three(gateway_settings()).await;
    let c = client();
    for (query, named) in [
        ("series=maybe", "series"),
        ("series=false", "series"),
        ("bogus=1", "bogus"),
        ("series=true&bogus=1", "bogus"),
    ] {
        let r = c
            .get(gw.url(&format!("/api/stats/1m?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let body = json(r).await;
        assert_eq!(body["error"]["code"], "invalid_query", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{query}: {message}");
    }
    // An unknown window is still a 404, whatever the query.
    let r = c
        .get(gw.url("/api/stats/2m?series=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await["error"]["code"], "unknown_window");
}

#[tokio::test]
async fn with_stats_switched_off_the_series_is_404_stats_disabled_too() {
    let mut settings = gateway_settings();
    settings.stats.enabled = false;
    let gw = spawn_gateway(settings).await;
    for query in ["series=true", "series=maybe"] {
        let r = client()
            .get(gw.url(&format!("/api/stats/1m?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{query}");
        assert_eq!(json(r).await["error"]["code"], "stats_disabled");
    }
}
