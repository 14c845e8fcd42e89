//! A compact, versioned encoding of [`State`] for hosts to persist (KV, files, Redis).
//!
//! Entries are keyed by names (route name, provider id, limiter key), not indices, so a
//! snapshot taken under one configuration restores what still applies under another: breakers
//! of routes and providers that still exist, latency of providers that still exist, limiter
//! TATs and quota usage. Decoding garbage returns an error (the host then starts fresh); it
//! never panics and never allocates more than the input can justify.

use alloc::string::String;
use alloc::vec::Vec;

use crate::breaker::State as BState;
use crate::codec::{Reader, Writer};
use crate::config::Config;
use crate::engine::{QuotaUsage, State};
use crate::time::Instant;

/// Current snapshot format version (2 adds each breaker's failure window; 1 is still read).
pub const VERSION: u8 = 2;
const MAGIC: &[u8; 4] = b"MSNP";

/// Why a snapshot did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a snapshot, or truncated, or inconsistent.
    Malformed,
    /// From a newer or older format this build does not read.
    Version(u8),
}

impl core::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SnapshotError::Malformed => f.write_str("snapshot is malformed or truncated"),
            SnapshotError::Version(v) => write!(
                f,
                "snapshot version {v} is not supported (this build reads {VERSION})"
            ),
        }
    }
}

/// Encodes the persistent part of `state` (not metrics, not the RNG).
#[must_use]
pub fn encode(config: &Config, state: &State) -> Vec<u8> {
    let mut w = Writer::with_capacity(256);
    w.bytes_raw(MAGIC);
    w.u8(VERSION);
    // providers
    w.varint(config.providers.len() as u64);
    for (i, p) in config.providers.iter().enumerate() {
        let s = &state.providers[i];
        w.str(&p.id);
        w.f64(s.stats.ewma_us);
        w.varint(s.stats.updated.as_micros());
        w.f64(s.stats.success);
        w.varint(u64::from(s.stats.samples));
        w.varint(s.cool_until.as_micros());
    }
    // routes: name, rr, then per provider: id, state, until, opens, swrr
    w.varint(config.routes.len() as u64);
    for (ri, r) in config.routes.iter().enumerate() {
        let rs = &state.routes[ri];
        w.str(&r.name);
        w.varint(rs.selection.rr);
        w.varint(r.providers.len() as u64);
        for (slot, &p) in r.providers.iter().enumerate() {
            w.str(&config.providers[p].id);
            let b = &rs.breakers[slot];
            let (tag, until) = match b.state() {
                BState::Closed => (0, 0),
                BState::Open { until } => (1, until.as_micros()),
                BState::HalfOpen { .. } => (2, 0),
            };
            w.u8(tag);
            w.varint(until);
            w.varint(u64::from(b.consecutive_opens()));
            let cw = rs.selection.swrr.get(slot).copied().unwrap_or(0);
            w.varint(zigzag(cw));
            let results = b.window_results();
            w.varint(results.len() as u64);
            w.bytes_raw(&results);
            let buckets = b.window_buckets();
            w.varint(buckets.len() as u64);
            for (second, calls, failures, slow) in buckets {
                w.varint(second);
                w.varint(u64::from(calls));
                w.varint(u64::from(failures));
                w.varint(u64::from(slow));
            }
        }
    }
    // limiters
    w.varint(state.limiters.len() as u64);
    for (k, tat) in &state.limiters {
        w.str(k);
        w.varint(tat.as_micros());
    }
    // quotas
    w.varint(state.quotas.len() as u64);
    for (k, q) in &state.quotas {
        w.str(k);
        w.varint(q.day);
        w.varint(q.requests);
        w.f64(q.cost);
    }
    w.finish()
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn count(r: &mut Reader<'_>, left: usize) -> Result<usize, SnapshotError> {
    let n = usize::try_from(r.varint().ok_or(SnapshotError::Malformed)?)
        .map_err(|_| SnapshotError::Malformed)?;
    if n > left {
        return Err(SnapshotError::Malformed);
    }
    Ok(n)
}

/// Restores a snapshot into `state` (built for `config`). Names that no longer exist are
/// skipped. On error `state` is left unchanged.
///
/// # Errors
/// [`SnapshotError`] when the bytes are not a whole snapshot of a known version.
pub fn decode_into(config: &Config, state: &mut State, bytes: &[u8]) -> Result<(), SnapshotError> {
    let mut next = state.clone();
    let m = SnapshotError::Malformed;
    let mut r = Reader::new(bytes);
    if r.take(4).ok_or(m)? != MAGIC {
        return Err(m);
    }
    let v = r.u8().ok_or(m)?;
    if v != VERSION && v != 1 {
        return Err(SnapshotError::Version(v));
    }
    let n = count(&mut r, bytes.len())?;
    for _ in 0..n {
        let id = r.str().ok_or(m)?;
        let ewma = r.f64().ok_or(m)?;
        let updated = r.varint().ok_or(m)?;
        let success = r.f64().ok_or(m)?;
        let samples = u32::try_from(r.varint().ok_or(m)?).map_err(|_| m)?;
        let cool = r.varint().ok_or(m)?;
        if !(ewma.is_finite()
            && ewma >= 0.0
            && success.is_finite()
            && (0.0..=1.0).contains(&success))
        {
            return Err(m);
        }
        if let Some(i) = config.provider_index(&id) {
            let p = &mut next.providers[i];
            p.stats.ewma_us = ewma;
            p.stats.updated = Instant::from_micros(updated);
            p.stats.success = success;
            p.stats.samples = samples;
            p.cool_until = Instant::from_micros(cool);
        }
    }
    let n = count(&mut r, bytes.len())?;
    for _ in 0..n {
        let name = r.str().ok_or(m)?;
        let rr = r.varint().ok_or(m)?;
        let k = count(&mut r, bytes.len())?;
        let ri = config.route_index(&name);
        if let Some(ri) = ri {
            next.routes[ri].selection.rr = rr;
        }
        for _ in 0..k {
            let pid = r.str().ok_or(m)?;
            let tag = r.u8().ok_or(m)?;
            let until = r.varint().ok_or(m)?;
            let opens = u32::try_from(r.varint().ok_or(m)?).map_err(|_| m)?;
            let cw = unzigzag(r.varint().ok_or(m)?);
            let mut results: &[u8] = &[];
            let mut buckets = Vec::new();
            if v >= 2 {
                let n = count(&mut r, bytes.len())?;
                results = r.take(n).ok_or(m)?;
                let n = count(&mut r, bytes.len())?;
                for _ in 0..n {
                    let second = r.varint().ok_or(m)?;
                    let mut field = || u32::try_from(r.varint().ok_or(m)?).map_err(|_| m);
                    buckets.push((second, field()?, field()?, field()?));
                }
            }
            let st = match tag {
                0 => BState::Closed,
                1 => BState::Open {
                    until: Instant::from_micros(until),
                },
                2 => BState::HalfOpen {
                    in_flight: 0,
                    successes: 0,
                },
                _ => return Err(m),
            };
            let Some(ri) = ri else { continue };
            let route = &config.routes[ri];
            let Some(slot) = config
                .provider_index(&pid)
                .and_then(|p| route.providers.iter().position(|&x| x == p))
            else {
                continue;
            };
            next.routes[ri].breakers[slot].restore(st, opens);
            next.routes[ri].breakers[slot].restore_window(results, &buckets);
            let sw = &mut next.routes[ri].selection.swrr;
            if sw.len() != route.providers.len() {
                *sw = alloc::vec![0; route.providers.len()];
            }
            sw[slot] = cw;
        }
    }
    let n = count(&mut r, bytes.len())?;
    for _ in 0..n {
        let k = r.str().ok_or(m)?;
        let tat = r.varint().ok_or(m)?;
        next.limiters.insert(k, Instant::from_micros(tat));
    }
    let n = count(&mut r, bytes.len())?;
    for _ in 0..n {
        let k: String = r.str().ok_or(m)?;
        let day = r.varint().ok_or(m)?;
        let requests = r.varint().ok_or(m)?;
        let cost = r.f64().ok_or(m)?;
        if !(cost.is_finite() && cost >= 0.0) {
            return Err(m);
        }
        next.quotas.insert(
            k,
            QuotaUsage {
                day,
                requests,
                cost,
            },
        );
    }
    if !r.is_empty() {
        return Err(m);
    }
    *state = next;
    Ok(())
}

/// Carries state over a configuration change (reload): what still applies is kept.
#[must_use]
pub fn carry_over(old_config: &Config, old: &State, new_config: &Config, seed: u64) -> State {
    let mut fresh = State::new(new_config, seed);
    let bytes = encode(old_config, old);
    // our own encoding always decodes; if it somehow did not, start fresh
    let _ = decode_into(new_config, &mut fresh, &bytes);
    fresh.metrics = old.metrics.clone();
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::CallResult;

    const FAIL: CallResult = CallResult {
        failure: true,
        slow: false,
    };

    fn config(window: &str) -> Config {
        let text = alloc::format!(
            "[[providers]]\nid = \"a\"\nbase_url = \"https://a.example\"\n\
             [[routes]]\nname = \"r\"\nmatch = {{ path = \"/{{*rest}}\" }}\nproviders = [\"a\"]\n\
             breaker = {{ window = \"{window}\", size = 4, min_calls = 2, failure_rate = 0.5 }}\n"
        );
        let raw: crate::RawConfig = toml::from_str(&text).unwrap();
        raw.validate().unwrap()
    }

    /// A host with a fresh instance per request (Spin) restores state before every request: a
    /// failure counted by one request must still count in the next, or the breaker never opens.
    #[test]
    fn breaker_failure_windows_survive_a_round_trip() {
        for window in ["count", "time"] {
            let config = config(window);
            let policy = &config.routes[0].breaker;
            let mut st = State::new(&config, 1);
            st.routes[0].breakers[0].record(policy, FAIL, false, Instant::from_secs(100));
            let mut next = State::new(&config, 2);
            decode_into(&config, &mut next, &encode(&config, &st)).unwrap();
            assert_eq!(next.routes[0].breakers[0].state().name(), "closed");
            next.routes[0].breakers[0].record(policy, FAIL, false, Instant::from_secs(101));
            assert_eq!(
                next.routes[0].breakers[0].state().name(),
                "open",
                "{window} window: the second failure opens the restored breaker"
            );
        }
    }

    #[test]
    fn version_1_snapshots_without_windows_still_decode() {
        let config = config("count");
        let st = State::new(&config, 1);
        let mut v1 = encode(&config, &st);
        v1[4] = 1;
        // drop the window fields of the single breaker (two zero counts), which the limiter
        // and quota counts (two zeros) follow
        let n = v1.len();
        v1.drain(n - 4..n - 2);
        let mut fresh = State::new(&config, 2);
        decode_into(&config, &mut fresh, &v1).unwrap();
    }
}
