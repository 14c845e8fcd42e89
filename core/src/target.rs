//! Request targets: what a caller may put in a path, and how the upstream URL is built.
//!
//! The upstream URL is built only from a configured provider's base URL plus a path that has
//! been checked here, so a caller can never change scheme, host or port: absolute-form targets,
//! `//host`, `@`, backslashes, dot segments (plain or percent-encoded), encoded slashes and
//! control characters are all refused before routing.

use alloc::string::String;
use alloc::vec::Vec;

/// Why a request target was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// Not origin-form (does not start with a single `/`), e.g. `http://x/` or `//host/`.
    NotOriginForm,
    /// An empty segment (`//`) inside the path.
    EmptySegment,
    /// A `.` or `..` segment, plain or percent-encoded.
    DotSegment,
    /// A percent-encoded `/`, `\` or `.`-segment trick, or malformed percent-encoding.
    EncodedDelimiter,
    /// A backslash, `@`, control character, space or non-ASCII byte.
    ForbiddenCharacter,
    /// The target is longer than 8 KiB.
    TooLong,
}

impl TargetError {
    /// A short description for problem+json `detail`.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            TargetError::NotOriginForm => {
                "the request target must be a path starting with a single '/'"
            }
            TargetError::EmptySegment => "the path contains an empty segment ('//')",
            TargetError::DotSegment => "the path contains a '.' or '..' segment",
            TargetError::EncodedDelimiter => {
                "the path contains an encoded '/', '\\' or '.', or malformed percent-encoding"
            }
            TargetError::ForbiddenCharacter => {
                "the path contains a forbidden character ('\\', '@', space, control or non-ASCII)"
            }
            TargetError::TooLong => "the request target is longer than 8192 bytes",
        }
    }
}

/// A checked origin-form target split into path and query (borrowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The path, starting with `/`.
    pub path: &'a str,
    /// The query without `?`, if any.
    pub query: Option<&'a str>,
}

/// The path of a request target: everything before the first `?`.
#[must_use]
pub fn path_of(target: &str) -> &str {
    match target.bytes().position(|b| b == b'?') {
        Some(i) => &target[..i],
        None => target,
    }
}

/// Checks a raw request target (`/path?query`).
///
/// # Errors
/// The first rule the target breaks.
pub fn parse_target(raw: &str) -> Result<Target<'_>, TargetError> {
    if raw.len() > 8192 {
        return Err(TargetError::TooLong);
    }
    // a byte loop, not `split_once`: targets are short, and memchr's setup costs more here
    let before_fragment = match raw.bytes().position(|b| b == b'#') {
        Some(i) => &raw[..i],
        None => raw,
    };
    let path = path_of(before_fragment);
    let query = before_fragment.get(path.len() + 1..);
    let b = path.as_bytes();
    if b.first() != Some(&b'/') || b.get(1) == Some(&b'/') {
        return Err(TargetError::NotOriginForm);
    }
    // the whole target (query and fragment included) must be printable ASCII without '\'
    if raw.bytes().any(|x| x <= 0x20 || x >= 0x7f || x == b'\\') {
        return Err(TargetError::ForbiddenCharacter);
    }
    // one pass over the path: '@', empty and dot segments, encoded delimiters
    let mut i = 1;
    let mut seg_len = 0usize; // decoded length of the current segment
    let mut seg_dots = true; // every byte of the current segment is a literal '.'
    loop {
        match b.get(i).copied() {
            c @ (None | Some(b'/')) => {
                if seg_len == 0 && c.is_some() {
                    return Err(TargetError::EmptySegment);
                }
                if seg_dots && (seg_len == 1 || seg_len == 2) {
                    return Err(TargetError::DotSegment);
                }
                if c.is_none() {
                    break;
                }
                seg_len = 0;
                seg_dots = true;
                i += 1;
            }
            Some(b'%') => {
                let hi = b.get(i + 1).and_then(|x| hex_val(*x));
                let lo = b.get(i + 2).and_then(|x| hex_val(*x));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(TargetError::EncodedDelimiter);
                };
                // an encoded '/', '\', NUL or '.' is never needed in a path: only tricks use them
                if matches!((hi << 4) | lo, b'/' | b'\\' | 0 | b'.') {
                    return Err(TargetError::EncodedDelimiter);
                }
                seg_len += 1;
                seg_dots = false;
                i += 3;
            }
            Some(b'@') => return Err(TargetError::ForbiddenCharacter),
            Some(x) => {
                seg_len += 1;
                seg_dots &= x == b'.';
                i += 1;
            }
        }
    }
    if let Some(q) = query {
        check_percent(q)?;
    }
    Ok(Target { path, query })
}

/// Percent-decodes `s` to bytes; `+` becomes a space when `plus_is_space` (query values).
/// `None` for a malformed escape.
#[must_use]
pub fn percent_decode_bytes(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hi = b.get(i + 1).and_then(|x| hex_val(*x))?;
            let lo = b.get(i + 2).and_then(|x| hex_val(*x))?;
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(if plus_is_space && c == b'+' { b' ' } else { c });
            i += 1;
        }
    }
    Some(out)
}

/// Percent-decodes `s` to text (a path segment, or a query value with `plus_is_space`).
/// `None` for a malformed escape or bytes that are not UTF-8.
#[must_use]
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    String::from_utf8(percent_decode_bytes(s, plus_is_space)?).ok()
}

fn check_percent(s: &str) -> Result<(), TargetError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if b.get(i + 1).and_then(|x| hex_val(*x)).is_none()
                || b.get(i + 2).and_then(|x| hex_val(*x)).is_none()
            {
                return Err(TargetError::EncodedDelimiter);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether a host (name or IP literal, IPv6 without brackets) is private, loopback,
/// link-local, unspecified, CGNAT, or a name that conventionally resolves internally
/// (`localhost`, `*.localhost`, `*.internal`, `*.local`).
///
/// Names are judged by their text only; core cannot resolve DNS. Hosts that resolve must
/// check the resolved address too (the native host does).
#[must_use]
pub fn is_private_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if h == "localhost"
        || h.ends_with(".localhost")
        || h.ends_with(".internal")
        || h.ends_with(".local")
    {
        return true;
    }
    if let Some(v4) = parse_ipv4(&h) {
        return is_private_v4(v4);
    }
    if h.contains(':') {
        return is_private_v6(&h);
    }
    // URL parsers and resolvers read more than dotted quads as IPv4 (`2130706433`, `0x7f.1`,
    // `0177.0.0.1`, `127.1`: WHATWG URL's IPv4 parser, inet_aton): such a host is judged as
    // the address it means, and one whose last label is numeric but is no address is refused
    if ends_in_a_number(&h) {
        return parse_ipv4_numeric(&h).is_none_or(is_private_v4);
    }
    false
}

/// Whether the last label of `h` is a number (decimal, or hex with `0x`): WHATWG URL then
/// parses the whole host as IPv4.
fn ends_in_a_number(h: &str) -> bool {
    let last = h.rsplit('.').next().unwrap_or("");
    !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || last
                .strip_prefix("0x")
                .is_some_and(|x| x.bytes().all(|b| b.is_ascii_hexdigit())))
}

/// The IPv4 address a host of one to four numeric parts means (each decimal, `0x` hex or
/// `0`-prefixed octal; the last part fills the remaining bytes), as WHATWG URL and inet_aton
/// read it; `None` when it is not one.
fn parse_ipv4_numeric(h: &str) -> Option<[u8; 4]> {
    let parts: alloc::vec::Vec<&str> = h.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = [0u64; 4];
    for (i, p) in parts.iter().enumerate() {
        let (digits, radix) = if let Some(x) = p.strip_prefix("0x") {
            (x, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        nums[i] = if digits.is_empty() {
            0
        } else {
            u64::from_str_radix(digits, radix).ok()?
        };
    }
    let n = parts.len();
    if nums[..n - 1].iter().any(|&v| v > 255) || nums[n - 1] >= 1u64 << (8 * (5 - n)) {
        return None;
    }
    let mut v: u64 = nums[n - 1];
    for (i, &p) in nums[..n - 1].iter().enumerate() {
        v |= p << (8 * (3 - i));
    }
    let b = u32::try_from(v).ok()?.to_be_bytes();
    Some(b)
}

/// Parses a dotted-quad IPv4 address. (Other numeric forms — `0x7f.1`, `2130706433` — are
/// judged by [`is_private_host`] as the address they mean.)
#[must_use]
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Whether an IPv4 address is not publicly routable.
#[must_use]
pub fn is_private_v4(a: [u8; 4]) -> bool {
    matches!(
        a,
        [0, ..] | [10, ..] | [127, ..] | [169, 254, ..] | [192, 168, ..] | [255, 255, 255, 255]
    ) || (a[0] == 172 && (16..=31).contains(&a[1]))
        || (a[0] == 100 && (64..=127).contains(&a[1]))
        || (a[0] == 192 && a[1] == 0 && a[2] == 0)
        || a[0] >= 224
}

fn is_private_v6(h: &str) -> bool {
    let h = h.split('%').next().unwrap_or(h);
    if h == "::1" || h == "::" {
        return true;
    }
    if let Some(v4) = h.strip_prefix("::ffff:").and_then(parse_ipv4) {
        return is_private_v4(v4);
    }
    let first = h.split(':').next().unwrap_or("");
    let first = u16::from_str_radix(if first.is_empty() { "0" } else { first }, 16).unwrap_or(0);
    (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xff00) == 0xff00 // multicast
        || first == 0
}

/// Joins a base path prefix, a checked path and an optional query into a request target.
#[must_use]
pub fn join_target(prefix: &str, path: &str, query: Option<&str>) -> String {
    let mut s = String::with_capacity(prefix.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    s.push_str(prefix);
    s.push_str(path);
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_targets() {
        let t = parse_target("/repos/a/b?x=1&y=%20").unwrap();
        assert_eq!(t.path, "/repos/a/b");
        assert_eq!(t.query, Some("x=1&y=%20"));
        assert!(parse_target("/").is_ok());
        assert!(parse_target("/a/").is_ok());
        assert!(parse_target("/a/b%20c").is_ok());
        assert!(parse_target("/v1.2/x..y/.well").is_ok());
    }

    #[test]
    fn refuses_ssrf_and_traversal_tricks() {
        use TargetError::*;
        let cases = [
            ("http://evil/", NotOriginForm),
            ("//evil.com/x", NotOriginForm),
            ("evil.com/x", NotOriginForm),
            ("/a//b", EmptySegment),
            ("/a/../b", DotSegment),
            ("/a/./b", DotSegment),
            ("/..", DotSegment),
            ("/a/%2e%2e/b", EncodedDelimiter),
            ("/a/%2E./b", EncodedDelimiter),
            ("/a%2fb", EncodedDelimiter),
            ("/a%5cb", EncodedDelimiter),
            ("/a%00b", EncodedDelimiter),
            ("/a%zz", EncodedDelimiter),
            ("/a\\b", ForbiddenCharacter),
            ("/@evil.com", ForbiddenCharacter),
            ("/a b", ForbiddenCharacter),
            ("/a\r\nHost: x", ForbiddenCharacter),
            ("/é", ForbiddenCharacter),
            ("/a?b=%g1", EncodedDelimiter),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_target(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("gh:a%2Fb:0", false).as_deref(),
            Some("gh:a/b:0")
        );
        assert_eq!(percent_decode("plain", false).as_deref(), Some("plain"));
        assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("bad%2", false), None);
        assert_eq!(percent_decode("bad%zz", false), None);
        assert_eq!(percent_decode("%+f", false), None);
        assert_eq!(percent_decode("%ff", false), None, "not UTF-8");
        assert_eq!(percent_decode_bytes("%ff", false), Some(alloc::vec![0xff]));
    }

    #[test]
    fn private_hosts() {
        for h in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "localhost",
            "LOCALHOST.",
            "a.localhost",
            "metadata.google.internal",
            "printer.local",
            // numeric forms URL parsers and resolvers read as loopback or private
            "2130706433",
            "0x7f000001",
            "0x7f.1",
            "0177.0.0.1",
            "127.1",
            "10.0x10.1",
            "3232235777",
            // a numeric last label that is no address: refused
            "1.2.3.4.5",
            "99999999999",
            "1.256.1",
        ] {
            assert!(is_private_host(h), "{h}");
        }
        for h in [
            "8.8.8.8",
            "172.32.0.1",
            "api.github.com",
            "2606:4700::1111",
            "100.128.0.1",
            // 8.8.8.8 in other forms, and names that merely contain digits
            "134744072",
            "0x8.0x8.0x8.0x8",
            "8.8.2056",
            "1e100.net",
            "123.example",
        ] {
            assert!(!is_private_host(h), "{h}");
        }
        assert_eq!(parse_ipv4("1.2.3"), None);
        assert_eq!(parse_ipv4("1.2.3.4.5"), None);
        assert_eq!(parse_ipv4("256.1.1.1"), None);
    }
}
