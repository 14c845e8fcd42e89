//! Driver scenarios on SimHost: cache hit, stale-while-revalidate, stale-if-error, tenant-scoped
//! keys, tenants and keys, rate limits and quotas, the admin token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mosaic_core::driver::{self, cache_result};
use mosaic_core::engine::Request;
use mosaic_core::http::Method;
use mosaic_core::region::Locality;
use mosaic_core::sim::{block_on, Behaviour};
use sha2::{Digest, Sha256};
use std::time::Duration;

const CACHED: &str = r#"
[[providers]]
id = "a"
base_url = "https://a.example"
[[providers]]
id = "b"
base_url = "https://b.example"
[[routes]]
name = "api"
match = { path = "/api/{*rest}", methods = ["GET", "POST"] }
providers = ["a", "b"]
cache = { enabled = true }
"#;

fn cacheable(max_age: u64, extra: &str) -> Behaviour {
    Behaviour::ok()
        .with_header("cache-control", &format!("max-age={max_age}{extra}"))
        .with_body(b"v1")
}

#[test]
fn cache_hit_then_expiry() {
    let r = router(CACHED);
    let h = sim(&r);
    h.upstream("a", cacheable(60, ""));
    let first = get(&h, &r, "/api/x");
    assert_eq!(
        (first.status, header(&first, "x-mosaic-cache")),
        (200, Some("miss"))
    );
    let second = get(&h, &r, "/api/x");
    assert_eq!(second.log.cache, cache_result::HIT);
    assert_eq!(header(&second, "x-mosaic-cache"), Some("hit"));
    assert_eq!(body(&second), "v1");
    assert_eq!(h.hits("a"), 1);
    h.advance(Duration::from_secs(61));
    let third = get(&h, &r, "/api/x");
    assert_eq!(third.log.cache, cache_result::MISS);
    assert_eq!(h.hits("a"), 2);
    // a different query is a different entry; POST is never cached
    let _ = get(&h, &r, "/api/x?y=1");
    let _ = send(&h, &r, Method::Post, "/api/x", &[]);
    assert_eq!(h.hits("a"), 4);
}

#[test]
fn age_header_counts_from_storage() {
    let r = router(CACHED);
    let h = sim(&r);
    h.upstream("a", cacheable(60, ""));
    let _ = get(&h, &r, "/api/x");
    h.advance(Duration::from_secs(7));
    assert_eq!(header(&get(&h, &r, "/api/x"), "age"), Some("7"));
}

#[test]
fn stale_while_revalidate_serves_then_refreshes() {
    let r = router(CACHED);
    let h = sim(&r);
    h.upstream("a", cacheable(10, ", stale-while-revalidate=30"));
    let _ = get(&h, &r, "/api/x");
    h.advance(Duration::from_secs(15));
    h.upstream(
        "a",
        cacheable(10, ", stale-while-revalidate=30").with_body(b"v2"),
    );
    let stale = get(&h, &r, "/api/x");
    assert_eq!(stale.log.cache, cache_result::STALE);
    assert!(stale.revalidate, "host must refresh in the background");
    assert_eq!(body(&stale), "v1");
    assert_eq!(h.hits("a"), 1, "served without waiting on upstream");
    // the host's background refresh
    let headers = hdrs(&[]);
    let req = Request {
        method: Method::Get,
        host: Some("edge.test"),
        target: "/api/x",
        headers: &headers,
        client_ip: None,
        https: true,
        locality: Locality::default(),
        id: "bg",
    };
    let refreshed = block_on(driver::refresh(&h, &r, &req, 1 << 20));
    assert_eq!(body(&refreshed), "v2");
    let fresh = get(&h, &r, "/api/x");
    assert_eq!(
        (fresh.log.cache, body(&fresh).as_str()),
        (cache_result::HIT, "v2")
    );
}

#[test]
fn stale_if_error_when_every_provider_fails() {
    let r = router(CACHED);
    let h = sim(&r);
    h.upstream("a", cacheable(5, ", stale-if-error=300"));
    let _ = get(&h, &r, "/api/x");
    h.advance(Duration::from_secs(60));
    h.upstream("a", Behaviour::Down);
    h.upstream("b", Behaviour::status(503));
    let rep = get(&h, &r, "/api/x");
    assert_eq!(rep.status, 200);
    assert_eq!(rep.log.cache, cache_result::STALE_IF_ERROR);
    assert_eq!(body(&rep), "v1");
    // beyond the window: the error goes through
    h.advance(Duration::from_secs(300));
    let rep = get(&h, &r, "/api/x");
    assert_eq!(
        rep.status, 502,
        "a refused, b 503, a refused again: the last failure is reported"
    );
    assert_eq!(rep.log.cache, cache_result::MISS);
}

#[test]
fn no_store_and_private_are_not_cached() {
    let r = router(CACHED);
    let h = sim(&r);
    h.upstream(
        "a",
        Behaviour::ok().with_header("cache-control", "private, max-age=60"),
    );
    let _ = get(&h, &r, "/api/p");
    let _ = get(&h, &r, "/api/p");
    h.upstream(
        "a",
        Behaviour::ok().with_header("cache-control", "no-store"),
    );
    let _ = get(&h, &r, "/api/n");
    let _ = get(&h, &r, "/api/n");
    assert_eq!(h.hits("a"), 4);
    assert!(h.kv_keys().is_empty());
}

const TENANTS: &str = r#"
[[tenants]]
name = "acme"
keys = ["sha256:KEY_ACME"]
limit = { rate = 1.0, burst = 3 }
[[tenants]]
name = "globex"
keys = ["sha256:KEY_GLOBEX"]
routes = ["open"]
quota = { requests_per_day = 2 }
[[providers]]
id = "a"
base_url = "https://a.example"
[[routes]]
name = "api"
match = { path = "/api/{*rest}" }
providers = ["a"]
cache = { enabled = true }
[[routes]]
name = "open"
match = { path = "/open/{*rest}" }
providers = ["a"]
public = true
"#;

fn tenants() -> mosaic_core::Router {
    let hash = |k: &str| hex::encode(Sha256::digest(k.as_bytes()));
    router(
        &TENANTS
            .replace("KEY_ACME", &hash("acme-key"))
            .replace("KEY_GLOBEX", &hash("globex-key")),
    )
}

#[test]
fn keys_identify_tenants_and_caches_are_tenant_scoped() {
    let r = tenants();
    let h = sim(&r);
    h.upstream(
        "a",
        Behaviour::ok().with_header("cache-control", "max-age=60"),
    );
    let rep = get(&h, &r, "/api/x");
    assert_eq!(
        (rep.status, problem_code(&rep).as_str()),
        (401, "unauthorized")
    );
    let rep = send(
        &h,
        &r,
        Method::Get,
        "/api/x",
        &[("Authorization", "Bearer wrong")],
    );
    assert_eq!(rep.status, 401);
    let rep = send(
        &h,
        &r,
        Method::Get,
        "/api/x",
        &[("Authorization", "Bearer acme-key")],
    );
    assert_eq!((rep.status, rep.log.tenant.as_deref()), (200, Some("acme")));
    let rep = send(
        &h,
        &r,
        Method::Get,
        "/api/x",
        &[("X-Mosaic-Key", "acme-key")],
    );
    assert_eq!(rep.log.cache, cache_result::HIT);
    // globex may not use `api` at all
    let rep = send(
        &h,
        &r,
        Method::Get,
        "/api/x",
        &[("X-Mosaic-Key", "globex-key")],
    );
    assert_eq!(
        (rep.status, problem_code(&rep).as_str()),
        (403, "forbidden")
    );
    // public route: anonymous callers are the `public` tenant
    let rep = get(&h, &r, "/open/x");
    assert_eq!(
        (rep.status, rep.log.tenant.as_deref()),
        (200, Some("public"))
    );
    for k in h.kv_keys() {
        assert!(
            k.starts_with("acme:api:") || k.starts_with("public:open:"),
            "{k}"
        );
    }
    // the tenant key is never forwarded upstream
    for a in h.requests() {
        assert!(
            a.headers
                .iter()
                .all(|(n, v)| !v.contains("acme-key") && !n.eq_ignore_ascii_case("x-mosaic-key")),
            "{a:?}"
        );
    }
}

#[test]
fn rate_limit_burst_then_429_with_headers() {
    let r = tenants();
    let h = sim(&r);
    let key = [("X-Mosaic-Key", "acme-key")];
    for i in 0..3 {
        let rep = send(&h, &r, Method::Get, &format!("/api/{i}"), &key);
        assert_eq!(rep.status, 200, "request {i} within the burst");
        assert_eq!(
            header(&rep, "ratelimit-remaining"),
            Some(["2", "1", "0"][i])
        );
    }
    let rep = send(&h, &r, Method::Get, "/api/4", &key);
    assert_eq!(
        (rep.status, problem_code(&rep).as_str()),
        (429, "rate-limited")
    );
    assert_eq!(header(&rep, "retry-after"), Some("1"));
    h.advance(Duration::from_secs(1));
    assert_eq!(send(&h, &r, Method::Get, "/api/5", &key).status, 200);
    assert_eq!(h.state().metrics.rate_limited.get("acme"), Some(&1));
}

#[test]
fn daily_quota_refuses_until_midnight() {
    let r = tenants();
    let h = sim(&r);
    let key = [("X-Mosaic-Key", "globex-key")];
    assert_eq!(send(&h, &r, Method::Get, "/open/1", &key).status, 200);
    assert_eq!(send(&h, &r, Method::Get, "/open/2", &key).status, 200);
    let rep = send(&h, &r, Method::Get, "/open/3", &key);
    assert_eq!(
        (rep.status, problem_code(&rep).as_str()),
        (429, "quota-exceeded")
    );
    let wait: u64 = header(&rep, "retry-after").unwrap().parse().unwrap();
    let now = T0;
    assert_eq!(wait, (now / 86_400 + 1) * 86_400 - now);
    h.advance(Duration::from_secs(wait));
    assert_eq!(send(&h, &r, Method::Get, "/open/4", &key).status, 200);
}

#[test]
fn admin_token_is_separate_from_tenant_keys() {
    let r = router(&format!(
        "[server]\nadmin_token = \"env:ADMIN\"\n{}",
        tenants_toml()
    ));
    let ok = hdrs(&[("Authorization", "Bearer secret-of-ADMIN")]);
    assert!(r.check_admin(&ok[..]).is_ok());
    let alt = hdrs(&[("X-Mosaic-Admin-Token", "secret-of-ADMIN")]);
    assert!(r.check_admin(&alt[..]).is_ok());
    for bad in [
        vec![],
        hdrs(&[("Authorization", "Bearer acme-key")]),
        hdrs(&[("X-Mosaic-Key", "secret-of-ADMIN")]),
        hdrs(&[("Authorization", "Basic secret-of-ADMIN")]),
    ] {
        let e = r.check_admin(&bad[..]).unwrap_err();
        assert_eq!(e.status(), 401);
        assert!(!e.detail.contains("secret-of"), "never echoes the secret");
    }
    let closed = router(CACHED);
    assert!(
        closed.check_admin(&ok[..]).is_err(),
        "no admin token configured: closed"
    );
}

fn tenants_toml() -> String {
    let hash = |k: &str| hex::encode(Sha256::digest(k.as_bytes()));
    TENANTS
        .replace("KEY_ACME", &hash("acme-key"))
        .replace("KEY_GLOBEX", &hash("globex-key"))
}

#[test]
fn hop_by_hop_response_headers_never_reach_the_caller_or_the_cache() {
    let r = router(CACHED);
    let h = sim(&r);
    h.upstream(
        "a",
        cacheable(60, "")
            .with_header("Connection", "keep-alive, X-Hop")
            .with_header("Keep-Alive", "timeout=5")
            .with_header("X-Hop", "1")
            .with_header("X-Kept", "y"),
    );
    for (round, cache) in [(1, "miss"), (2, "hit")] {
        let rep = get(&h, &r, "/api/hop");
        assert_eq!(header(&rep, "x-mosaic-cache"), Some(cache), "round {round}");
        for gone in ["connection", "keep-alive", "x-hop"] {
            assert_eq!(header(&rep, gone), None, "round {round}: {gone} leaked");
        }
        assert_eq!(header(&rep, "x-kept"), Some("y"), "round {round}");
        assert_eq!(header(&rep, "x-mosaic-provider").is_some(), round == 1);
        assert_eq!(body(&rep), "v1");
    }
    // and without the cache: the upstream's own list, filtered in place
    let plain = router(&CACHED.replace("cache = { enabled = true }", ""));
    let h = sim(&plain);
    h.upstream(
        "a",
        Behaviour::ok()
            .with_header("Connection", "X-Hop")
            .with_header("X-Hop", "1")
            .with_header("X-Kept", "y"),
    );
    let rep = get(&h, &plain, "/api/hop");
    assert_eq!(header(&rep, "connection"), None);
    assert_eq!(header(&rep, "x-hop"), None);
    assert_eq!(header(&rep, "x-kept"), Some("y"));
    assert_eq!(header(&rep, "x-mosaic-provider"), Some("a"));
}
