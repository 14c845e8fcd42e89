//! Minimal HTTP vocabulary shared by core and the hosts: methods, header lists, status classes.
//!
//! Core does not depend on the `http` crate (it needs `std`); hosts translate their platform's
//! types into these small ones.

use alloc::string::String;
use alloc::vec::Vec;

/// An HTTP request method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
}

impl Method {
    /// All methods, in a fixed order (the bit order of [`MethodSet`]).
    pub const ALL: [Method; 7] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
    ];

    /// Parses a method name (case-sensitive, as HTTP requires). Unknown methods give `None`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    /// The method's name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }

    /// Idempotent per RFC 9110 §9.2.2: safe to repeat without changing the outcome.
    #[must_use]
    pub const fn is_idempotent(self) -> bool {
        !matches!(self, Method::Post | Method::Patch)
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of methods as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MethodSet(u8);

impl MethodSet {
    /// Every method.
    pub const ANY: MethodSet = MethodSet(0x7f);
    /// No method.
    pub const NONE: MethodSet = MethodSet(0);

    /// Adds a method.
    #[must_use]
    pub const fn with(self, m: Method) -> Self {
        MethodSet(self.0 | m.bit())
    }
    /// Whether `m` is in the set.
    #[must_use]
    pub const fn contains(self, m: Method) -> bool {
        self.0 & m.bit() != 0
    }
    /// Whether the two sets share a method.
    #[must_use]
    pub const fn intersects(self, other: MethodSet) -> bool {
        self.0 & other.0 != 0
    }
    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The methods in the set.
    pub fn iter(self) -> impl Iterator<Item = Method> {
        Method::ALL.into_iter().filter(move |m| self.contains(*m))
    }
}

/// Read access to a request's or response's headers, case-insensitive by name.
///
/// Implemented for slices of name/value pairs so tests and hosts can pass what they have.
pub trait Headers {
    /// The first value of header `name` (ASCII case-insensitive), if present.
    fn header(&self, name: &str) -> Option<&str>;
    /// Every value of header `name`, in order.
    fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a;
}

impl<N: AsRef<str>, V: AsRef<str>> Headers for [(N, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
    fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .filter(move |(n, _)| n.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<N: AsRef<str>, V: AsRef<str>> Headers for Vec<(N, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
    fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.as_slice().header_all(name)
    }
}

/// An owned header list (name, value), order preserved, names as received.
pub type HeaderList = Vec<(String, String)>;

/// Headers that apply to one connection only (RFC 9110 §7.6.1) and are never forwarded.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is a hop-by-hop header, either by the fixed list or because `connection`
/// names it.
#[must_use]
pub fn is_hop_by_hop(name: &str, connection: Option<&str>) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
        || connection.is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_and_classify() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.as_str()), Some(m));
        }
        assert_eq!(Method::parse("get"), None);
        assert_eq!(Method::parse("BREW"), None);
        assert!(Method::Get.is_idempotent());
        assert!(Method::Put.is_idempotent());
        assert!(!Method::Post.is_idempotent());
        assert!(!Method::Patch.is_idempotent());
    }

    #[test]
    fn method_sets() {
        let s = MethodSet::NONE.with(Method::Get).with(Method::Head);
        assert!(s.contains(Method::Get) && s.contains(Method::Head) && !s.contains(Method::Post));
        assert!(s.intersects(MethodSet::ANY));
        assert!(!s.intersects(MethodSet::NONE.with(Method::Post)));
        assert_eq!(s.iter().count(), 2);
        assert_eq!(MethodSet::ANY.iter().count(), 7);
    }

    #[test]
    fn header_lookup_is_case_insensitive() {
        let h = [("Content-Type", "a"), ("x-a", "1"), ("X-A", "2")];
        assert_eq!(h.header("content-type"), Some("a"));
        assert_eq!(h.header_all("x-a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(h.header("missing"), None);
        assert!(is_hop_by_hop("Transfer-Encoding", None));
        assert!(is_hop_by_hop("x-custom", Some("close, X-Custom")));
        assert!(!is_hop_by_hop("x-other", Some("close, X-Custom")));
    }
}
