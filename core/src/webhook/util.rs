//! Small parsing helpers shared by the schemes. Every function here takes untrusted input and
//! must never panic: no indexing that can go out of bounds, no unchecked arithmetic.

use alloc::borrow::Cow;
use core::time::Duration;

use crate::http::Headers;
use crate::time::{duration_micros, Instant};

use super::Rejection;

/// The first value of header `name`, trimmed of ASCII whitespace; `None` if absent or empty.
pub(crate) fn header<'h, H: Headers + ?Sized>(headers: &'h H, name: &str) -> Option<&'h str> {
    headers
        .header(name)
        .map(|v| v.trim_matches(|c: char| c.is_ascii_whitespace()))
        .filter(|v| !v.is_empty())
}

/// Decodes exactly `out.len()` bytes of **lowercase** hex. Uppercase is refused on purpose: every
/// provider we know sends lowercase, and accepting one spelling only means any change to a
/// signature's bytes changes what it decodes to.
pub(crate) fn decode_hex_lower(s: &str, out: &mut [u8]) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() != out.len().saturating_mul(2) {
        return false;
    }
    for (pair, slot) in bytes.chunks_exact(2).zip(out.iter_mut()) {
        match (hex_nibble(pair[0]), hex_nibble(pair[1])) {
            (Some(hi), Some(lo)) => *slot = (hi << 4) | lo,
            _ => return false,
        }
    }
    true
}

fn hex_nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Parses a non-empty run of ASCII digits (no sign, no spaces) of at most `max_digits` digits.
pub(crate) fn parse_digits(s: &str, max_digits: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Unix seconds carry at most 12 digits (good until the year 33658).
pub(crate) const MAX_SECS_DIGITS: usize = 12;

/// Reads an integer Unix-seconds timestamp from a header.
pub(crate) fn header_timestamp<'h, H: Headers + ?Sized>(
    headers: &'h H,
    name: &'static str,
) -> Result<(&'h str, Instant), Rejection> {
    let raw = header(headers, name).ok_or(Rejection::MissingTimestamp {
        field: Cow::Borrowed(name),
    })?;
    let secs = parse_digits(raw, MAX_SECS_DIGITS).ok_or(Rejection::MalformedTimestamp {
        field: Cow::Borrowed(name),
        reason: "expected integer Unix seconds",
    })?;
    Ok((raw, Instant::from_secs(secs)))
}

/// Checks a signed timestamp against `now`: at most `tolerance` in the past and at most
/// `tolerance` in the future.
pub(crate) fn check_window(
    signed: Instant,
    now: Instant,
    tolerance: Duration,
) -> Result<(), Rejection> {
    let tol = duration_micros(tolerance);
    let tolerance_secs = tolerance.as_secs();
    if now >= signed {
        let age = now.as_micros() - signed.as_micros();
        if age > tol {
            return Err(Rejection::StaleTimestamp {
                age_secs: age / 1_000_000,
                tolerance_secs,
            });
        }
    } else {
        let ahead = signed.as_micros() - now.as_micros();
        if ahead > tol {
            return Err(Rejection::FutureTimestamp {
                ahead_secs: ahead / 1_000_000,
                tolerance_secs,
            });
        }
    }
    Ok(())
}

/// Splits a request target into its query part: `/path?q` → `q`; a bare `q` or `?q` is taken
/// as the query itself.
pub(crate) fn query_of(target: &str) -> &str {
    if target.starts_with('/') || target.starts_with("http://") || target.starts_with("https://") {
        target.split_once('?').map_or("", |(_, q)| q)
    } else {
        target.strip_prefix('?').unwrap_or(target)
    }
    .split('#')
    .next()
    .unwrap_or("")
}

/// Percent-decodes a query component (`+` is a space). `None` on a bad escape.
pub(crate) fn percent_decode(s: &str) -> Option<alloc::vec::Vec<u8>> {
    crate::target::percent_decode_bytes(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_strict_lowercase_and_exact_length() {
        let mut out = [0u8; 2];
        assert!(decode_hex_lower("0aff", &mut out));
        assert_eq!(out, [0x0a, 0xff]);
        assert!(!decode_hex_lower("0AFF", &mut out));
        assert!(!decode_hex_lower("0af", &mut out));
        assert!(!decode_hex_lower("0aff00", &mut out));
        assert!(!decode_hex_lower("0g00", &mut out));
        assert!(!decode_hex_lower("é0", &mut out));
    }

    #[test]
    fn digits_only() {
        assert_eq!(parse_digits("123", 12), Some(123));
        assert_eq!(parse_digits("+123", 12), None);
        assert_eq!(parse_digits("", 12), None);
        assert_eq!(parse_digits("1234567890123", 12), None);
        assert_eq!(parse_digits("12 3", 12), None);
    }

    #[test]
    fn window_is_symmetric_and_inclusive() {
        let tol = Duration::from_secs(300);
        let now = Instant::from_secs(10_000);
        assert!(check_window(Instant::from_secs(9_700), now, tol).is_ok());
        assert!(check_window(Instant::from_secs(10_300), now, tol).is_ok());
        assert_eq!(
            check_window(Instant::from_secs(9_699), now, tol).map_err(|r| r.code()),
            Err("stale-timestamp")
        );
        assert_eq!(
            check_window(Instant::from_secs(10_301), now, tol).map_err(|r| r.code()),
            Err("future-timestamp")
        );
    }

    #[test]
    fn query_extraction_and_decoding() {
        assert_eq!(query_of("/hooks/a?token=x&b=1"), "token=x&b=1");
        assert_eq!(query_of("/hooks/a"), "");
        assert_eq!(query_of("?token=x"), "token=x");
        assert_eq!(query_of("token=x#frag"), "token=x");
        assert_eq!(percent_decode("a%2Fb+c").as_deref(), Some(&b"a/b c"[..]));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
    }
}
