//! Property-based tests of the two parsers that take untrusted or hand-typed
//! input: the registration body (`ServerSpec` deserialization, `validate`,
//! the registration `Policy`, and `POST /api/servers` on a real in-process
//! gateway) and the settings loader (`Settings::load` with arbitrary
//! `GATEWAY__*` values).
//!
//! Each property is checked against an independent model of the documented
//! rules, not against the implementation itself: names are 1 to 63 of
//! `A-Z a-z 0-9 - _ .`; urls are absolute http(s) with a host and no
//! credentials, query or fragment; weights are 1 to 1000; IPv4 destinations
//! are allowed inside 127/8, 10/8, 172.16/12, 192.168/16 and 100.64/10
//! except 0/8, 169.254/16, 224/4 and 100.100.100.200, whatever notation the
//! address is written in, but a registration must write it in dotted
//! decimal (or as IPv6): one number, hex or octal parts are refused, naming
//! the address they would be read as. No input may panic, and every
//! settings error names the key it is about.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::net::Ipv4Addr;

use gateway::config::{AdminSettings, Settings};
use gateway::policy::Policy;
use gateway::spec::ServerSpec;
use launch::settings::Sources;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

/// `cases` per property, or PROPTEST_CASES when set (for a longer hunt).
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        // Failures are reported with their minimal input; no regression
        // files are written into the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}

// ------------------------------------------------------------- the model

fn model_name_ok(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn model_weight_ok(weight: Option<u32>) -> bool {
    weight.is_none_or(|w| (1..=1000).contains(&w))
}

/// A url assembled from parts whose validity is known.
#[derive(Debug, Clone)]
struct UrlParts {
    scheme: &'static str,
    userinfo: &'static str,
    host: &'static str,
    port: Option<u32>,
    path: String,
    suffix: &'static str,
}

impl UrlParts {
    fn text(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "{}://{}{}{port}{}{}",
            self.scheme, self.userinfo, self.host, self.path, self.suffix
        )
    }

    fn valid(&self) -> bool {
        matches!(self.scheme, "http" | "https" | "HTTP" | "Https")
            && self.userinfo.is_empty()
            && self.port.is_none_or(|p| (1..=65535).contains(&p))
            && self.suffix.is_empty()
            && self.text().len() <= 2048
    }
}

fn url_parts() -> impl Strategy<Value = UrlParts> {
    (
        prop::sample::select(vec![
            "http", "https", "HTTP", "Https", "ftp", "ws", "file", "gopher", "h2c",
        ]),
        prop::sample::select(vec!["", "", "", "user@", "user:pass@", ":pass@"]),
        prop::sample::select(vec![
            "localhost",
            "127.0.0.1",
            "[::1]",
            "server-1",
            "backend.default.svc.cluster.local",
            "10.0.0.7",
        ]),
        prop::option::of(prop_oneof![1u32..=65535, 65536u32..1_000_000]),
        prop_oneof![
            Just(String::new()),
            Just("/".to_owned()),
            "(/[a-z0-9_.-]{1,12}){1,4}/?",
            "/[a-z]{2000,2100}",
        ],
        prop::sample::select(vec!["", "", "", "?a=1", "#top", "?"]),
    )
        .prop_map(|(scheme, userinfo, host, port, path, suffix)| UrlParts {
            scheme,
            userinfo,
            host,
            port,
            path,
            suffix,
        })
}

fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._-]{1,63}",
        "[A-Za-z0-9._-]{60,70}",
        // Anything printable, including non-ASCII letters and marks.
        "\\PC{0,80}",
        // Control characters and white space inside otherwise good names.
        "[a-z]{1,5}[\\x00-\\x1f\\x7f \u{a0}\u{200b}\u{202e}][a-z]{0,5}",
        Just(String::new()),
    ]
}

fn weights() -> impl Strategy<Value = Option<u32>> {
    prop::option::of(prop_oneof![1u32..=1000, Just(0u32), 1001u32..=u32::MAX])
}

/// Arbitrary JSON, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
        prop::sample::select(vec!["name", "url", "weight", "http://127.0.0.1:5000", "up"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["name", "url", "weight", "extra", "Name", ""])
                    .prop_map(String::from),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies shaped like registrations: the three fields with values of any
/// type or content, sometimes missing, sometimes with extra fields.
fn registration_bodies() -> impl Strategy<Value = Value> {
    let field =
        |good: BoxedStrategy<Value>| prop::option::of(prop_oneof![3 => good, 1 => any_json()]);
    (
        field(names().prop_map(Value::from).boxed()),
        field(url_parts().prop_map(|u| Value::from(u.text())).boxed()),
        field(weights().prop_map(|w| json!(w)).boxed()),
        prop::option::of(any_json()),
    )
        .prop_map(|(name, url, weight, extra)| {
            let mut m = serde_json::Map::new();
            if let Some(v) = name {
                m.insert("name".into(), v);
            }
            if let Some(v) = url {
                m.insert("url".into(), v);
            }
            if let Some(v) = weight {
                m.insert("weight".into(), v);
            }
            if let Some(v) = extra {
                m.insert("comment".into(), v);
            }
            Value::Object(m)
        })
}

/// The documented IPv4 policy with the default settings, written out by hand.
fn model_ipv4_allowed(ip: Ipv4Addr) -> bool {
    let [a, b, c, d] = ip.octets();
    let allowed = a == 127
        || a == 10
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 168)
        || (a == 100 && (64..=127).contains(&b));
    let denied = a == 0
        || (a == 169 && b == 254)
        || (224..=239).contains(&a)
        || (a, b, c, d) == (100, 100, 100, 200);
    allowed && !denied
}

const DENIED_NAMES: [&str; 4] = [
    "metadata",
    "metadata.google.internal",
    "instance-data",
    "instance-data.ec2.internal",
];

/// The documented host-name policy with the default settings.
fn model_name_allowed(host: &str) -> bool {
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if DENIED_NAMES.contains(&name.as_str()) {
        return false;
    }
    name == "localhost"
        || !name.contains('.')
        || [".localhost", ".svc", ".svc.cluster.local", ".cluster.local"]
            .iter()
            .any(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
}

fn host_names() -> impl Strategy<Value = String> {
    let label = "[a-z][a-z0-9-]{0,8}[a-z0-9]|[a-z]"
        .prop_filter("no punycode", |l: &String| !l.starts_with("xn--"));
    let generated = (
        prop::collection::vec(label, 1..4),
        prop::sample::select(vec![
            "",
            ".svc",
            ".svc.cluster.local",
            ".cluster.local",
            ".localhost",
            ".example.com",
            ".internal",
            ".svc.example",
        ]),
    )
        .prop_map(|(labels, suffix)| format!("{}{suffix}", labels.join(".")));
    let denied = prop::sample::select(DENIED_NAMES.to_vec()).prop_map(String::from);
    (
        prop_oneof![3 => generated, 1 => denied, 1 => Just("localhost".to_owned())],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, upper, trailing_dot)| {
            let name = if upper {
                name.to_ascii_uppercase()
            } else {
                name
            };
            if trailing_dot {
                format!("{name}.")
            } else {
                name
            }
        })
}

// ------------------------------------------------------ registration parser

/// Every problem with a spec is reported on one of its three fields.
fn check_spec(spec: &ServerSpec) -> Result<(), TestCaseError> {
    match spec.validate() {
        Ok(_) => {
            prop_assert!(model_name_ok(&spec.name), "accepted name {:?}", spec.name);
            prop_assert!(
                model_weight_ok(spec.weight),
                "accepted weight {:?}",
                spec.weight
            );
            let url = url::Url::parse(&spec.url).unwrap();
            prop_assert!(matches!(url.scheme(), "http" | "https"));
            prop_assert!(url.host_str().is_some_and(|h| !h.is_empty()));
            prop_assert!(url.query().is_none() && url.fragment().is_none());
            prop_assert!(url.username().is_empty() && url.password().is_none());
            if let Err(e) = Policy::new(&AdminSettings::default()).check(&spec.url) {
                prop_assert_eq!(e.field, "url");
            }
        }
        Err(e) => {
            prop_assert!(["name", "url", "weight"].contains(&e.field), "{e}");
            prop_assert!(!e.message.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary bytes: the parser returns an error or a spec, never panics.
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(spec) = serde_json::from_slice::<ServerSpec>(&body) {
            check_spec(&spec)?;
        }
    }

    /// Arbitrary JSON documents, registration-shaped or not.
    #[test]
    fn arbitrary_json_is_parsed_or_refused(value in prop_oneof![any_json(), registration_bodies()]) {
        let text = value.to_string();
        match serde_json::from_str::<ServerSpec>(&text) {
            Ok(spec) => {
                check_spec(&spec)?;
                // Whatever was accepted came from an object with exactly
                // these fields (weight optional).
                if let Value::Object(m) = &value {
                    prop_assert!(m.keys().all(|k| ["name", "url", "weight"].contains(&k.as_str())), "{}", text);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// validate() agrees with the documented rules, field by field, and
    /// reports the first bad field in the order name, url, weight.
    #[test]
    fn validation_matches_the_model(name in names(), url in url_parts(), weight in weights()) {
        let spec = ServerSpec { name: name.clone(), url: url.text(), weight };
        let expected = [
            ("name", model_name_ok(&name)),
            ("url", url.valid()),
            ("weight", model_weight_ok(weight)),
        ]
        .into_iter()
        .find(|(_, ok)| !ok)
        .map(|(field, _)| field);
        match (spec.validate(), expected) {
            (Ok(_), None) => {}
            (Err(e), Some(field)) => prop_assert_eq!(e.field, field, "{:?}: {}", spec, e),
            (got, want) => prop_assert!(false, "{:?}: got {:?}, model says {:?}", spec, got, want),
        }
    }

    /// A valid spec survives a JSON round trip unchanged.
    #[test]
    fn valid_specs_round_trip(name in "[A-Za-z0-9._-]{1,63}", port in 1u16..=65535, weight in prop::option::of(1u32..=1000)) {
        let spec = ServerSpec { name, url: format!("http://127.0.0.1:{port}/v1"), weight };
        prop_assert!(spec.validate().is_ok());
        let again: ServerSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        prop_assert_eq!(again, spec);
    }

    /// The IPv4 policy is the documented one, and writing the same address
    /// in another notation (IPv4-mapped IPv6, one decimal number, hex,
    /// octal parts) changes nothing; but only dotted decimal and IPv6 are
    /// registered, the others are refused naming the dotted address.
    #[test]
    fn ipv4_policy_matches_the_model_in_every_notation(bits in any::<u32>(), port in 1u16..=65535) {
        let ip = Ipv4Addr::from(bits);
        let policy = Policy::new(&AdminSettings::default());
        let expected = model_ipv4_allowed(ip);
        let [a, b, c, d] = ip.octets();
        for (url, registered) in [
            (format!("http://{ip}:{port}/"), true),
            (format!("http://[::ffff:{ip}]:{port}/"), true),
            (format!("http://{bits}:{port}/"), false),
            (format!("http://0x{bits:x}:{port}/"), false),
            (format!("http://0{a:o}.0{b:o}.0{c:o}.0{d:o}:{port}/"), false),
        ] {
            let spec = ServerSpec { name: "x".into(), url: url.clone(), weight: None };
            match spec.validate() {
                Ok(_) => prop_assert!(registered, "{} accepted", url),
                Err(e) => {
                    prop_assert!(!registered, "{}: {}", url, e);
                    let read_as = format!("read as \"{ip}\"");
                    prop_assert!(e.message.contains(&read_as), "{}: {}", url, e);
                }
            }
            let verdict = policy.check(&url);
            prop_assert_eq!(verdict.is_ok(), expected, "{} ({}): {:?}", url, ip, verdict);
        }
    }

    /// Host names: allowed exactly when the default patterns say so, in any
    /// letter case and with or without the trailing root dot.
    #[test]
    fn host_name_policy_matches_the_model(host in host_names(), port in 1u16..=65535) {
        let url = format!("http://{host}:{port}/");
        let spec = ServerSpec { name: "x".into(), url: url.clone(), weight: None };
        prop_assert!(spec.validate().is_ok(), "{}", url);
        let verdict = Policy::new(&AdminSettings::default()).check(&url);
        prop_assert_eq!(verdict.is_ok(), model_name_allowed(&host), "{}: {:?}", url, verdict);
    }
}

/// POST /api/servers on a real in-process gateway with generated bodies:
/// never a 5xx, and the answer is exactly what the library parts decide
/// (parse, validate, policy). Accepted registrations are deleted again so
/// every case starts from an empty registry.
#[test]
fn post_api_servers_agrees_with_the_library() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut settings = support::gateway_settings();
    settings.health_check.enabled = false;
    settings.admin.max_body_bytes = 4096;
    let policy = Policy::new(&settings.admin);
    let gw = runtime.block_on(async { support::spawn_gateway(settings).await });
    let client = support::client();

    let bodies = prop_oneof![
        4 => registration_bodies().prop_map(|v| v.to_string().into_bytes()),
        1 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    let mut runner = TestRunner::new(config(256));
    let result = runner.run(&bodies, |body| {
        let (status, answer) = runtime.block_on(async {
            let r = client
                .post(gw.url("/api/servers"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        });
        let shown = String::from_utf8_lossy(&body);
        prop_assert!(status < 500, "{} for {}: {}", status, shown, answer);

        let parsed = serde_json::from_slice::<ServerSpec>(&body);
        let expected = match &parsed {
            _ if body.iter().all(u8::is_ascii_whitespace) => (400, "invalid_body"),
            // serde would read a struct from a JSON array; the API wants an object.
            _ if !serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v.is_object()) =>
            {
                (400, "invalid_body")
            }
            Err(_) => (400, "invalid_body"),
            Ok(spec) => match spec.validate() {
                Err(_) => (400, "invalid_field"),
                Ok(base) if policy.check(&base.url).is_err() => (403, "destination_not_allowed"),
                Ok(_) => (201, ""),
            },
        };
        prop_assert_eq!(status, expected.0, "{} -> {}", shown, answer);
        if status == 201 {
            let spec = parsed.unwrap();
            prop_assert_eq!(&answer["name"], &json!(spec.name));
            // Shown as parsed.
            prop_assert_eq!(&answer["url"], &json!(spec.validate().unwrap().url));
            prop_assert_eq!(&answer["weight"], &json!(spec.weight.unwrap_or(1)));
            let deleted = runtime.block_on(async {
                client
                    .delete(gw.url(&format!("/api/servers/{}", spec.name)))
                    .send()
                    .await
                    .unwrap()
                    .status()
            });
            prop_assert_eq!(deleted.as_u16(), 204);
        } else {
            prop_assert_eq!(
                &answer["error"]["code"],
                &json!(expected.1),
                "{} -> {}",
                shown,
                answer
            );
        }
        Ok(())
    });
    let listed = runtime.block_on(async {
        support::json(client.get(gw.url("/api/servers")).send().await.unwrap()).await
    });
    runtime.block_on(gw.stop());
    result.unwrap();
    assert_eq!(
        listed["servers"],
        json!([]),
        "a refused body left a registration behind"
    );
}

// ------------------------------------------------------------ config loader

/// Every settings key, from the defaults themselves (so new keys are covered
/// without touching this test), plus the ones not serialized.
fn settings_keys() -> Vec<String> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut keys = Vec::new();
    walk(
        "",
        &serde_json::to_value(Settings::default()).unwrap(),
        &mut keys,
    );
    keys.push("admin.token".into());
    keys.sort();
    keys.dedup();
    keys
}

fn env_name(key: &str) -> String {
    format!("GATEWAY__{}", key.to_ascii_uppercase().replace('.', "__"))
}

fn env_values() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,30}",
        "[ \t]{0,3}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "[0-9]{1,25}(ns|us|ms|s|m|h|d|w|y|years)",
        "-?[0-9]{1,4}(\\.[0-9]{1,3})?(ms|s)",
        prop::sample::select(vec![
            "true",
            "false",
            "yes",
            "",
            "0",
            "-1",
            "65536",
            "1e400",
            "NaN",
            "inf",
            "round_robin",
            "least_outstanding",
            "peak_ewma",
            "10.0.0.0/8",
            "::1/128",
            "10.0.0.0/33",
            "502,503",
            "502,,503",
            "a=http://127.0.0.1:1",
            "a=http://127.0.0.1:1,a=http://x:2",
            "a=ftp://x",
            "=",
            ",",
            "[1,2]",
            "{}",
            "/nonexistent/file",
        ])
        .prop_map(String::from),
        prop::collection::vec("[a-z0-9./:*-]{0,12}", 0..4).prop_map(|v| v.join(",")),
    ]
}

/// What a settings error may say to name `key`: its dotted path, its last
/// segment (serde's own messages name the field), or the variable itself;
/// for a key that does not exist, the first segment that is unknown.
fn names_key(message: &str, key: &str, known: &[String]) -> bool {
    if !known.iter().any(|k| k == key) {
        return key
            .split('.')
            .any(|segment| message.contains(&format!("`{segment}`")));
    }
    let last = key.rsplit('.').next().unwrap_or(key);
    message.contains(key) || message.contains(last) || message.contains(&env_name(key))
}

#[test]
fn settings_load_never_panics_and_errors_name_the_key() {
    let keys = settings_keys();
    assert!(keys.len() > 40, "{keys:?}");
    let one = (prop::sample::select(keys.clone()), env_values());
    let mut runner = TestRunner::new(config(2048));
    let result = runner.run(&one, |(key, value)| {
        let sources = Sources {
            file: None,
            env: vec![(env_name(&key), value.clone())],
        };
        match Settings::load(&sources) {
            Ok(settings) => {
                prop_assert!(settings.validate().is_ok());
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(
                    names_key(&message, &key, &keys),
                    "{}={:?}: the error does not name the key: {}",
                    env_name(&key),
                    value,
                    message
                );
                prop_assert!(!message.contains('\n'), "multi-line error: {}", message);
            }
        }
        Ok(())
    });
    result.unwrap();
}

/// Several keys at once, unknown keys among them, and PORT: still no panic,
/// and an error names one of the keys that were set.
#[test]
fn settings_load_with_several_variables() {
    let keys = settings_keys();
    let key = prop_oneof![
        6 => prop::sample::select(keys.clone()),
        1 => "[a-z]{1,10}(\\.[a-z]{1,10})?".prop_map(String::from),
    ];
    let vars = (
        prop::collection::vec((key, env_values()), 1..5),
        prop::option::of(prop_oneof!["[0-9]{1,6}", "\\PC{0,8}"]),
    );
    let mut runner = TestRunner::new(config(1024));
    let result = runner.run(&vars, |(pairs, port)| {
        let mut env: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (env_name(k), v.clone()))
            .collect();
        if let Some(port) = &port {
            env.push(("PORT".into(), port.clone()));
        }
        match Settings::load(&Sources {
            file: None,
            env: env.clone(),
        }) {
            Ok(settings) => prop_assert!(settings.validate().is_ok()),
            Err(e) => {
                let message = e.to_string();
                let named = pairs.iter().any(|(k, _)| names_key(&message, k, &keys))
                    || (port.is_some() && message.contains("PORT"))
                    || (port.is_some() && message.contains("listen.port"));
                prop_assert!(
                    named,
                    "{:?}: the error names none of the keys: {}",
                    env,
                    message
                );
            }
        }
        Ok(())
    });
    result.unwrap();
}
