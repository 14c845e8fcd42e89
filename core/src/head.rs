//! Request-head checks every host applies before anything else: header count and size caps,
//! request smuggling (conflicting `Content-Length` / `Transfer-Encoding`), malformed names and
//! values, and absolute-form or ambiguous `Host`.
//!
//! HTTP libraries reject much of this already (hyper refuses a request with both
//! `Content-Length` and `Transfer-Encoding`); the check here makes the rule explicit, the same on
//! every host, and testable without a socket.

use alloc::format;

use crate::http::Headers;
use crate::problem::{Problem, ProblemKind};

/// Caps on a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Most headers.
    pub max_headers: usize,
    /// Most bytes in all names and values together (plus 4 per header for `: ` and CRLF).
    pub max_header_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_headers: 100,
            max_header_bytes: 32 << 10,
        }
    }
}

/// Bytes allowed in a header name (an RFC 9110 token), by value.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

fn token_char(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Whether `name` is a valid header name: a non-empty RFC 9110 token.
#[must_use]
pub fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(token_char)
}

/// Whether a value holds CR, LF or NUL.
fn has_line_break_or_nul(v: &str) -> bool {
    any_control(v.as_bytes(), |b| b == b'\r' || b == b'\n' || b == 0)
}

/// Whether `v` can be sent as a header value as it is: tab, space, visible ASCII and
/// obs-text (RFC 9110 §5.5), so no CR, LF, NUL, other control or DEL.
#[must_use]
pub fn is_field_value(v: &str) -> bool {
    !any_control(v.as_bytes(), |b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Whether a byte of `v` is `bad`, for a `bad` that holds only for controls (below 0x20) and
/// DEL. Eight bytes at a time (the last word overlapping the one before it): a word with no
/// control and no DEL, which is nearly every word, costs a few arithmetic steps, and only one
/// that has one is looked at byte by byte. Header values are mostly shorter than the 32 bytes
/// at which a vectorised byte loop starts to pay, so this is what they get (callgrind: about a
/// third fewer instructions per proxied request for these scans).
fn any_control(v: &[u8], bad: impl Fn(u8) -> bool) -> bool {
    if v.len() < 8 {
        return v.iter().any(|&b| bad(b));
    }
    let mut at = 0;
    while at + 8 <= v.len() {
        if may_hold_control(v, at) && v[at..at + 8].iter().any(|&b| bad(b)) {
            return true;
        }
        at += 8;
    }
    let last = v.len() - 8;
    at < v.len() && may_hold_control(v, last) && v[last..].iter().any(|&b| bad(b))
}

/// Whether the eight bytes of `v` at `at` may hold a control (below 0x20) or DEL: never
/// wrong when it says no.
#[inline(always)]
fn may_hold_control(v: &[u8], at: usize) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut w = [0u8; 8];
    w.copy_from_slice(&v[at..at + 8]);
    let x = u64::from_le_bytes(w);
    // a byte below 0x20 (exact as a whole for any bound up to 0x80), or one equal to 0x7f
    let below = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let d = x ^ (ONES * 0x7f);
    let del = d.wrapping_sub(ONES) & !d & HIGH;
    below | del != 0
}

/// The body framing a checked head declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Checks a request head. `headers` are as received (names in any case).
///
/// # Errors
/// 431 when over the caps, 400 `bad-request` for smuggling attempts and malformed headers.
// always inlined: the native server's connection loop calls it for every request, and an
// outlined copy costs it about 300 instructions per request (callgrind)
#[inline(always)]
pub fn check_head(
    headers: &[(impl AsRef<str>, impl AsRef<str>)],
    limits: &HeadLimits,
) -> Result<Framing, Problem> {
    if headers.len() > limits.max_headers {
        return Err(Problem::new(
            ProblemKind::HeadersTooLarge,
            format!(
                "{} headers; at most {} are accepted",
                headers.len(),
                limits.max_headers
            ),
        ));
    }
    let size: usize = headers
        .iter()
        .map(|(n, v)| n.as_ref().len() + v.as_ref().len() + 4)
        .sum();
    if size > limits.max_header_bytes {
        return Err(Problem::new(
            ProblemKind::HeadersTooLarge,
            format!(
                "request headers are {size} bytes; at most {} are accepted",
                limits.max_header_bytes
            ),
        ));
    }
    let bad = |d: &str| Err(Problem::new(ProblemKind::BadRequest, d));
    for (n, v) in headers {
        let (n, v) = (n.as_ref(), v.as_ref());
        if !is_token(n) {
            return bad("a header name is empty or contains characters outside the HTTP token set");
        }
        if has_line_break_or_nul(v) {
            return bad("a header value contains CR, LF or NUL");
        }
    }
    let cl: alloc::vec::Vec<&str> = headers.header_all("content-length").collect();
    let te: alloc::vec::Vec<&str> = headers.header_all("transfer-encoding").collect();
    if !cl.is_empty() && !te.is_empty() {
        return bad("both Content-Length and Transfer-Encoding are present (request smuggling)");
    }
    if headers.header_all("host").count() > 1 {
        return bad("more than one Host header");
    }
    if let Some(h) = headers.header("host") {
        if h.is_empty()
            || h.bytes()
                .any(|b| matches!(b, b'/' | b'@' | b'\\' | b' ' | b'?' | b'#'))
        {
            return bad("the Host header is not a plain host[:port]");
        }
    }
    if !te.is_empty() {
        // only a single, final `chunked` is accepted
        let mut codings = te.iter().flat_map(|v| v.split(',')).map(str::trim);
        let all: alloc::vec::Vec<&str> = codings.by_ref().collect();
        return if all.len() == 1 && all[0].eq_ignore_ascii_case("chunked") {
            Ok(Framing::Chunked)
        } else {
            bad("Transfer-Encoding other than a single `chunked` is not accepted")
        };
    }
    if cl.is_empty() {
        return Ok(Framing::None);
    }
    // several Content-Length values (or a list) must all agree and be plain digits
    let mut value: Option<u64> = None;
    for part in cl.iter().flat_map(|v| v.split(',')).map(str::trim) {
        if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return bad("Content-Length is not a decimal number");
        }
        let n: u64 = part
            .parse()
            .map_err(|_| Problem::new(ProblemKind::BadRequest, "Content-Length is out of range"))?;
        match value {
            Some(prev) if prev != n => {
                return bad("conflicting Content-Length values (request smuggling)")
            }
            _ => value = Some(n),
        }
    }
    Ok(value.map_or(Framing::None, Framing::Length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(h: &[(&str, &str)]) -> Result<Framing, ProblemKind> {
        check_head(h, &HeadLimits::default()).map_err(|p| p.kind)
    }

    /// The word-at-a-time scans agree with the byte-by-byte definitions for every byte value
    /// at every position of values of every length up to 40 bytes (short values, whole words,
    /// overlapping last words), in values of plain text and of obs-text.
    #[test]
    fn control_scans_match_the_bytewise_definitions() {
        let field = |v: &[u8]| v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        let breaks = |v: &[u8]| v.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0);
        let mut checked = 0u32;
        for fill in [b'a', 0xc3] {
            for len in 0..=40usize {
                for at in 0..len {
                    for b in 0..=255u8 {
                        let mut v = alloc::vec![fill; len];
                        v[at] = b;
                        if fill == 0xc3 {
                            // keep it UTF-8: pairs of C3 A9 ("é") around the probe
                            for (i, x) in v.iter_mut().enumerate() {
                                if i != at {
                                    *x = if i % 2 == 0 { 0xc3 } else { 0xa9 };
                                }
                            }
                        }
                        let Ok(s) = core::str::from_utf8(&v) else {
                            continue;
                        };
                        assert_eq!(is_field_value(s), field(&v), "{v:?}");
                        assert_eq!(has_line_break_or_nul(s), breaks(&v), "{v:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
        assert!(is_field_value("") && !has_line_break_or_nul(""));
        assert!(is_field_value("a\tb c~\u{e9}"));
        assert!(!is_field_value("0123456789\x7f"));
    }

    #[test]
    fn smuggling_corpus_is_refused() {
        use ProblemKind::BadRequest as B;
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<Framing, ProblemKind>);
        let cases: &[Case<'_>] = &[
            (&[("content-length", "5")], Ok(Framing::Length(5))),
            (
                &[("Content-Length", "5"), ("content-length", "5")],
                Ok(Framing::Length(5)),
            ),
            (&[("transfer-encoding", "chunked")], Ok(Framing::Chunked)),
            (&[], Ok(Framing::None)),
            (
                &[("content-length", "5"), ("transfer-encoding", "chunked")],
                Err(B),
            ),
            (&[("Content-Length", "5"), ("Content-Length", "6")], Err(B)),
            (&[("content-length", "5, 6")], Err(B)),
            (&[("content-length", "+5")], Err(B)),
            (&[("content-length", "-1")], Err(B)),
            (&[("content-length", "0x10")], Err(B)),
            (&[("content-length", "99999999999999999999")], Err(B)),
            (&[("transfer-encoding", "gzip, chunked")], Err(B)),
            (
                &[
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
                Err(B),
            ),
            (&[("transfer-encoding", "xchunked")], Err(B)),
            (&[("transfer-encoding", " chunked")], Ok(Framing::Chunked)),
            (&[("transfer-encoding ", "chunked")], Err(B)),
            (&[("x-a", "b\r\nX-Injected: 1")], Err(B)),
            (&[("x-a", "b\nc")], Err(B)),
            (&[("x-a", "b\rc")], Err(B)),
            (&[("x-a", "nul\0")], Err(B)),
            (&[("x-a", "tab\tand obs-text \u{e9}")], Ok(Framing::None)),
            (&[("!#$%&'*+-.^_`|~09azAZ", "v")], Ok(Framing::None)),
            (&[("x(a)", "v")], Err(B)),
            (&[("x:a", "v")], Err(B)),
            (&[("x\u{e9}", "v")], Err(B)),
            (&[("x a", "b")], Err(B)),
            (&[("host", "a.example"), ("Host", "b.example")], Err(B)),
            (&[("host", "evil.com/x")], Err(B)),
            (&[("host", "user@evil.com")], Err(B)),
            (&[("host", "a.example:8080")], Ok(Framing::None)),
        ];
        for (h, want) in cases {
            assert_eq!(check(h), *want, "{h:?}");
        }
    }

    #[test]
    fn caps_answer_431() {
        let many: alloc::vec::Vec<(alloc::string::String, &str)> =
            (0..101).map(|i| (format!("x-{i}"), "v")).collect();
        assert_eq!(
            check_head(&many, &HeadLimits::default()).map_err(|p| p.status()),
            Err(431)
        );
        let big = [("x-big", "v".repeat(40_000))];
        let big: alloc::vec::Vec<(&str, &str)> =
            big.iter().map(|(a, b)| (*a, b.as_str())).collect();
        assert_eq!(
            check_head(&big, &HeadLimits::default()).map_err(|p| p.status()),
            Err(431)
        );
    }
}
