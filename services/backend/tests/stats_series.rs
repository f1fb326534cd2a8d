//! `GET /api/stats/{window}?series=true` on the backend, through the real
//! route: the series adds up to the totals of the same answer while
//! traffic flows, and other queries are a 400 naming the parameter.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use serde_json::Value;
use support::{client, settings, spawn};

fn sum(series: &Value, key: &str) -> u64 {
    let values = series[key].as_array().unwrap();
    assert_eq!(values.len(), 60, "{key}");
    values.iter().map(|v| v.as_u64().unwrap()).sum()
}

#[tokio::test]
async fn series_adds_up_to_the_totals_and_bad_queries_are_named() {
    let b = spawn(settings()).await;
    let c = client();
    let traffic = tokio::spawn({
        let (c, base) = (c.clone(), b.base.clone());
        async move {
            for i in 0..200 {
                let path = if i % 4 == 0 {
                    "/api/data?status=503"
                } else {
                    "/api/data"
                };
                c.get(format!("{base}{path}")).send().await.unwrap();
            }
        }
    });
    let mut answers = 0;
    while !traffic.is_finished() || answers == 0 {
        for window in ["1m", "5m", "1h"] {
            let r = c
                .get(format!("{}/api/stats/{window}?series=true", b.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let s: Value = r.json().await.unwrap();
            let series = &s["series"];
            assert_eq!(sum(series, "requests"), s["requests"].as_u64().unwrap());
            assert_eq!(sum(series, "errors"), s["errors"].as_u64().unwrap());
            assert_eq!(series["p99_ms"].as_array().unwrap().len(), 60);
            answers += 1;
        }
    }
    traffic.await.unwrap();
    let s: Value = c
        .get(format!("{}/api/stats/1m?series=true", b.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (s["requests"].as_u64(), s["errors"].as_u64()),
        (Some(200), Some(50))
    );
    assert_eq!(sum(&s["series"], "requests"), 200);
    for (query, named) in [("series=maybe", "series"), ("bogus=1", "bogus")] {
        let r = c
            .get(format!("{}/api/stats/1m?{query}", b.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_query");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(named),
            "{body}"
        );
    }
}
