//! Tenant isolation: 10,000 randomized requests across tenants and routes with caching on. No
//! response is served from another tenant's cache entry, no upstream request carries another
//! tenant's credentials, and no tenant reaches a route it is not allowed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mosaic_core::http::Method;
use mosaic_core::rng::Rng;
use mosaic_core::sim::Behaviour;
use sha2::{Digest, Sha256};
use std::time::Duration;

const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

fn config() -> String {
    let mut s = String::new();
    for t in TENANTS {
        let hash = hex::encode(Sha256::digest(format!("key-{t}").as_bytes()));
        let routes = if t == "umbrella" {
            "routes = [\"shared\"]\n"
        } else {
            ""
        };
        s.push_str(&format!(
            "[[tenants]]\nname = \"{t}\"\nkeys = [\"sha256:{hash}\"]\n{routes}credentials = {{ a = \"env:CRED_{t}\", b = \"env:CRED_{t}\" }}\n"
        ));
    }
    s.push_str(
        r#"
[[providers]]
id = "a"
base_url = "https://a.example"
auth = { scheme = "bearer", secret = "env:SHARED_A" }
[[providers]]
id = "b"
base_url = "https://b.example"
auth = { scheme = "bearer", secret = "env:SHARED_B" }
[[routes]]
name = "shared"
match = { path = "/shared/{*rest}" }
providers = ["a", "b"]
cache = { enabled = true }
[[routes]]
name = "weighted"
match = { path = "/w/{id}" }
providers = ["a", "b"]
strategy = "weighted"
cache = { enabled = true, vary = ["accept"] }
[[routes]]
name = "open"
match = { path = "/open/{*rest}" }
providers = ["b"]
public = true
cache = { enabled = true }
"#,
    );
    s
}

#[test]
fn ten_thousand_randomized_requests_never_cross_tenants() {
    let r = router(&config());
    let h = sim(&r);
    h.upstream("a", Behaviour::Echo { max_age: 30 });
    h.upstream("b", Behaviour::Echo { max_age: 30 });
    let mut rng = Rng::seed(2024);
    let paths = ["/shared/x", "/shared/y?q=1", "/w/1", "/w/2", "/open/z"];
    let (mut hits, mut forbidden, mut anonymous) = (0, 0, 0);
    for i in 0..10_000 {
        let t = TENANTS[rng.below(TENANTS.len() as u64) as usize];
        let path = paths[rng.below(paths.len() as u64) as usize];
        let key = format!("key-{t}");
        let anon = rng.below(10) == 0;
        let accept = if rng.below(2) == 0 {
            "application/json"
        } else {
            "text/plain"
        };
        let headers: Vec<(&str, &str)> = if anon {
            vec![("accept", accept)]
        } else if rng.below(2) == 0 {
            vec![("x-mosaic-key", key.as_str()), ("accept", accept)]
        } else {
            vec![("accept", accept)]
        };
        let auth_header = format!("Bearer {key}");
        let headers: Vec<(&str, &str)> =
            if !anon && !headers.iter().any(|(n, _)| *n == "x-mosaic-key") {
                vec![("authorization", auth_header.as_str()), ("accept", accept)]
            } else {
                headers
            };
        let rep = send(&h, &r, Method::Get, path, &headers);
        if rep.log.cache == "hit" {
            hits += 1;
        }
        let b = body(&rep);
        match (anon, path.starts_with("/open/")) {
            (true, true) => {
                anonymous += 1;
                assert_eq!(rep.status, 200);
                assert_eq!(rep.log.tenant.as_deref(), Some("public"));
                // the public tenant gets the provider's shared credential, never a tenant's
                assert!(
                    b.contains("auth=Bearer secret-of-SHARED_B"),
                    "request {i}: {b}"
                );
            }
            (true, false) => assert_eq!(rep.status, 401, "request {i}"),
            (false, _) if t == "umbrella" && !path.starts_with("/shared/") => {
                forbidden += 1;
                // an allow-list binds a keyed caller even on a public route
                assert_eq!(
                    rep.status, 403,
                    "request {i}: umbrella may only use `shared`"
                );
            }
            (false, true) => {
                // a keyed caller on a public route is that tenant
                assert_eq!(rep.status, 200);
                assert_eq!(rep.log.tenant.as_deref(), Some(t));
                assert!(
                    b.contains(&format!("auth=Bearer secret-of-CRED_{t};")),
                    "request {i} ({t}): {b}"
                );
            }
            (false, false) => {
                assert_eq!(rep.status, 200, "request {i}: {b}");
                assert_eq!(rep.log.tenant.as_deref(), Some(t));
                // fresh or cached, the body was made for this tenant's credential
                assert!(
                    b.contains(&format!("auth=Bearer secret-of-CRED_{t};")),
                    "request {i} ({t}, cache {}): {b}",
                    rep.log.cache
                );
            }
        }
        if i % 1_000 == 999 {
            h.advance(Duration::from_secs(31)); // let entries expire now and then
        }
    }
    assert!(hits > 3_000, "caching was exercised: {hits} hits");
    assert!(
        forbidden > 100 && anonymous > 100,
        "{forbidden} {anonymous}"
    );
    // every upstream request carried exactly one credential, and never a caller's key
    for a in h.requests() {
        let auths: Vec<&str> = a
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(auths.len(), 1, "{a:?}");
        assert!(auths[0].starts_with("Bearer secret-of-"), "{a:?}");
        assert!(
            !a.headers.iter().any(|(_, v)| v.contains("key-")),
            "a caller key leaked upstream: {a:?}"
        );
    }
    // cache keys are namespaced by tenant
    for k in h.kv_keys() {
        let tenant = k.split(':').next().unwrap();
        assert!(TENANTS.contains(&tenant) || tenant == "public", "{k}");
    }
}
