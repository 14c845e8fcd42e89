//! Rate-limit signals in a provider's own header names.
//!
//! [`engine::cooldown`](crate::engine::cooldown) reads a fixed list of common header names.
//! Providers differ: Jira sends its reset as an ISO 8601 timestamp, Linear prefixes its names
//! with `x-ratelimit-requests-`, GitLab sends `RateLimit-*`. A provider plugin describes its own
//! signals with a [`RateLimitSignals`] value, stored on the validated
//! [`Provider`](crate::config::Provider), and the engine reads those names instead of the
//! defaults, cooling the provider down *before* a 429 when the remaining budget is spent.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::http::Headers;
use crate::retry::parse_retry_after;
use crate::time::Instant;

/// How a rate-limit reset header expresses its time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResetFormat {
    /// An integer: epoch seconds when above 10⁹, else seconds from now (the engine's guess
    /// for unknown providers).
    #[default]
    Auto,
    /// Unix epoch seconds (GitHub, GitLab `RateLimit-Reset`).
    EpochSeconds,
    /// Unix epoch milliseconds (Linear).
    EpochMillis,
    /// Seconds from now (IETF `RateLimit` drafts).
    DeltaSeconds,
    /// An ISO 8601 / RFC 3339 timestamp (Jira Cloud).
    Iso8601,
}

impl ResetFormat {
    /// Parses `auto`, `epoch`, `epoch_ms`, `delta` or `iso8601`.
    #[must_use]
    pub fn parse(s: &str) -> Option<ResetFormat> {
        Some(match s {
            "auto" => ResetFormat::Auto,
            "epoch" | "epoch_seconds" => ResetFormat::EpochSeconds,
            "epoch_ms" | "epoch_millis" => ResetFormat::EpochMillis,
            "delta" | "delta_seconds" => ResetFormat::DeltaSeconds,
            "iso8601" | "iso" | "rfc3339" => ResetFormat::Iso8601,
            _ => return None,
        })
    }

    /// The instant a reset header value names, relative to `now`; `None` if unparseable.
    #[must_use]
    pub fn instant(self, value: &str, now: Instant) -> Option<Instant> {
        let v = value.trim();
        let t = match self {
            ResetFormat::Auto => {
                let n: u64 = v.parse().ok()?;
                if n > 1_000_000_000 {
                    Instant::from_secs(n)
                } else {
                    now + Duration::from_secs(n)
                }
            }
            ResetFormat::EpochSeconds => Instant::from_secs(v.parse().ok()?),
            ResetFormat::EpochMillis => Instant::from_millis(v.parse().ok()?),
            ResetFormat::DeltaSeconds => now + Duration::from_secs(v.parse().ok()?),
            ResetFormat::Iso8601 => parse_iso8601(v)?,
        };
        Some(t.max(now))
    }
}

/// Which headers carry a provider's rate-limit signals. Names are matched case-insensitively;
/// the first present name wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimitSignals {
    /// Headers with the remaining request budget.
    pub remaining: Vec<String>,
    /// Headers with the time the budget resets.
    pub reset: Vec<String>,
    /// How the reset header is written.
    pub reset_format: ResetFormat,
    /// Cool down when the remaining budget is at or below this, unless the provider's config
    /// sets its own `cooldown_below`.
    pub cooldown_below: Option<u64>,
}

impl RateLimitSignals {
    /// Signals from static names.
    #[must_use]
    pub fn new(
        remaining: &[&str],
        reset: &[&str],
        reset_format: ResetFormat,
        cooldown_below: Option<u64>,
    ) -> RateLimitSignals {
        RateLimitSignals {
            remaining: remaining.iter().map(|s| String::from(*s)).collect(),
            reset: reset.iter().map(|s| String::from(*s)).collect(),
            reset_format,
            cooldown_below,
        }
    }

    /// The remaining budget, if a remaining header is present and numeric.
    #[must_use]
    pub fn remaining<H: Headers + ?Sized>(&self, headers: &H) -> Option<u64> {
        self.remaining
            .iter()
            .find_map(|n| headers.header(n))
            .and_then(|v| v.trim().parse::<u64>().ok())
    }

    /// The reset instant, if a reset header is present and parseable.
    #[must_use]
    pub fn reset<H: Headers + ?Sized>(&self, headers: &H, now: Instant) -> Option<Instant> {
        self.reset
            .iter()
            .find_map(|n| headers.header(n))
            .and_then(|v| self.reset_format.instant(v, now))
    }
}

/// When a response says to stop calling the provider, reading `signals`' header names: a 429
/// (`Retry-After`, else the reset, else `default_cooldown`); a 503 with `Retry-After`; or a
/// remaining budget at or below `cooldown_below` (falling back to the signals' own floor).
/// The result is capped at `now + max_cooldown`.
#[must_use]
pub fn cooldown_with<H: Headers + ?Sized>(
    status: u16,
    headers: &H,
    signals: &RateLimitSignals,
    cooldown_below: Option<u64>,
    now: Instant,
    default_cooldown: Duration,
    max_cooldown: Duration,
) -> Option<Instant> {
    let retry_after = headers
        .header("retry-after")
        .and_then(|v| parse_retry_after(v, now));
    let until = if status == 429 {
        Some(
            retry_after
                .or_else(|| signals.reset(headers, now))
                .unwrap_or(now + default_cooldown),
        )
    } else if status == 503 && retry_after.is_some() {
        retry_after
    } else if let Some(floor) = cooldown_below.or(signals.cooldown_below) {
        match signals.remaining(headers) {
            Some(r) if r <= floor => Some(
                retry_after
                    .or_else(|| signals.reset(headers, now))
                    .unwrap_or(now + default_cooldown),
            ),
            _ => None,
        }
    } else {
        None
    };
    until.map(|u| u.min(now + max_cooldown))
}

/// Parses an ISO 8601 / RFC 3339 timestamp: `YYYY-MM-DDTHH:MM[:SS[.frac]]` followed by `Z` or
/// `±HH[:]MM` (no offset means UTC). Dates before 1970 give `None`. Never panics.
#[must_use]
pub fn parse_iso8601(s: &str) -> Option<Instant> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        core::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = u32::try_from(num(5, 2)?).ok()?;
    let day = u32::try_from(num(8, 2)?).ok()?;
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let hour = num(11, 2)?;
    let minute = num(14, 2)?;
    let mut i = 16;
    let mut second = 0;
    if b.get(i) == Some(&b':') {
        second = num(i + 1, 2)?;
        i += 3;
        if matches!(b.get(i), Some(b'.' | b',')) {
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
    }
    let offset = match b.get(i) {
        None | Some(b'Z' | b'z') => {
            if b.len() > i + 1 {
                return None;
            }
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let oh = num(i + 1, 2)?;
            let om = if b.get(i + 3) == Some(&b':') {
                num(i + 4, 2)?
            } else {
                num(i + 3, 2).unwrap_or(0)
            };
            let off = oh * 3600 + om * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = crate::httpdate::days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(secs).ok().map(Instant::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Instant = Instant::from_secs(1_700_000_000);

    #[test]
    fn iso8601_forms() {
        assert_eq!(
            parse_iso8601("2023-11-14T22:13:20Z"),
            Some(Instant::from_secs(1_700_000_000))
        );
        assert_eq!(
            parse_iso8601("2023-11-14T23:13:20.123+01:00"),
            Some(Instant::from_secs(1_700_000_000))
        );
        assert_eq!(
            parse_iso8601("2023-11-14T22:13Z"),
            Some(Instant::from_secs(1_699_999_980))
        );
        for bad in [
            "",
            "2023",
            "2023-13-01T00:00Z",
            "x023-11-14T22:13:20Z",
            "2023-11-14T22:13:20Zjunk",
            "1969-12-31T00:00:00Z",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn provider_names_cool_down_before_a_429() {
        let jira = RateLimitSignals::new(
            &["x-ratelimit-remaining"],
            &["x-ratelimit-reset"],
            ResetFormat::Iso8601,
            Some(0),
        );
        let h = [
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", "2023-11-14T22:14:20Z"),
        ];
        let until = cooldown_with(
            200,
            &h[..],
            &jira,
            None,
            NOW,
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
        assert_eq!(until, Some(NOW + Duration::from_secs(60)));
        let h = [("X-RateLimit-Remaining", "5")];
        assert_eq!(
            cooldown_with(
                200,
                &h[..],
                &jira,
                None,
                NOW,
                Duration::from_secs(1),
                Duration::from_secs(3600)
            ),
            None
        );
    }
}
