//! Counters and histograms, rendered as Prometheus text by [`render`].
//!
//! Labels are route names, provider ids, tenant names and status classes only — never
//! anything a caller controls freely or a secret.

use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;

use crate::config::Config;
use crate::engine::State;

pub use crate::counters::{Histogram, Metrics, BUCKETS_MS};

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every metric as Prometheus text exposition format 0.0.4.
#[must_use]
pub fn render(config: &Config, state: &State) -> String {
    let m = &state.metrics;
    let mut o = String::new();
    let _ = writeln!(o, "# HELP mosaic_requests_total Requests answered, by route and status class.\n# TYPE mosaic_requests_total counter");
    for (r, classes) in &m.requests {
        for (c, v) in classes {
            let _ = writeln!(
                o,
                "mosaic_requests_total{{route=\"{}\",status=\"{c}\"}} {v}",
                esc(r)
            );
        }
    }
    let _ = writeln!(o, "# HELP mosaic_attempts_total Upstream attempts, by route, provider and outcome.\n# TYPE mosaic_attempts_total counter");
    for (r, providers) in &m.attempts {
        for (p, outcomes) in providers {
            for (out, v) in outcomes {
                let _ = writeln!(
                    o,
                    "mosaic_attempts_total{{route=\"{}\",provider=\"{}\",outcome=\"{out}\"}} {v}",
                    esc(r),
                    esc(p),
                );
            }
        }
    }
    let _ = writeln!(
        o,
        "# HELP mosaic_retries_total Retries, by route.\n# TYPE mosaic_retries_total counter"
    );
    for (r, v) in &m.retries {
        let _ = writeln!(o, "mosaic_retries_total{{route=\"{}\"}} {v}", esc(r));
    }
    let _ = writeln!(o, "# HELP mosaic_cache_total Cache lookups, by route and result.\n# TYPE mosaic_cache_total counter");
    for (r, results) in &m.cache {
        for (res, v) in results {
            let _ = writeln!(
                o,
                "mosaic_cache_total{{route=\"{}\",result=\"{res}\"}} {v}",
                esc(r)
            );
        }
    }
    let _ = writeln!(o, "# HELP mosaic_rate_limited_total Requests refused by rate limits or quotas, by tenant.\n# TYPE mosaic_rate_limited_total counter");
    for (t, v) in &m.rate_limited {
        let _ = writeln!(o, "mosaic_rate_limited_total{{tenant=\"{}\"}} {v}", esc(t));
    }
    let _ = writeln!(o, "# HELP mosaic_webhooks_total Webhook deliveries, by endpoint and result.\n# TYPE mosaic_webhooks_total counter");
    for ((e, res), v) in &m.webhooks {
        let _ = writeln!(
            o,
            "mosaic_webhooks_total{{endpoint=\"{}\",result=\"{res}\"}} {v}",
            esc(e)
        );
    }
    let _ = writeln!(o, "# HELP mosaic_breaker_state Circuit state by route and provider (0 closed, 1 half-open, 2 open).\n# TYPE mosaic_breaker_state gauge");
    for (ri, route) in config.routes.iter().enumerate() {
        for (slot, &p) in route.providers.iter().enumerate() {
            let Some(b) = state.routes.get(ri).and_then(|r| r.breakers.get(slot)) else {
                continue;
            };
            let v = match b.state() {
                crate::breaker::State::Closed => 0,
                crate::breaker::State::HalfOpen { .. } => 1,
                crate::breaker::State::Open { .. } => 2,
            };
            let _ = writeln!(
                o,
                "mosaic_breaker_state{{route=\"{}\",provider=\"{}\"}} {v}",
                esc(&route.name),
                esc(&config.providers[p].id)
            );
        }
    }
    let _ = writeln!(o, "# HELP mosaic_upstream_latency_seconds Upstream attempt latency, by provider.\n# TYPE mosaic_upstream_latency_seconds histogram");
    for (p, h) in &m.latency {
        let mut cum = 0;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            cum += h.counts[i];
            let _ = writeln!(
                o,
                "mosaic_upstream_latency_seconds_bucket{{provider=\"{}\",le=\"{}\"}} {cum}",
                esc(p),
                format_secs(*b)
            );
        }
        cum += h.counts[BUCKETS_MS.len()];
        let _ = writeln!(
            o,
            "mosaic_upstream_latency_seconds_bucket{{provider=\"{}\",le=\"+Inf\"}} {cum}",
            esc(p)
        );
        let _ = writeln!(
            o,
            "mosaic_upstream_latency_seconds_sum{{provider=\"{}\"}} {}",
            esc(p),
            h.sum_us as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "mosaic_upstream_latency_seconds_count{{provider=\"{}\"}} {cum}",
            esc(p)
        );
    }
    o
}

fn format_secs(ms: u64) -> String {
    format!("{}", ms as f64 / 1000.0)
}
