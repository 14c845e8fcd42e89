//! End-to-end scenarios any host can run: each takes a [`HostUnderTest`], starts real mock
//! upstreams on 127.0.0.1 and a router serving a config that points at them, sends real
//! requests and checks what the caller got and what each upstream saw.
//!
//! Every wait is bounded; nothing leaves the loopback interface.

use std::time::{Duration, Instant};

use crate::host::{HostUnderTest, Running, ADMIN_REF, ADMIN_TOKEN};
use crate::mock::{closed_port_url, Behaviour, Mock};

/// The upstream credential every host under test binds to `secret:MOSAIC_TEST_UPSTREAM`.
pub const UPSTREAM_TOKEN: &str = "upstream-credential";

/// A response as the caller saw it.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// A header's value.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Who answered (`x-mock`), or "".
    #[must_use]
    pub fn from(&self) -> &str {
        self.header("x-mock").unwrap_or("")
    }
    /// `x-mosaic-cache`, or "".
    #[must_use]
    pub fn cache(&self) -> &str {
        self.header("x-mosaic-cache").unwrap_or("")
    }
}

/// A client of one router.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (`http://127.0.0.1:port`).
    ///
    /// # Panics
    /// When the HTTP client cannot be built.
    #[must_use]
    pub fn new(base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client"),
        }
    }

    /// Sends `method path` with headers and a body.
    ///
    /// # Panics
    /// When the router does not answer at all.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, format!("{}{path}", self.base));
        for (n, v) in headers {
            rb = rb.header(*n, *v);
        }
        if !body.is_empty() {
            rb = rb.body(body);
        }
        let r = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"));
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = r.text().await.unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], Vec::new()).await
    }

    /// `GET /_mosaic/state` as JSON.
    ///
    /// # Panics
    /// When the answer is not JSON.
    pub async fn state(&self) -> serde_json::Value {
        let r = self
            .send(
                "GET",
                "/_mosaic/state",
                &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, 200, "state: {}", r.body);
        serde_json::from_str(&r.body).expect("state is JSON")
    }

    /// The breaker state of `provider` on `route`, from `/_mosaic/state`.
    pub async fn breaker(&self, route: &str, provider: &str) -> String {
        let v = self.state().await;
        v["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["name"] == route)
            .flat_map(|r| r["providers"].as_array().cloned().unwrap_or_default())
            .find(|p| p["provider"] == provider)
            .and_then(|p| p["breaker"]["state"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// The `[server]` section every scenario config starts with, plus extra lines.
#[must_use]
pub fn server(extra: &str) -> String {
    format!("[server]\nadmin_token = \"{ADMIN_REF}\"\n{extra}\n")
}

/// A `[[providers]]` block for a loopback upstream.
#[must_use]
pub fn provider(id: &str, url: &str) -> String {
    format!("[[providers]]\nid = \"{id}\"\nbase_url = \"{url}\"\nallow_private = true\n\n")
}

fn start(host: &dyn HostUnderTest, config: &str) -> Box<dyn Running> {
    host.start(config).unwrap_or_else(|e| {
        panic!(
            "{}: router did not start: {e}\nconfig:\n{config}",
            host.name()
        )
    })
}

/// Polls `f` every 25 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

const RETRY_500: &str = "retry = { attempts = 3, on_status = [500, 502, 503, 504], backoff_base_ms = 10, backoff_max_ms = 50 }";

/// A refused connection fails over to the next provider.
pub async fn failover_on_connection_refused(host: &dyn HostUnderTest) {
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"down\", \"ok\"]\n",
        server(""),
        provider("down", &closed_port_url()),
        provider("ok", &ok.url())
    );
    let r = start(host, &cfg);
    let c = Client::new(&r.base_url());
    let resp = c.get("/a").await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    assert_eq!(resp.from(), "ok");
    assert_eq!(resp.header("x-mosaic-provider"), Some("ok"));
    assert_eq!(ok.hits(), 1);
}

/// A retryable 5xx fails over.
pub async fn failover_on_5xx(host: &dyn HostUnderTest) {
    let bad = Mock::start("bad", Behaviour::status(500)).await;
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"bad\", \"ok\"]\n{RETRY_500}\n",
        server(""),
        provider("bad", &bad.url()),
        provider("ok", &ok.url())
    );
    let r = start(host, &cfg);
    let resp = Client::new(&r.base_url()).get("/a").await;
    assert_eq!((resp.status, resp.from()), (200, "ok"), "{resp:?}");
    assert_eq!((bad.hits(), ok.hits()), (1, 1));
}

/// An upstream slower than the per-try timeout fails over within the timeout.
pub async fn failover_on_timeout(host: &dyn HostUnderTest) {
    let slow = Mock::start("slow", Behaviour::slow(3000)).await;
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"slow\", \"ok\"]\ntimeout = {{ per_try_ms = 300, total_ms = 5000 }}\n",
        server(""),
        provider("slow", &slow.url()),
        provider("ok", &ok.url())
    );
    let r = start(host, &cfg);
    let t = Instant::now();
    let resp = Client::new(&r.base_url()).get("/a").await;
    let took = t.elapsed();
    assert_eq!((resp.status, resp.from()), (200, "ok"), "{resp:?}");
    assert!(
        took >= Duration::from_millis(290),
        "answered before the per-try timeout: {took:?}"
    );
    assert!(
        took < Duration::from_millis(2000),
        "did not honour the 300 ms per-try timeout: {took:?}"
    );
}

/// The breaker stops traffic to a failing upstream, then probes it and recovers.
pub async fn breaker_opens_probes_and_recovers(host: &dyn HostUnderTest) {
    let bad = Mock::start("bad", Behaviour::status(500)).await;
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"bad\", \"ok\"]\n{RETRY_500}\nbreaker = {{ min_calls = 2, size = 4, failure_rate = 0.5, open_ms = 800, open_max_ms = 800 }}\n",
        server(""),
        provider("bad", &bad.url()),
        provider("ok", &ok.url())
    );
    let r = start(host, &cfg);
    let c = Client::new(&r.base_url());
    for _ in 0..4 {
        let resp = c.get("/a").await;
        assert_eq!((resp.status, resp.from()), (200, "ok"), "{resp:?}");
    }
    let tripped_at = bad.hits();
    assert_eq!(
        tripped_at, 2,
        "the breaker should open after min_calls = 2 failures"
    );
    assert_eq!(c.breaker("r", "bad").await, "open");
    for _ in 0..6 {
        let resp = c.get("/a").await;
        assert_eq!(resp.from(), "ok");
    }
    assert_eq!(
        bad.hits(),
        tripped_at,
        "an open breaker must stop traffic to the failing upstream"
    );
    // the upstream recovers; after the open period a probe goes through and closes the breaker
    bad.set(Behaviour::ok());
    tokio::time::sleep(Duration::from_millis(900)).await;
    let resp = c.get("/a").await;
    assert_eq!(
        (resp.status, resp.from()),
        (200, "bad"),
        "the probe should reach the recovered upstream: {resp:?}"
    );
    assert_eq!(c.breaker("r", "bad").await, "closed");
    let resp = c.get("/a").await;
    assert_eq!(
        resp.from(),
        "bad",
        "traffic returns to the first provider once closed"
    );
}

/// A 429 with `Retry-After` cools the provider down for that long.
pub async fn retry_after_is_honoured(host: &dyn HostUnderTest) {
    let limited = Mock::start("limited", Behaviour::ok()).await;
    limited.script([Behaviour::status(429).header("retry-after", "1")]);
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"limited\", \"ok\"]\n",
        server(""),
        provider("limited", &limited.url()),
        provider("ok", &ok.url())
    );
    let r = start(host, &cfg);
    let c = Client::new(&r.base_url());
    let t = Instant::now();
    let resp = c.get("/a").await;
    assert_eq!(
        (resp.status, resp.from()),
        (200, "ok"),
        "a 429 fails over: {resp:?}"
    );
    for _ in 0..3 {
        let resp = c.get("/a").await;
        assert_eq!(resp.from(), "ok", "the limited provider is cooling down");
    }
    assert_eq!(limited.hits(), 1);
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "test too slow to observe the cooldown"
    );
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(t.elapsed())).await;
    let resp = c.get("/a").await;
    assert_eq!(
        resp.from(),
        "limited",
        "after Retry-After the provider is used again"
    );
}

fn cache_route(name: &str, path: &str, providers: &str, cache: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nmatch = {{ methods = [\"GET\"], path = \"{path}\" }}\nproviders = [{providers}]\n{RETRY_500}\ncache = {{ enabled = true, {cache} }}\n"
    )
}

/// A cacheable response is served from the cache the second time.
pub async fn cache_hit(host: &dyn HostUnderTest) {
    let up = Mock::start("up", Behaviour::ok().header("cache-control", "max-age=60")).await;
    let cfg = format!(
        "{}{}{}",
        server(""),
        provider("up", &up.url()),
        cache_route("c", "/{*rest}", "\"up\"", "ttl_s = 0")
    );
    let r = start(host, &cfg);
    let c = Client::new(&r.base_url());
    let a = c.get("/item").await;
    assert_eq!(
        (a.status, a.cache(), a.body.as_str()),
        (200, "miss", "up 1"),
        "{a:?}"
    );
    let b = c.get("/item").await;
    assert_eq!(
        (b.status, b.cache(), b.body.as_str()),
        (200, "hit", "up 1"),
        "{b:?}"
    );
    assert_eq!(up.hits(), 1);
    let other = c.get("/other").await;
    assert_eq!(other.cache(), "miss");
}

/// A stale entry within stale-while-revalidate is served at once and refreshed in the background.
pub async fn stale_while_revalidate(host: &dyn HostUnderTest) {
    let up = Mock::start("up", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}",
        server(""),
        provider("up", &up.url()),
        cache_route(
            "c",
            "/{*rest}",
            "\"up\"",
            "ttl_s = 1, stale_while_revalidate_s = 30"
        )
    );
    let r = start(host, &cfg);
    let c = Client::new(&r.base_url());
    assert_eq!(c.get("/swr").await.body, "up 1");
    tokio::time::sleep(Duration::from_millis(1150)).await;
    let stale = c.get("/swr").await;
    assert_eq!(
        (stale.status, stale.cache(), stale.body.as_str()),
        (200, "stale", "up 1"),
        "{stale:?}"
    );
    assert!(
        eventually(Duration::from_secs(3), || async { up.hits() == 2 }).await,
        "the background refresh did not reach the upstream"
    );
    let fresh = c.get("/swr").await;
    assert!(
        eventually(Duration::from_secs(2), || {
            let c = c.clone();
            async move { c.get("/swr").await.body == "up 2" }
        })
        .await,
        "the refreshed entry is not served: {fresh:?}"
    );
    assert_eq!(up.hits(), 2, "exactly one background refresh");
}

/// When every provider fails, a stale entry within stale-if-error answers.
pub async fn stale_if_error(host: &dyn HostUnderTest) {
    let up = Mock::start("up", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}{}",
        server(""),
        provider("up", &up.url()),
        provider("down", &closed_port_url()),
        cache_route(
            "c",
            "/{*rest}",
            "\"up\", \"down\"",
            "ttl_s = 1, stale_if_error_s = 60"
        )
    );
    let r = start(host, &cfg);
    let c = Client::new(&r.base_url());
    assert_eq!(c.get("/sie").await.body, "up 1");
    up.set(Behaviour::status(500));
    tokio::time::sleep(Duration::from_millis(1150)).await;
    let resp = c.get("/sie").await;
    assert_eq!(
        (resp.status, resp.cache(), resp.body.as_str()),
        (200, "stale-if-error", "up 1"),
        "{resp:?}"
    );
    assert!(
        up.hits() >= 2,
        "the upstream was tried before falling back to the stale entry"
    );
}

/// N concurrent misses for one key make one upstream request.
pub async fn concurrent_misses_collapse(host: &dyn HostUnderTest) {
    let up = Mock::start("up", Behaviour::slow(400)).await;
    let cfg = format!(
        "{}{}{}",
        server(""),
        provider("up", &up.url()),
        cache_route("c", "/{*rest}", "\"up\"", "ttl_s = 30")
    );
    let r = start(host, &cfg);
    let c = Client::new(&r.base_url());
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.get("/hot").await }));
    }
    for t in tasks {
        let resp = t.await.expect("request task");
        assert_eq!((resp.status, resp.body.as_str()), (200, "up 1"), "{resp:?}");
    }
    assert_eq!(
        up.hits(),
        1,
        "10 concurrent misses must collapse into one upstream request"
    );
}

/// A POST that reached a provider is not retried unless it carries an `Idempotency-Key` or the
/// route opts in; one refused at connect fails over.
pub async fn post_retry_safety(host: &dyn HostUnderTest) {
    let bad = Mock::start("bad", Behaviour::status(503)).await;
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}{}{}\
         [[routes]]\nname = \"plain\"\nmatch = {{ path = \"/plain\" }}\nproviders = [\"bad\", \"ok\"]\n\
         [[routes]]\nname = \"optin\"\nmatch = {{ path = \"/optin\" }}\nproviders = [\"bad\", \"ok\"]\nretry_non_idempotent = true\n\
         [[routes]]\nname = \"refused\"\nmatch = {{ path = \"/refused\" }}\nproviders = [\"down\", \"ok\"]\n",
        server(""),
        provider("bad", &bad.url()),
        provider("ok", &ok.url()),
        provider("down", &closed_port_url())
    );
    let r = start(host, &cfg);
    let c = Client::new(&r.base_url());
    let resp = c.send("POST", "/plain", &[], b"{}".to_vec()).await;
    assert_eq!(resp.status, 503, "a sent POST is not retried: {resp:?}");
    assert_eq!((bad.hits(), ok.hits()), (1, 0));
    let resp = c
        .send(
            "POST",
            "/plain",
            &[("idempotency-key", "k-1")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        (resp.status, resp.from()),
        (200, "ok"),
        "with Idempotency-Key it fails over: {resp:?}"
    );
    let resp = c.send("POST", "/optin", &[], b"{}".to_vec()).await;
    assert_eq!(
        (resp.status, resp.from()),
        (200, "ok"),
        "the route opts in: {resp:?}"
    );
    let before = ok.hits();
    let resp = c.send("POST", "/refused", &[], b"{\"a\":1}".to_vec()).await;
    assert_eq!(
        (resp.status, resp.from()),
        (200, "ok"),
        "refused at connect, nothing was sent: {resp:?}"
    );
    assert_eq!(ok.hits(), before + 1);
    let seen = ok.seen();
    assert_eq!(
        seen.last().map(|s| s.body.as_ref()),
        Some(&b"{\"a\":1}"[..]),
        "the body reached the fallback"
    );
}

/// Hop-by-hop headers are stripped, forwarding and trace headers set, the caller's credentials
/// replaced by the provider's.
pub async fn headers_and_credentials(host: &dyn HostUnderTest) {
    let up = Mock::start("up", Behaviour::ok().header("x-upstream", "1")).await;
    let cfg = format!(
        "{}[[providers]]\nid = \"up\"\nbase_url = \"{}/base\"\nallow_private = true\nauth = {{ scheme = \"bearer\", secret = \"secret:MOSAIC_TEST_UPSTREAM\" }}\n\n\
         [[routes]]\nname = \"r\"\nmatch = {{ path = \"/api/{{*rest}}\" }}\nupstream_path = \"/v1/{{*rest}}\"\nproviders = [\"up\"]\n",
        server(""),
        up.url()
    );
    let r = start(host, &cfg);
    let c = Client::new(&r.base_url());
    let resp = c
        .send(
            "GET",
            "/api/things?x=1",
            &[
                ("authorization", "Bearer caller-secret"),
                ("x-custom", "kept"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
            ],
            Vec::new(),
        )
        .await;
    assert_eq!(resp.status, 200, "{resp:?}\n{}", r.logs());
    assert_eq!(resp.header("x-upstream"), Some("1"));
    assert!(resp
        .header("x-mosaic-request-id")
        .is_some_and(|v| !v.is_empty()));
    let seen = up.seen();
    let s = seen.last().expect("the upstream saw the request");
    assert_eq!(s.target, "/base/v1/things?x=1");
    assert_eq!(
        s.header("authorization"),
        Some(format!("Bearer {UPSTREAM_TOKEN}").as_str()),
        "provider credential, never the caller's"
    );
    assert_eq!(s.header("x-custom"), Some("kept"));
    assert_eq!(s.header("keep-alive"), None, "hop-by-hop stripped");
    assert_eq!(s.header("te"), None, "hop-by-hop stripped");
    assert!(
        s.header("x-forwarded-for")
            .is_some_and(|v| v.contains("127.0.0.1")),
        "{s:?}"
    );
    assert!(
        s.header("forwarded")
            .is_some_and(|v| v.starts_with("for=127.0.0.1")),
        "{s:?}"
    );
    // every host is reached over plain HTTP here (the local server, `wasmtime serve`,
    // `wrangler dev`): the proto says so
    assert!(
        s.header("forwarded")
            .is_some_and(|v| v.ends_with(";proto=http")),
        "{s:?}"
    );
    let tp = s.header("traceparent").unwrap_or("");
    assert_eq!(tp.len(), 55, "W3C traceparent: {tp}");
    assert!(tp.starts_with("00-"));
    assert!(
        !r.logs().contains("caller-secret") && !r.logs().contains(UPSTREAM_TOKEN),
        "secrets never logged"
    );
}

/// Limits answer clear problems; the admin API needs the token, health does not.
pub async fn limits_and_admin(host: &dyn HostUnderTest) {
    let up = Mock::start("up", Behaviour::ok()).await;
    let cfg = format!(
        "{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"up\"]\n",
        server("max_body_bytes = 1024\nmax_header_bytes = 4096"),
        provider("up", &up.url())
    );
    let r = start(host, &cfg);
    let c = Client::new(&r.base_url());
    let resp = c.send("POST", "/a", &[], vec![b'x'; 4096]).await;
    assert_eq!(resp.status, 413, "{resp:?}");
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
    assert!(resp.body.contains("payload-too-large"));
    let big = "y".repeat(5000);
    let resp = c.send("GET", "/a", &[("x-big", &big)], Vec::new()).await;
    assert_eq!(resp.status, 431, "{resp:?}");
    assert_eq!(up.hits(), 0, "nothing over a limit reaches an upstream");
    let resp = c.get("/_mosaic/health").await;
    assert_eq!(resp.status, 200);
    let health: serde_json::Value = serde_json::from_str(&resp.body).expect("health JSON");
    assert_eq!(
        (&health["status"], &health["live"], &health["ready"]),
        (&"ok".into(), &true.into(), &true.into()),
        "{health}"
    );
    assert!(
        health["routes"].as_u64().is_some_and(|n| n >= 1),
        "{health}"
    );
    let resp = c.get("/_mosaic/state").await;
    assert_eq!(resp.status, 401, "admin needs the token");
    let resp = c
        .send(
            "GET",
            "/_mosaic/metrics",
            &[("authorization", "Bearer wrong")],
            Vec::new(),
        )
        .await;
    assert_eq!(resp.status, 401);
    let resp = c
        .send(
            "GET",
            "/_mosaic/metrics",
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            Vec::new(),
        )
        .await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.body.contains("# TYPE mosaic_requests_total counter"),
        "{}",
        resp.body
    );
    let resp = c.get("/hooks/nothing").await;
    assert_eq!(resp.status, 404);
}

/// A good config reloads; a bad one is rejected with its errors and the old one stays.
pub async fn reload_good_and_bad(host: &dyn HostUnderTest) {
    let one = Mock::start("one", Behaviour::ok()).await;
    let two = Mock::start("two", Behaviour::ok()).await;
    let cfg = |p: &str| {
        format!(
            "{}{}{}[[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"{p}\"]\n",
            server(""),
            provider("one", &one.url()),
            provider("two", &two.url())
        )
    };
    let r = start(host, &cfg("one"));
    let c = Client::new(&r.base_url());
    let auth = format!("Bearer {ADMIN_TOKEN}");
    assert_eq!(c.get("/a").await.from(), "one");
    r.write_config(&cfg("two")).expect("write config");
    let resp = c
        .send(
            "POST",
            "/_mosaic/reload",
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(c.get("/a").await.from(), "two");
    let bad = cfg("two").replace(
        "providers = [\"two\"]",
        "providers = [\"two\"]\nstrategy = \"fastest\"",
    );
    r.write_config(&bad).expect("write config");
    let resp = c
        .send(
            "POST",
            "/_mosaic/reload",
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await;
    assert_eq!(resp.status, 400, "{resp:?}");
    assert!(
        resp.body.contains("routes[0].strategy"),
        "the error names the key path: {}",
        resp.body
    );
    assert_eq!(c.get("/a").await.from(), "two", "the old config stays");
}

/// Two routers sharing one store (Redis): a breaker opened by one is open for the other, and
/// what one cached the other serves.
pub async fn shared_state_and_cache(host: &dyn HostUnderTest, redis_url: &str) {
    let bad = Mock::start("bad", Behaviour::status(500)).await;
    let ok = Mock::start("ok", Behaviour::ok()).await;
    let cached = Mock::start("cached", Behaviour::ok()).await;
    let cfg = format!(
        "{}[store]\nkind = \"redis\"\nurl = \"{redis_url}\"\n\n{}{}{}\
         [[routes]]\nname = \"r\"\nmatch = {{ path = \"/x\" }}\nproviders = [\"bad\", \"ok\"]\n{RETRY_500}\nbreaker = {{ min_calls = 2, size = 4, open_ms = 30000, open_max_ms = 30000 }}\n\
         {}",
        server(""),
        provider("bad", &bad.url()),
        provider("ok", &ok.url()),
        provider("cached", &cached.url()),
        cache_route("c", "/c/{*rest}", "\"cached\"", "ttl_s = 60")
    );
    let a = start(host, &cfg);
    let b = start(host, &cfg);
    let ca = Client::new(&a.base_url());
    let cb = Client::new(&b.base_url());
    for _ in 0..3 {
        assert_eq!(ca.get("/x").await.from(), "ok");
    }
    assert_eq!(bad.hits(), 2);
    assert_eq!(ca.breaker("r", "bad").await, "open");
    let shared = eventually(Duration::from_secs(5), || {
        let cb = cb.clone();
        async move { cb.breaker("r", "bad").await == "open" }
    })
    .await;
    assert!(
        shared,
        "the second instance did not see the open breaker\n{}",
        b.logs()
    );
    for _ in 0..3 {
        assert_eq!(cb.get("/x").await.from(), "ok");
    }
    assert_eq!(
        bad.hits(),
        2,
        "the second instance must not call the failing upstream"
    );
    // a third instance started now restores the open breaker and does not overwrite it
    let late = start(host, &cfg);
    let cl = Client::new(&late.base_url());
    assert_eq!(
        cl.breaker("r", "bad").await,
        "open",
        "a late instance restores the shared state"
    );
    assert_eq!(cl.get("/x").await.from(), "ok");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cb.breaker("r", "bad").await,
        "open",
        "the late instance must not clobber the shared state"
    );
    assert_eq!(bad.hits(), 2);
    let first = ca.get("/c/item").await;
    assert_eq!((first.cache(), first.body.as_str()), ("miss", "cached 1"));
    let second = cb.get("/c/item").await;
    assert_eq!(
        (second.cache(), second.body.as_str()),
        ("hit", "cached 1"),
        "{second:?}"
    );
    assert_eq!(cached.hits(), 1);
}
