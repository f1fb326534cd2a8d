//! `hash` while the backend set changes under load: eight clients send
//! requests for 2,000 users (`X-User: user-N`) throughout, while a sixth
//! backend is added, one is removed, and one is stopped (the health checks
//! take it down) and started again. Each phase's map user -> backend is
//! taken only from requests sent once the change has taken effect (the
//! requests sent meanwhile are only checked to succeed), and compared with
//! the one before: adding or removing one of n backends moves about 1/n of
//! the users, only to or from that backend; a backend that is down has its
//! users walk on to the next backend along the ring, and they come back
//! when it is up again. No request fails, changes included: a request in
//! flight to a removed backend finishes there, and one that finds a stopped
//! backend (refused, or its connection closed) is a GET, retried on the
//! next backend along its key's ring.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway::backends::ring::{hash_key, HashRing};
use gateway::config::Strategy;
use support::*;
use tokio::sync::RwLock;
use tokio::task::JoinHandle;

const USERS: usize = 2_000;
const CLIENTS: usize = 8;
/// Answers each user needs within a phase before the phase's map is taken,
/// so that "one backend per user" is checked, not assumed.
const ANSWERS_PER_USER: u32 = 2;
/// The load's bound, in requests per client (a run needs about a tenth).
const MAX_REQUESTS_PER_CLIENT: usize = 20_000;
/// Waited after a change shows in `/api/servers`, before measuring (a
/// state change shows there a moment before the snapshot the request path
/// reads is swapped).
const SETTLE: Duration = Duration::from_millis(100);

/// What the backend set was when a request was sent. The transitions
/// (`Adding`, `Removing`, `Stopping`, `Restarting`) run from just before a
/// change until it has taken effect; their requests only have to succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    Five,
    Adding,
    Six,
    Removing,
    Removed,
    Stopping,
    Down,
    Restarting,
    Recovered,
}

const TRANSITIONS: [Phase; 4] = [
    Phase::Adding,
    Phase::Removing,
    Phase::Stopping,
    Phase::Restarting,
];

/// user -> the backend that served it.
type Map = BTreeMap<usize, String>;

#[derive(Debug)]
struct Answer {
    phase: Phase,
    user: usize,
    /// `x-served-by`, or why the request failed.
    served_by: Result<String, String>,
}

#[derive(Debug, Default)]
struct Log {
    answers: Vec<Answer>,
    /// Successful answers per phase and user.
    counts: HashMap<Phase, Vec<u32>>,
}

/// The background load: `CLIENTS` tasks, each sending one request at a
/// time, sweeping the users in a fixed order.
struct Load {
    /// Read-locked by each request for as long as it is in flight, so that
    /// once a new phase is written no request of the phase before is still
    /// on its way.
    phase: Arc<RwLock<Phase>>,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(gw: &TestGateway, phase: Phase) -> Self {
        let load = Load {
            phase: Arc::new(RwLock::new(phase)),
            log: Arc::default(),
            stop: Arc::default(),
            clients: Vec::new(),
        };
        let c = client();
        let clients = (0..CLIENTS)
            .map(|n| {
                let (c, url) = (c.clone(), gw.url("/api/data"));
                let (phase, log, stop) = (load.phase.clone(), load.log.clone(), load.stop.clone());
                tokio::spawn(async move {
                    for i in 0..MAX_REQUESTS_PER_CLIENT {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let user = (i * CLIENTS + n) % USERS;
                        let current = phase.read().await;
                        let served_by = send(&c, &url, user).await;
                        let answer = Answer {
                            phase: *current,
                            user,
                            served_by,
                        };
                        drop(current);
                        log.lock().unwrap().push(answer);
                    }
                })
            })
            .collect();
        Load { clients, ..load }
    }

    /// Starts `phase` once the requests of the one before have ended.
    async fn enter(&self, phase: Phase) {
        *self.phase.write().await = phase;
    }

    /// Runs `phase` until every user has been answered in it
    /// `ANSWERS_PER_USER` times, and returns its map (after checking that
    /// each user went to one backend only).
    async fn measure(&self, phase: Phase) -> Map {
        self.enter(phase).await;
        eventually(
            &format!("every user answered {ANSWERS_PER_USER} times in {phase:?}"),
            Duration::from_secs(20),
            || async {
                let log = self.log.lock().unwrap();
                let counts = log.counts.get(&phase)?;
                counts.iter().all(|&n| n >= ANSWERS_PER_USER).then_some(())
            },
        )
        .await;
        let log = self.log.lock().unwrap();
        let mut seen: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
        for answer in log.answers.iter().filter(|a| a.phase == phase) {
            if let Ok(by) = &answer.served_by {
                seen.entry(answer.user).or_default().insert(by);
            }
        }
        seen.into_iter()
            .map(|(user, by)| {
                assert_eq!(by.len(), 1, "in {phase:?}, user-{user} went to {by:?}");
                (user, by.into_iter().next().unwrap().to_owned())
            })
            .collect()
    }

    async fn finish(self) -> Log {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.await.unwrap();
        }
        Arc::try_unwrap(self.log).unwrap().into_inner().unwrap()
    }
}

impl Log {
    fn push(&mut self, answer: Answer) {
        if answer.served_by.is_ok() {
            self.counts
                .entry(answer.phase)
                .or_insert_with(|| vec![0; USERS])[answer.user] += 1;
        }
        self.answers.push(answer);
    }
}

async fn send(c: &reqwest::Client, url: &str, user: usize) -> Result<String, String> {
    let r = c
        .get(url)
        .header("X-User", format!("user-{user}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("HTTP {}", r.status()));
    }
    let by = r.headers()["x-served-by"].to_str().unwrap().to_owned();
    r.bytes().await.map_err(|e| e.to_string())?;
    Ok(by)
}

/// The map the ring over `names` (equal weights) gives, each user going to
/// the first backend along its key's walk that is not `down`.
fn ring_map(names: &[&str], down: Option<&str>) -> Map {
    let ring = HashRing::build(names, &vec![1; names.len()]);
    (0..USERS)
        .map(|user| {
            let hash = hash_key(format!("user-{user}").as_bytes());
            let owner = ring
                .walk(hash)
                .map(|i| names[i])
                .find(|&name| Some(name) != down)
                .unwrap();
            (user, owner.to_owned())
        })
        .collect()
}

/// The users whose backend differs between `before` and `after`, with
/// where they went.
fn moved(before: &Map, after: &Map) -> Map {
    after
        .iter()
        .filter(|(user, by)| before[*user] != **by)
        .map(|(user, by)| (*user, by.clone()))
        .collect()
}

/// How many of `map`'s users each backend has.
fn spread(map: &Map) -> BTreeMap<String, usize> {
    let mut spread = BTreeMap::new();
    for by in map.values() {
        *spread.entry(by.clone()).or_default() += 1;
    }
    spread
}

/// Between `before` and `after` (`change`), the users of `left` moved, and
/// only they, to several backends, none taking most of them.
fn assert_only_users_of_left(before: &Map, after: &Map, left: &str, change: &str) {
    let moved = moved(before, after);
    let spread = spread(&moved);
    println!(
        "{change} moved {:.1}% of the users: {spread:?}",
        moved.len() as f64 / USERS as f64 * 100.0
    );
    let users_of_left: BTreeSet<usize> = before
        .iter()
        .filter(|(_, by)| *by == left)
        .map(|(user, _)| *user)
        .collect();
    assert_eq!(
        moved.keys().copied().collect::<BTreeSet<_>>(),
        users_of_left
    );
    let most = spread.values().max().copied().unwrap_or(0);
    assert!(
        spread.len() >= 3 && most * 2 < moved.len(),
        "the users of {left} did not spread: {spread:?}"
    );
}

async fn until_states(
    gw: &TestGateway,
    what: &str,
    done: impl Fn(&HashMap<String, String>) -> bool,
) {
    eventually(what, Duration::from_secs(5), || async {
        done(&server_states(gw).await).then_some(())
    })
    .await;
    tokio::time::sleep(SETTLE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_move_only_as_far_as_the_change_under_load() {
    let mut backends = HashMap::new();
    for name in ["b1", "b2", "b3", "b4", "b5", "b6"] {
        backends.insert(name, spawn_backend(name).await);
    }
    let mut settings = gateway_settings();
    settings.balancer.strategy = Strategy::Hash;
    settings.balancer.hash.key = "header:X-User".to_owned();
    settings.health_check.interval = Duration::from_millis(100);
    settings.health_check.timeout = Duration::from_millis(80);
    let gw = spawn_gateway(settings).await;
    for name in ["b1", "b2", "b3", "b4", "b5"] {
        register(&gw, name, &backends[name]).await;
    }
    let load = Load::start(&gw, Phase::Five);

    // (a) Five backends: each user on one, each backend with a fair part.
    let five = load.measure(Phase::Five).await;
    assert_eq!(five, ring_map(&["b1", "b2", "b3", "b4", "b5"], None));
    for (name, users) in spread(&five) {
        assert!(
            (USERS / 10..USERS * 3 / 10).contains(&users),
            "{name}: {users}"
        );
    }

    // (b) A sixth: about 1/6 of the users move, all of them to it.
    load.enter(Phase::Adding).await;
    register(&gw, "b6", &backends["b6"]).await;
    until_states(&gw, "b6 up", |s| s.get("b6").is_some_and(|s| s == "up")).await;
    let six = load.measure(Phase::Six).await;
    let to_b6 = moved(&five, &six);
    let share = to_b6.len() as f64 / USERS as f64;
    println!("adding b6 moved {:.1}% of the users", share * 100.0);
    assert!((0.10..0.25).contains(&share), "adding b6 moved {share}");
    assert_eq!(
        spread(&to_b6).keys().collect::<Vec<_>>(),
        ["b6"],
        "{to_b6:?}"
    );
    assert_eq!(six, ring_map(&["b1", "b2", "b3", "b4", "b5", "b6"], None));

    // (c) b2 removed: its users, and only they, move, spread over the rest.
    load.enter(Phase::Removing).await;
    let r = client()
        .delete(gw.url("/api/servers/b2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    until_states(&gw, "b2 gone", |s| !s.contains_key("b2")).await;
    let removed = load.measure(Phase::Removed).await;
    assert_only_users_of_left(&six, &removed, "b2", "removing b2");
    let remaining = ["b1", "b3", "b4", "b5", "b6"];
    assert_eq!(removed, ring_map(&remaining, None));

    // (d) b3 stopped: the gateway takes it out; its users, and only they,
    // walk on along the ring.
    load.enter(Phase::Stopping).await;
    let b3 = backends.remove("b3").unwrap();
    let b3_addr = b3.addr;
    b3.stop().await;
    until_states(&gw, "b3 out", |s| s["b3"] != "up").await;
    let down = load.measure(Phase::Down).await;
    assert_only_users_of_left(&removed, &down, "b3", "b3 down");
    assert_eq!(down, ring_map(&remaining, Some("b3")));

    // ... and up again: they come back.
    load.enter(Phase::Restarting).await;
    let listener = tokio::net::TcpListener::bind(b3_addr).await.unwrap();
    backends.insert("b3", spawn_backend_on(listener, backend_settings("b3")));
    until_states(&gw, "b3 up", |s| s["b3"] == "up").await;
    let recovered = load.measure(Phase::Recovered).await;
    assert_eq!(moved(&removed, &recovered), Map::new());

    let log = load.finish().await;
    // Nothing is tolerated, transitions included: without retries
    // (`retry.max_attempts: 1`) the few requests that reach b3 between its
    // stop and its ejection fail with 502; with them, each is retried on
    // the next backend along its ring.
    let failed: Vec<&Answer> = log
        .answers
        .iter()
        .filter(|a| a.served_by.is_err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    for transition in TRANSITIONS {
        let during = log.answers.iter().filter(|a| a.phase == transition).count();
        println!("{during} requests during {transition:?}");
        assert!(during > 0, "no load during {transition:?}");
    }
    println!("{} requests in all", log.answers.len());
    for line in metrics_text(&gw).await.lines() {
        if line.starts_with("gateway_retries_total") {
            println!("{line}");
        }
    }

    gw.stop().await;
    for (_, backend) in backends {
        backend.stop().await;
    }
}
