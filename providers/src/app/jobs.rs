//! Work that follows an answer: webhook deliveries and stale-while-revalidate refreshes.
//!
//! The application returns them as [`Job`]s; a host runs each with [`run_job`] in its own
//! background mechanism, within the [`Window`] its platform allows. The outcome is a log line
//! (and the state the host persists as after any request).

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use mosaic_core::driver::{self, ReplyBody};
use mosaic_core::engine::{Request, Router};
use mosaic_core::http::{HeaderList, Method};
use mosaic_core::region::Locality;
use mosaic_core::rng::Rng;
use mosaic_core::target::path_of;
use mosaic_core::time::Instant;
use serde_json::Value;

use super::{access_line, AppHost};
use crate::hooks::{deliver, Delivered, Delivery, DeliveryPolicy};

/// A stale-while-revalidate refresh: the request to send again, owned.
#[derive(Clone, Debug)]
pub struct Revalidate {
    /// The cache key it renews (claimed with [`AppHost::claim_refresh`]).
    pub key: String,
    /// Method.
    pub method: Method,
    /// Host name.
    pub host: Option<String>,
    /// Target.
    pub target: String,
    /// Headers.
    pub headers: HeaderList,
    /// Caller's address.
    pub client_ip: Option<String>,
    /// Caller used TLS.
    pub https: bool,
    /// Caller's place.
    pub locality: Locality,
    /// The request body, sent again.
    pub body: alloc::vec::Vec<u8>,
}

/// Work to run after answering.
#[derive(Clone, Debug)]
pub enum Job {
    /// Forward one accepted webhook delivery (it is in the outbox already: a host that cannot
    /// run it loses nothing, the outbox scan resumes it).
    Deliver {
        /// The delivery.
        delivery: Delivery,
        /// Why it runs now, for the log.
        why: &'static str,
    },
    /// Refresh a cache entry served stale.
    Revalidate(Revalidate),
}

/// How long background work may run on a platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// As long as it takes (native tasks).
    Unbounded,
    /// Until this instant (Workers stops `waitUntil` work 30 s after the response): a retry
    /// due later is parked in the outbox for the cron.
    Until(Instant),
    /// One quick attempt ending by this instant (Spin, before or right after answering); what
    /// fails stays pending with its next attempt time.
    Once(Instant),
}

/// Runs one job; returns the log line of its outcome. `seed` seeds the delivery jitter (from
/// the host's entropy).
pub async fn run_job<H: AppHost>(
    host: &H,
    router: &Router,
    job: Job,
    window: Window,
    seed: u64,
) -> Value {
    match job {
        Job::Deliver { delivery, why } => {
            run_delivery(host, router, delivery, why, window, seed).await
        }
        Job::Revalidate(r) => {
            let key = r.key.clone();
            if !host.claim_refresh(&key).await {
                let mut line = super::event("debug", "mosaic::cache", "refresh already running");
                line["key_bytes"] = Value::from(key.len());
                return line;
            }
            let request = Request {
                method: r.method,
                host: r.host.as_deref(),
                target: &r.target,
                headers: &r.headers,
                client_ip: r.client_ip.as_deref(),
                https: r.https,
                locality: r.locality.clone(),
                id: "",
            };
            let max_cache_body =
                usize::try_from(router.config.server.max_cache_body_bytes).unwrap_or(usize::MAX);
            let sent = super::Sent {
                host,
                body: &r.body,
            };
            let reply = driver::refresh(&sent, router, &request, max_cache_body).await;
            // read a streamed body to its end (it was stored, or is not wanted): the
            // connection goes back to its pool
            if let ReplyBody::Stream(b) = reply.body {
                let _ = host.read_body(b, usize::MAX).await;
            }
            host.release_refresh(&key).await;
            access_line(&reply.log, r.method.as_str(), path_of(&r.target), true)
        }
    }
}

async fn run_delivery<H: AppHost>(
    host: &H,
    router: &Router,
    d: Delivery,
    why: &str,
    window: Window,
    seed: u64,
) -> Value {
    let started = host.now();
    let defaults = DeliveryPolicy::default();
    let (policy, until) = match window {
        Window::Unbounded => (defaults, None),
        Window::Until(t) => (defaults, Some(t)),
        Window::Once(end) => (
            DeliveryPolicy {
                timeout: end.saturating_since(started).min(defaults.timeout),
                ..defaults
            },
            Some(started),
        ),
    };
    let mut rng = Rng::seed(seed);
    let (outcome, d) = deliver(host, router, &policy, d, &mut rng, until).await;
    let (name, at, message) = match outcome {
        Delivered::Done => ("delivered", None, String::from("webhook event delivered")),
        Delivered::DeadLettered => (
            "dead-lettered",
            None,
            String::from("webhook event dead-lettered: list it with GET /_mosaic/hooks/dead, replay it with POST /_mosaic/hooks/dead/{id}/replay"),
        ),
        Delivered::Parked { at } => (
            "parked",
            Some(at),
            String::from("webhook event parked in the outbox; the outbox scan resumes it"),
        ),
    };
    let elapsed: Duration = host.now().saturating_since(started);
    let mut line = super::event("info", "mosaic::hooks", &format!("{message} ({why})"));
    if let Some(o) = line.as_object_mut() {
        o.insert("delivery".into(), d.id().into());
        o.insert("endpoint".into(), d.endpoint.clone().into());
        o.insert("event_id".into(), d.event_id.clone().into());
        o.insert("destination".into(), d.dest.into());
        o.insert("url".into(), redact(&d.url).into());
        o.insert("outcome".into(), name.into());
        o.insert("attempts".into(), d.attempts.into());
        o.insert(
            "last_error".into(),
            d.last_error.clone().unwrap_or_default().into(),
        );
        o.insert(
            "next_attempt_at".into(),
            at.map_or(0, super::unix_secs).into(),
        );
        o.insert("elapsed_ms".into(), (elapsed.as_secs_f64() * 1000.0).into());
    }
    line
}

/// A URL without its query or fragment (which may carry a token).
#[must_use]
pub fn redact(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn urls_are_logged_without_query() {
        assert_eq!(redact("https://x.test/a?token=s#f"), "https://x.test/a");
    }
}
