//! The webhook delivery path through an in-memory host with a virtual clock: receive, dedup,
//! forward with retries, dead-letter, replay; and the `mosaic webhook sign|verify` logic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

use mosaic_core::engine::Router;
use mosaic_core::http::Headers;
use mosaic_core::rng::Rng;
use mosaic_core::sim::block_on;
use mosaic_core::time::Instant;
use mosaic_core::webhook::{self as core_webhook, ed25519_public_key, Scheme};
use mosaic_providers::hooks::{
    cli_sign, cli_verify, dead_key, deliver, due_pending, handle_hook, list_dead_letters,
    pending_key, replay_dead_letter, seen_key, Delivered, Delivery, DeliveryPolicy, HookHost,
    HookReply, KvError, Next, PostError, ReplayError, DEAD_PREFIX, PENDING_PREFIX,
};
use mosaic_providers::webhook::{self, NAMES};
use serde_json::Value;

const T0: u64 = 1_700_000_000;
const GH_SECRET: &str = "It's a Secret to Everybody";
const SIGN_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const FLAKY: &str = "https://flaky.example/in";
const DOWN: &str = "https://down.example/in";

const CONFIG: &str = r#"
[[webhooks]]
name = "gh"
scheme = "github"
secrets = ["env:GH_SECRET"]
max_body_bytes = 4096
dedup_ttl_s = 3600

[[webhooks.destinations]]
url = "https://flaky.example/in"
sign_secret = "env:DEST_SIGN"
attempts = 8

[[webhooks.destinations]]
url = "https://down.example/in"
attempts = 3

[[webhooks]]
name = "slack"
scheme = "slack"
secrets = ["env:SLACK_SECRET"]

[[webhooks]]
name = "notion"
scheme = "notion"
"#;

fn router() -> Router {
    let raw: mosaic_core::RawConfig = toml::from_str(CONFIG).unwrap();
    let cfg = raw.validate().unwrap();
    Router::new(cfg, |r| {
        Some(
            match r.to_string().as_str() {
                "env:GH_SECRET" => GH_SECRET,
                "env:DEST_SIGN" => SIGN_SECRET,
                "env:SLACK_SECRET" => "slack-signing-secret",
                _ => return None,
            }
            .to_owned(),
        )
    })
}

/// How a scripted destination behaves.
#[derive(Clone, Copy)]
enum Script {
    /// Fails (alternating 503 and a connection error) this many times, then answers 200.
    FailThenRecover(u32),
    /// Always 503.
    Down,
    /// Always 200.
    Up,
}

struct Post {
    url: String,
    at: Instant,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    answered: Result<u16, PostError>,
}

/// Key → (value, expiry).
type Kv = BTreeMap<String, (Vec<u8>, Option<Instant>)>;

/// An in-memory host: a virtual clock that moves only on sleep and I/O, a KV map with TTLs, and
/// scripted destinations.
struct Sim {
    now: Cell<Instant>,
    kv: RefCell<Kv>,
    scripts: RefCell<BTreeMap<String, Script>>,
    calls: RefCell<BTreeMap<String, u32>>,
    posts: RefCell<Vec<Post>>,
    kv_down: Cell<bool>,
}

impl Sim {
    fn new() -> Sim {
        let s = Sim {
            now: Cell::new(Instant::from_secs(T0)),
            kv: RefCell::new(BTreeMap::new()),
            scripts: RefCell::new(BTreeMap::new()),
            calls: RefCell::new(BTreeMap::new()),
            posts: RefCell::new(Vec::new()),
            kv_down: Cell::new(false),
        };
        s.script(FLAKY, Script::Up);
        s.script(DOWN, Script::Up);
        s
    }
    fn script(&self, url: &str, s: Script) {
        self.scripts.borrow_mut().insert(url.to_owned(), s);
        self.calls.borrow_mut().insert(url.to_owned(), 0);
    }
    fn advance(&self, d: Duration) {
        self.now.set(self.now.get() + d);
    }
    fn keys(&self, prefix: &str) -> Vec<String> {
        self.kv
            .borrow()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }
    /// Event ids each destination accepted (2xx), in order.
    fn delivered(&self, url: &str) -> Vec<String> {
        self.posts
            .borrow()
            .iter()
            .filter(|p| p.url == url && p.answered == Ok(200))
            .map(|p| {
                let v: Value = serde_json::from_slice(&p.body).unwrap();
                v["id"].as_str().unwrap().to_owned()
            })
            .collect()
    }
    fn attempts_to(&self, url: &str) -> usize {
        self.posts.borrow().iter().filter(|p| p.url == url).count()
    }
    fn check_kv(&self) -> Result<(), KvError> {
        if self.kv_down.get() {
            Err(KvError("down".into()))
        } else {
            Ok(())
        }
    }
}

impl HookHost for Sim {
    fn now(&self) -> Instant {
        self.now.get()
    }
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.check_kv()?;
        let now = self.now.get();
        Ok(self
            .kv
            .borrow()
            .get(key)
            .filter(|(_, exp)| exp.is_none_or(|e| e > now))
            .map(|(v, _)| v.clone()))
    }
    async fn kv_put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        self.check_kv()?;
        let exp = ttl.map(|t| self.now.get() + t);
        self.kv.borrow_mut().insert(key.to_owned(), (value, exp));
        Ok(())
    }
    async fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        self.check_kv()?;
        self.kv.borrow_mut().remove(key);
        Ok(())
    }
    async fn kv_list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.check_kv()?;
        Ok(self.keys(prefix))
    }
    async fn post(&self, post: &mosaic_providers::hooks::Post<'_>) -> Result<u16, PostError> {
        let (url, headers, body, deadline) = (post.url, post.headers, post.body, post.deadline);
        let at = self.now.get();
        assert!(deadline > at);
        self.advance(Duration::from_millis(40));
        let n = {
            let mut calls = self.calls.borrow_mut();
            let c = calls.entry(url.to_owned()).or_insert(0);
            *c += 1;
            *c
        };
        let script = self
            .scripts
            .borrow()
            .get(url)
            .copied()
            .unwrap_or(Script::Down);
        let answered = match script {
            Script::Up => Ok(200),
            Script::Down => Ok(503),
            Script::FailThenRecover(k) if n <= k => {
                if n % 2 == 0 {
                    Err(PostError::Network("connection refused".into()))
                } else {
                    Ok(503)
                }
            }
            Script::FailThenRecover(_) => Ok(200),
        };
        self.posts.borrow_mut().push(Post {
            url: url.to_owned(),
            at,
            headers: headers.to_vec(),
            body: body.to_vec(),
            answered: answered.clone(),
        });
        answered
    }
    async fn sleep_until(&self, t: Instant) {
        if t > self.now.get() {
            self.now.set(t);
        }
    }
}

fn github_delivery(id: &str, body: &str, now: Instant) -> Vec<(String, String)> {
    let preset = webhook::preset_by_name("github").unwrap();
    let mut h = webhook::sign(
        preset,
        GH_SECRET.as_bytes(),
        body.as_bytes(),
        None,
        id,
        Some("issues"),
        now,
    )
    .unwrap();
    h.push(("content-type".into(), "application/json".into()));
    h
}

fn issue_body(n: u32) -> String {
    format!(
        r#"{{"action":"opened","issue":{{"number":{n}}},"repository":{{"html_url":"https://github.com/o/r"}}}}"#
    )
}

fn post_hook(sim: &Sim, r: &Router, id: &str, body: &str) -> HookReply {
    let h = github_delivery(id, body, sim.now());
    block_on(handle_hook(
        sim,
        r,
        "gh",
        "/hooks/gh",
        &h,
        body.as_bytes(),
        "req-1",
    ))
}

fn run_all(sim: &Sim, r: &Router, ds: Vec<Delivery>, seed: u64) -> Vec<Delivered> {
    let mut rng = Rng::seed(seed);
    ds.into_iter()
        .map(|d| {
            block_on(deliver(
                sim,
                r,
                &DeliveryPolicy::default(),
                d,
                &mut rng,
                None,
            ))
            .0
        })
        .collect()
}

fn json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap()
}

#[test]
fn genuine_delivery_is_accepted_normalized_and_stored_before_answering() {
    let (sim, r) = (Sim::new(), router());
    let reply = post_hook(&sim, &r, "d-1", &issue_body(7));
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.result, "accepted");
    let ack = json(&reply.body);
    assert_eq!(ack["status"], "accepted");
    assert_eq!(ack["id"], "d-1");
    assert_eq!(ack["type"], "com.github.issues.opened");
    assert_eq!(reply.deliveries.len(), 2);
    let d = &reply.deliveries[0];
    let ce = json(&d.event);
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["id"], "d-1");
    assert_eq!(ce["mosaictenant"], "default");
    assert_eq!(ce["mosaicprovider"], "github");
    assert_eq!(ce["mosaicdelivery"], "d-1");
    assert_eq!(ce["data"]["issue"]["number"], 7);
    // the outbox and the dedup key are in KV before the answer
    assert_eq!(sim.keys(PENDING_PREFIX).len(), 2);
    let kv = sim.kv.borrow();
    let (_, exp) = kv.get(&seen_key("gh", "d-1")).unwrap();
    assert_eq!(*exp, Some(sim.now() + Duration::from_secs(3600)));
}

#[test]
fn the_receipt_log_line_names_only_configured_endpoints() {
    let (sim, r) = (Sim::new(), router());
    let body = issue_body(3);
    let reply = post_hook(&sim, &r, "d-log", &body);
    let line = reply.receipt_log("req-1", "gh", true, body.len());
    assert_eq!(line["message"], "webhook delivery received");
    assert_eq!(
        (&line["endpoint"], &line["result"], &line["status"]),
        (&"gh".into(), &"accepted".into(), &200.into())
    );
    assert_eq!(line["event_id"], "d-log");
    assert_eq!(line["destinations"], 2);
    assert_eq!(line["bytes"], body.len());
    let unknown = reply.receipt_log("req-2", "attacker-chosen", false, 0);
    assert_eq!(
        unknown["endpoint"], "",
        "an unconfigured name is not logged"
    );
}

#[test]
fn forged_and_unsigned_deliveries_get_401_problem_json_without_secret_material() {
    let (sim, r) = (Sim::new(), router());
    let body = issue_body(1);
    let mut h = github_delivery("d-1", &body, sim.now());
    let good_sig = h[0].1.clone();
    let forged = "sha256=".to_owned() + &"ab".repeat(32);
    h[0].1 = forged.clone();
    for headers in [h.clone(), h[1..].to_vec()] {
        let reply = block_on(handle_hook(
            &sim,
            &r,
            "gh",
            "/hooks/gh",
            &headers,
            body.as_bytes(),
            "rq",
        ));
        assert_eq!(reply.status, 401);
        assert_eq!(reply.result, "rejected");
        assert_eq!(
            reply.headers.header("content-type"),
            Some("application/problem+json")
        );
        let text = String::from_utf8(reply.body.clone()).unwrap();
        let p = json(&reply.body);
        assert_eq!(p["code"], "webhook-rejected");
        assert_eq!(p["status"], 401);
        for secret in [GH_SECRET, SIGN_SECRET, &good_sig, &forged[7..]] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(reply.deliveries.is_empty());
    }
    // a forged body under a genuine signature fails too
    let h = github_delivery("d-2", &body, sim.now());
    let reply = block_on(handle_hook(
        &sim,
        &r,
        "gh",
        "/hooks/gh",
        &h,
        b"{\"action\":\"x\"}",
        "rq",
    ));
    assert_eq!(reply.status, 401);
    assert!(
        sim.kv.borrow().is_empty(),
        "nothing stored for a rejected delivery"
    );
}

#[test]
fn duplicate_is_answered_200_with_marker_and_not_forwarded_again() {
    let (sim, r) = (Sim::new(), router());
    let body = issue_body(3);
    let first = post_hook(&sim, &r, "d-dup", &body);
    assert_eq!(first.status, 200);
    run_all(&sim, &r, first.deliveries, 1);
    sim.advance(Duration::from_secs(30));
    let again = post_hook(&sim, &r, "d-dup", &body);
    assert_eq!(again.status, 200);
    assert_eq!(again.result, "duplicate");
    assert_eq!(again.headers.header("x-mosaic-duplicate"), Some("true"));
    assert_eq!(json(&again.body)["status"], "duplicate");
    assert!(again.deliveries.is_empty());
    assert_eq!(sim.delivered(FLAKY), ["d-dup"]);
    assert_eq!(sim.delivered(DOWN), ["d-dup"]);
    // a captured delivery replayed under a fresh id (GitHub does not sign the id header) is
    // caught by the body hash
    let replayed = post_hook(&sim, &r, "d-fresh", &body);
    assert_eq!(replayed.result, "duplicate");
    assert!(replayed.deliveries.is_empty());
    assert_eq!(sim.delivered(FLAKY), ["d-dup"]);
    // after the dedup TTL the id is forgotten: a new delivery with it is accepted
    sim.advance(Duration::from_secs(3600));
    assert_eq!(post_hook(&sim, &r, "d-dup", &body).result, "accepted");
}

#[test]
fn oversize_body_is_413_before_verification() {
    let (sim, r) = (Sim::new(), router());
    let body = format!(r#"{{"action":"opened","pad":"{}"}}"#, "x".repeat(5000));
    let reply = post_hook(&sim, &r, "d-big", &body);
    assert_eq!(reply.status, 413);
    assert_eq!(reply.result, "too-large");
    assert_eq!(json(&reply.body)["code"], "payload-too-large");
    // unsigned and oversize: still 413 (size is checked first)
    let reply = block_on(handle_hook(
        &sim,
        &r,
        "gh",
        "/hooks/gh",
        &Vec::<(String, String)>::new(),
        body.as_bytes(),
        "rq",
    ));
    assert_eq!(reply.status, 413);
    assert!(sim.kv.borrow().is_empty());
}

#[test]
fn unknown_endpoint_is_404_and_kv_failure_is_500_so_the_provider_retries() {
    let (sim, r) = (Sim::new(), router());
    let body = issue_body(1);
    let h = github_delivery("d-1", &body, sim.now());
    let reply = block_on(handle_hook(
        &sim,
        &r,
        "nope",
        "/hooks/nope",
        &h,
        body.as_bytes(),
        "rq",
    ));
    assert_eq!(reply.status, 404);
    sim.kv_down.set(true);
    let reply = post_hook(&sim, &r, "d-1", &body);
    assert_eq!(reply.status, 500);
    assert!(reply.headers.header("retry-after").is_some());
    assert!(reply.deliveries.is_empty());
    sim.kv_down.set(false);
    assert_eq!(post_hook(&sim, &r, "d-1", &body).result, "accepted");
}

#[test]
fn flaky_destination_receives_every_event_exactly_once_after_retries() {
    let (sim, r) = (Sim::new(), router());
    sim.script(FLAKY, Script::FailThenRecover(4));
    let mut ids = Vec::new();
    let mut outcomes = Vec::new();
    for n in 0..5 {
        let id = format!("d-{n}");
        let reply = post_hook(&sim, &r, &id, &issue_body(n));
        assert_eq!(reply.status, 200);
        ids.push(id);
        // only the flaky destination here
        let ds: Vec<Delivery> = reply
            .deliveries
            .into_iter()
            .filter(|d| d.dest == 0)
            .collect();
        outcomes.extend(run_all(&sim, &r, ds, 42 + u64::from(n)));
    }
    assert!(
        outcomes.iter().all(|o| *o == Delivered::Done),
        "{outcomes:?}"
    );
    assert_eq!(sim.delivered(FLAKY), ids);
    assert_eq!(sim.attempts_to(FLAKY), 5 + 4);
    // retries of the first event waited with backoff under the full-jitter ceilings
    let posts = sim.posts.borrow();
    let times: Vec<Instant> = posts.iter().take(5).map(|p| p.at).collect();
    let policy = DeliveryPolicy::default();
    for (i, w) in times.windows(2).enumerate() {
        let gap = w[1] - w[0];
        let retry = u32::try_from(i).unwrap() + 1;
        assert!(
            gap <= policy.backoff.ceiling(retry) + Duration::from_millis(40),
            "{gap:?}"
        );
    }
    // every attempt is signed with Standard Webhooks, webhook-id = event id, verifiable
    for p in posts.iter() {
        assert_eq!(
            p.headers.header("content-type"),
            Some("application/cloudevents+json")
        );
        let ce = json(&p.body);
        assert_eq!(p.headers.header("webhook-id"), ce["id"].as_str());
        core_webhook::verify(
            &Scheme::StandardWebhooks,
            &[SIGN_SECRET.as_bytes()],
            &p.headers,
            &p.body,
            None,
            p.at,
            None,
        )
        .unwrap();
    }
    drop(posts);
    assert!(sim.keys(PENDING_PREFIX).iter().all(|k| k.ends_with(":1")));
    assert!(sim.keys(DEAD_PREFIX).is_empty());
}

#[test]
fn retry_transcript_is_pinned_for_a_seed() {
    let (sim, r) = (Sim::new(), router());
    sim.script(FLAKY, Script::FailThenRecover(3));
    let reply = post_hook(&sim, &r, "t-1", &issue_body(1));
    let d: Vec<Delivery> = reply
        .deliveries
        .into_iter()
        .filter(|d| d.dest == 0)
        .collect();
    let start = sim.now();
    assert_eq!(run_all(&sim, &r, d, 2024), [Delivered::Done]);
    let transcript: Vec<String> = sim
        .posts
        .borrow()
        .iter()
        .map(|p| {
            let answer = match &p.answered {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            format!("+{}ms {answer}", (p.at - start).as_millis())
        })
        .collect();
    assert_eq!(transcript, TRANSCRIPT, "{transcript:#?}");
}

/// Seed 2024, 40 ms per POST: the waits (111 ms, 3129 ms, 576 ms) are full-jitter draws under
/// the 2 s, 4 s and 8 s ceilings.
const TRANSCRIPT: [&str; 4] = [
    "+0ms 503",
    "+151ms network error: connection refused",
    "+3320ms 503",
    "+3936ms 200",
];

#[test]
fn destination_that_stays_down_fills_dead_letters_and_replay_delivers_exactly_once() {
    let (sim, r) = (Sim::new(), router());
    sim.script(DOWN, Script::Down);
    for n in 0..3 {
        let reply = post_hook(&sim, &r, &format!("e-{n}"), &issue_body(n));
        let out = run_all(&sim, &r, reply.deliveries, 7);
        assert_eq!(out, [Delivered::Done, Delivered::DeadLettered]);
    }
    assert_eq!(sim.attempts_to(DOWN), 3 * 3, "attempts = 3 each");
    assert!(sim.delivered(DOWN).is_empty());
    assert!(sim.keys(PENDING_PREFIX).is_empty());
    let list = json(
        block_on(list_dead_letters(&sim, Some("gh")))
            .unwrap()
            .as_bytes(),
    );
    let letters = list["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 3);
    assert_eq!(letters[0]["id"], "gh:e-0:1");
    assert_eq!(letters[0]["event_id"], "e-0");
    assert_eq!(letters[0]["type"], "com.github.issues.opened");
    assert_eq!(letters[0]["attempts"], 3);
    assert_eq!(letters[0]["url"], DOWN);
    assert_eq!(letters[0]["last_error"], "destination answered 503");
    assert_eq!(
        json(
            block_on(list_dead_letters(&sim, Some("other")))
                .unwrap()
                .as_bytes()
        )["dead_letters"],
        Value::Array(vec![])
    );

    sim.script(DOWN, Script::Up);
    for l in letters {
        let id = l["id"].as_str().unwrap();
        let d = block_on(replay_dead_letter(&sim, id)).unwrap();
        assert_eq!(d.attempts, 0);
        assert_eq!(
            sim.keys(DEAD_PREFIX)
                .iter()
                .filter(|k| k.ends_with(id))
                .count(),
            0
        );
        assert!(sim.kv.borrow().contains_key(&pending_key(&d)));
        assert_eq!(run_all(&sim, &r, vec![d], 9), [Delivered::Done]);
        // replaying again finds nothing: no second delivery
        assert_eq!(
            block_on(replay_dead_letter(&sim, id)),
            Err(ReplayError::NotFound)
        );
    }
    assert_eq!(sim.delivered(DOWN), ["e-0", "e-1", "e-2"]);
    assert!(sim.keys(DEAD_PREFIX).is_empty());
    assert!(sim.keys(PENDING_PREFIX).is_empty());
    assert_eq!(sim.delivered(FLAKY), ["e-0", "e-1", "e-2"]);
}

#[test]
fn permanent_refusal_dead_letters_at_once() {
    let (sim, r) = (Sim::new(), router());
    let mut d = Delivery::new("gh", "x", 0, FLAKY, 8, sim.now(), b"{}".to_vec());
    let b = DeliveryPolicy::default().backoff;
    let mut rng = Rng::seed(1);
    assert_eq!(
        d.next_step(sim.now(), &Ok(404), &b, &mut rng),
        Next::DeadLetter
    );
    assert_eq!(d.attempts, 1);
    assert_eq!(d.last_error.as_deref(), Some("destination answered 404"));
    let mut d = Delivery::new("gh", "x", 0, FLAKY, 3, sim.now(), b"{}".to_vec());
    for (i, o) in [Ok(429), Err(PostError::Timeout)].into_iter().enumerate() {
        match d.next_step(sim.now(), &o, &b, &mut rng) {
            Next::Retry { at } => {
                assert!(at - sim.now() < b.ceiling(u32::try_from(i).unwrap() + 1));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        d.next_step(sim.now(), &Ok(500), &b, &mut rng),
        Next::DeadLetter
    );
    assert_eq!(d.next_step(sim.now(), &Ok(204), &b, &mut rng), Next::Done);
    drop(r);
}

#[test]
fn parked_delivery_is_resumed_from_the_outbox() {
    let (sim, r) = (Sim::new(), router());
    sim.script(FLAKY, Script::FailThenRecover(1));
    let reply = post_hook(&sim, &r, "p-1", &issue_body(1));
    let d = reply.deliveries.into_iter().next().unwrap();
    // a Workers-like window that ends now: one attempt, then parked
    let mut rng = Rng::seed(3);
    let until = Some(sim.now());
    let (out, _) = block_on(deliver(
        &sim,
        &r,
        &DeliveryPolicy::default(),
        d,
        &mut rng,
        until,
    ));
    let Delivered::Parked { at } = out else {
        panic!("{out:?}")
    };
    assert!(
        block_on(due_pending(&sim, sim.now(), Duration::from_secs(60)))
            .unwrap()
            .iter()
            .all(|d| d.dest != 0)
    );
    sim.now.set(at + Duration::from_secs(61));
    let due = block_on(due_pending(&sim, sim.now(), Duration::from_secs(60))).unwrap();
    let mine: Vec<Delivery> = due.into_iter().filter(|d| d.dest == 0).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].attempts, 1);
    assert_eq!(run_all(&sim, &r, mine, 4), [Delivered::Done]);
    assert_eq!(sim.delivered(FLAKY), ["p-1"]);
}

#[test]
fn unconfigured_destination_is_dead_lettered_not_dropped() {
    let (sim, r) = (Sim::new(), router());
    let d = Delivery::new(
        "gh",
        "z",
        5,
        "https://gone.example/",
        8,
        sim.now(),
        b"{}".to_vec(),
    );
    assert_eq!(
        run_all(&sim, &r, vec![d.clone()], 1),
        [Delivered::DeadLettered]
    );
    let stored = sim.kv.borrow().get(&dead_key(&d)).unwrap().0.clone();
    let back = Delivery::decode(&stored).unwrap();
    assert!(back.last_error.unwrap().contains("no longer configured"));
    assert_eq!(sim.attempts_to("https://gone.example/"), 0);
}

#[test]
fn slack_challenge_and_notion_handshake_are_answered_and_not_forwarded() {
    let (sim, r) = (Sim::new(), router());
    let body = br#"{"type":"url_verification","challenge":"c-123","token":"t"}"#;
    let preset = webhook::preset_by_name("slack").unwrap();
    let h = webhook::sign(
        preset,
        b"slack-signing-secret",
        body,
        None,
        "x",
        None,
        sim.now(),
    )
    .unwrap();
    let reply = block_on(handle_hook(
        &sim,
        &r,
        "slack",
        "/hooks/slack",
        &h,
        body,
        "rq",
    ));
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"c-123"[..]));
    let body = br#"{"verification_token":"secret_abc"}"#;
    let none: Vec<(String, String)> = Vec::new();
    let reply = block_on(handle_hook(
        &sim,
        &r,
        "notion",
        "/hooks/notion",
        &none,
        body,
        "rq",
    ));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.result, "handshake");
    assert_eq!(
        reply.handshake_token.as_ref().unwrap().expose(),
        "secret_abc"
    );
    assert!(!String::from_utf8_lossy(&reply.body).contains("secret_abc"));
    assert!(reply.deliveries.is_empty());
    assert!(sim.kv.borrow().is_empty());
}

#[test]
fn delivery_records_round_trip_and_garbage_never_decodes() {
    let mut d = Delivery::new(
        "gh",
        "sha256:ab",
        3,
        "https://x.example/a?b",
        8,
        Instant::from_secs(T0),
        b"{\"a\":1}".to_vec(),
    );
    assert_eq!(Delivery::decode(&d.encode()), Some(d.clone()));
    d.last_error = Some("destination answered 503".into());
    d.attempts = 4;
    let enc = d.encode();
    assert_eq!(Delivery::decode(&enc), Some(d));
    for n in 0..enc.len() {
        assert_eq!(Delivery::decode(&enc[..n]), None, "truncated at {n}");
    }
    let mut longer = enc.clone();
    longer.push(0);
    assert_eq!(Delivery::decode(&longer), None);
    let mut other_version = enc;
    other_version[2] = 2;
    assert_eq!(Delivery::decode(&other_version), None);
    let mut rng = Rng::seed(5);
    for _ in 0..2000 {
        let n = usize::try_from(rng.below(64)).unwrap();
        let mut b: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        if rng.below(2) == 0 && b.len() > 3 {
            b[..3].copy_from_slice(b"MD\x01");
        }
        let _ = Delivery::decode(&b);
    }
}

// --- command line ----------------------------------------------------------------------------

const ED_SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

/// (sign secret, verify secret, body, target) for a scheme.
fn cli_case(name: &str, now: Instant) -> (Vec<u8>, Vec<u8>, Vec<u8>, Option<String>) {
    let body = match name {
        "linear" => format!(
            r#"{{"type":"Issue","action":"create","webhookTimestamp":{}}}"#,
            now.as_millis()
        ),
        _ => r#"{"type":"x.created","id":"evt_1","action":"opened"}"#.to_owned(),
    };
    let (sign, verify) = match name {
        "standard-webhooks" | "gitlab-signing" => (
            SIGN_SECRET.as_bytes().to_vec(),
            SIGN_SECRET.as_bytes().to_vec(),
        ),
        "woodpecker" => (
            ED_SEED_HEX.as_bytes().to_vec(),
            ed25519_public_key(ED_SEED_HEX.as_bytes())
                .unwrap()
                .into_bytes(),
        ),
        _ => (b"s3cret".to_vec(), b"s3cret".to_vec()),
    };
    let target = match name {
        "bookstack" | "jenkins" => Some("/hooks/x?token=s3cret".to_owned()),
        "woodpecker" => Some("/hooks/x".to_owned()),
        _ => None,
    };
    (sign, verify, body.into_bytes(), target)
}

#[test]
fn cli_sign_then_verify_round_trips_for_every_scheme() {
    let now = Instant::from_secs(T0);
    assert_eq!(NAMES.len(), mosaic_core::config::WEBHOOK_SCHEMES.len());
    for name in NAMES {
        let (sign, verify, body, target) = cli_case(name, now);
        let out = cli_sign(name, &sign, &body, Some("msg_1"), target.as_deref(), now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // GitLab's classic scheme sends the token itself as the header: that is what it prints
        if name != "gitlab" {
            assert!(
                !out.contains("s3cret"),
                "{name}: the secret is never printed: {out}"
            );
        }
        let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        let (code, msg) = cli_verify(name, &verify, &body, &lines, target.as_deref(), now);
        assert_eq!(code, 0, "{name}: {msg}\n{out}");
        // a wrong secret is not genuine (exit 1), and the message does not leak either secret
        let wrong: Vec<u8> = match name {
            "woodpecker" => ed25519_public_key(&[b'1'; 64]).unwrap().into_bytes(),
            "standard-webhooks" | "gitlab-signing" => {
                b"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_vec()
            }
            _ => b"other".to_vec(),
        };
        let (code, msg) = cli_verify(name, &wrong, &body, &lines, target.as_deref(), now);
        assert_eq!(code, 1, "{name}: {msg}");
        assert!(
            !msg.contains("s3cret") && !msg.contains("other"),
            "{name}: {msg}"
        );
    }
}

#[test]
fn cli_sign_is_deterministic_and_honours_now() {
    let now = Instant::from_secs(T0);
    let a = cli_sign("stripe", b"whsec_x", b"{}", None, None, now).unwrap();
    assert_eq!(
        a,
        cli_sign("stripe", b"whsec_x", b"{}", None, None, now).unwrap()
    );
    assert!(
        a.starts_with(&format!("Stripe-Signature: t={T0},v1=")),
        "{a}"
    );
    let g = cli_sign("github", b"k", b"{}", None, None, now).unwrap();
    assert!(g.contains("X-GitHub-Delivery: msg_"), "{g}");
    let b = cli_sign("bookstack", b"k", b"{}", None, None, now).unwrap();
    assert!(b.starts_with('#') && !b.contains(": k"), "{b}");
}

#[test]
fn cli_verify_exit_codes() {
    let now = Instant::from_secs(T0);
    let body = b"{}";
    let h = cli_sign("github", b"k", body, Some("1"), None, now).unwrap();
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(cli_verify("github", b"k", body, &lines, None, now).0, 0);
    // not genuine → 1
    let (c, m) = cli_verify("github", b"k", b"{ }", &lines, None, now);
    assert_eq!(c, 1, "{m}");
    assert!(m.contains("bad-signature"), "{m}");
    let (c, m) = cli_verify("github", b"k", body, &[], None, now);
    assert_eq!((c, m.contains("missing-signature")), (1, true), "{m}");
    // a stale timestamp → 1
    let s = cli_sign("slack", b"k", body, None, None, now).unwrap();
    let sl: Vec<&str> = s.lines().collect();
    let later = now + Duration::from_secs(301);
    let (c, m) = cli_verify("slack", b"k", body, &sl, None, later);
    assert_eq!(c, 1, "{m}");
    // cannot verify at all → 2
    assert_eq!(cli_verify("githib", b"k", body, &lines, None, now).0, 2);
    assert_eq!(
        cli_verify("github", b"k", body, &["no colon"], None, now).0,
        2
    );
    assert_eq!(cli_verify("github", b"", body, &lines, None, now).0, 2);
    let sw = cli_sign(
        "standard-webhooks",
        SIGN_SECRET.as_bytes(),
        body,
        None,
        None,
        now,
    )
    .unwrap();
    let swl: Vec<&str> = sw.lines().collect();
    assert_eq!(
        cli_verify(
            "standard-webhooks",
            SIGN_SECRET.as_bytes(),
            body,
            &swl,
            None,
            now
        )
        .0,
        0
    );
    let (c, m) = cli_verify("standard-webhooks", b"whsec_!!", body, &swl, None, now);
    assert_eq!(c, 2, "{m}");
    let e = cli_sign("githib", b"k", body, None, None, now).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("github, gitea"));
}
