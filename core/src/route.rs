//! The route table: method + host + path pattern + header predicates.
//!
//! Patterns have static segments, `{param}` segments and an optional trailing `{*rest}` that
//! matches one or more remaining segments. The table is a segment trie built once from the
//! validated routes; building rejects conflicting routes (same methods, host, path shape and
//! header predicates), so a lookup can only fail with "not found". Lookup walks the trie with
//! backtracking (static before parameter before catch-all) and borrows parameter values from
//! the request path: no allocation on the lookup path.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::http::{Headers, Method, MethodSet};

/// Most parameters a pattern may have.
pub const MAX_PARAMS: usize = 8;

/// One segment of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Must equal this text.
    Static(String),
    /// Captures one segment.
    Param(String),
    /// Captures the rest (one or more segments), last only.
    CatchAll(String),
}

/// A parsed path pattern such as `/repos/{owner}/{repo}/{*rest}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    /// The pattern as written.
    pub raw: String,
    /// Its segments.
    pub segments: Vec<Segment>,
    /// Whether it ends with `/` (an empty last segment).
    pub trailing_slash: bool,
}

impl PathPattern {
    /// Parses a pattern.
    ///
    /// # Errors
    /// A message naming the faulty segment.
    pub fn parse(raw: &str) -> Result<PathPattern, String> {
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(format!("path pattern `{raw}` must start with '/'"));
        };
        let mut segments = Vec::new();
        let mut trailing_slash = false;
        if !rest.is_empty() {
            let parts: Vec<&str> = rest.split('/').collect();
            let n = parts.len();
            for (i, p) in parts.into_iter().enumerate() {
                if p.is_empty() {
                    if i + 1 == n {
                        trailing_slash = true;
                        continue;
                    }
                    return Err(format!("path pattern `{raw}` has an empty segment"));
                }
                if let Some(inner) = p.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
                    if let Some(name) = inner.strip_prefix('*') {
                        check_ident(name, raw)?;
                        if i + 1 != n {
                            return Err(format!(
                                "in `{raw}`: catch-all `{{*{name}}}` must be the last segment"
                            ));
                        }
                        segments.push(Segment::CatchAll(name.into()));
                    } else {
                        check_ident(inner, raw)?;
                        segments.push(Segment::Param(inner.into()));
                    }
                } else if p.contains(['{', '}']) {
                    return Err(format!(
                        "in `{raw}`: segment `{p}` mixes text and a parameter; a parameter must be a whole segment"
                    ));
                } else if p == "." || p == ".." {
                    return Err(format!("in `{raw}`: dot segments are not allowed"));
                } else if p
                    .bytes()
                    .any(|b| b <= 0x20 || b >= 0x7f || b == b'\\' || b == b'?' || b == b'#')
                {
                    return Err(format!(
                        "in `{raw}`: segment `{p}` has a forbidden character"
                    ));
                } else {
                    segments.push(Segment::Static(p.into()));
                }
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for s in &segments {
            if let Segment::Param(n) | Segment::CatchAll(n) = s {
                if names.contains(&n.as_str()) {
                    return Err(format!("in `{raw}`: parameter `{n}` appears twice"));
                }
                names.push(n);
            }
        }
        if names.len() > MAX_PARAMS {
            return Err(format!("in `{raw}`: more than {MAX_PARAMS} parameters"));
        }
        Ok(PathPattern {
            raw: raw.into(),
            segments,
            trailing_slash,
        })
    }

    /// The parameter names, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::CatchAll(n) => Some(n.as_str()),
            Segment::Static(_) => None,
        })
    }

    /// Renders this pattern as a path, substituting parameters from `params`.
    /// Unknown parameters render empty (validation prevents them).
    #[must_use]
    pub fn render(&self, params: &Params<'_, '_>) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Static(t) => out.push_str(t),
                Segment::Param(n) | Segment::CatchAll(n) => {
                    out.push_str(params.get(n).unwrap_or(""))
                }
            }
        }
        if self.trailing_slash || out.is_empty() {
            out.push('/');
        }
        out
    }
}

fn check_ident(name: &str, raw: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!(
            "in `{raw}`: `{name}` is not a valid parameter name"
        ));
    }
    Ok(())
}

/// Parameters captured by a match: names borrowed from the table, values from the path.
#[derive(Clone, Copy, Debug)]
pub struct Params<'t, 'p> {
    names: [&'t str; MAX_PARAMS],
    values: [&'p str; MAX_PARAMS],
    len: usize,
}

impl<'t, 'p> Params<'t, 'p> {
    const fn empty() -> Self {
        Params {
            names: [""; MAX_PARAMS],
            values: [""; MAX_PARAMS],
            len: 0,
        }
    }
    /// The value of parameter `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'p str> {
        (0..self.len)
            .find(|&i| self.names[i] == name)
            .map(|i| self.values[i])
    }
    /// Number of parameters.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// `(name, value)` pairs in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = (&'t str, &'p str)> + '_ {
        (0..self.len).map(|i| (self.names[i], self.values[i]))
    }
}

#[derive(Clone, Debug, Default)]
struct Node {
    statics: Vec<(Box<str>, Node)>,
    /// Open-addressing hash index into `statics` (FNV-1a), built for wide nodes only.
    index: Vec<u32>,
    param: Option<Box<Node>>,
    catch_all: Vec<usize>,
    /// Routes ending exactly here (no trailing slash).
    leaves: Vec<usize>,
    /// Routes ending here with a trailing slash.
    leaves_slash: Vec<usize>,
}

/// Nodes with more static children than this get a hash index.
const INDEX_FROM: usize = 8;

fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl Node {
    fn build_index(&mut self) {
        for (_, child) in &mut self.statics {
            child.build_index();
        }
        if let Some(p) = &mut self.param {
            p.build_index();
        }
        self.index.clear();
        if self.statics.len() <= INDEX_FROM {
            return;
        }
        let size = (self.statics.len() * 2).next_power_of_two();
        self.index = alloc::vec![u32::MAX; size];
        for (i, (k, _)) in self.statics.iter().enumerate() {
            let mut slot = fnv1a(k) as usize & (size - 1);
            while self.index[slot] != u32::MAX {
                slot = (slot + 1) & (size - 1);
            }
            self.index[slot] = i as u32;
        }
    }

    #[inline]
    fn find_static(&self, seg: &str) -> Option<usize> {
        if self.index.is_empty() {
            return self.statics.iter().position(|(k, _)| &**k == seg);
        }
        let mask = self.index.len() - 1;
        let mut slot = fnv1a(seg) as usize & mask;
        loop {
            let i = self.index[slot];
            if i == u32::MAX {
                return None;
            }
            if &*self.statics[i as usize].0 == seg {
                return Some(i as usize);
            }
            slot = (slot + 1) & mask;
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    methods: MethodSet,
    host: Option<Box<str>>,
    headers: Vec<(Box<str>, Option<Box<str>>)>,
    names: Vec<Box<str>>,
}

/// What [`RouteTable::build`] reads of a route: the validated configuration's routes implement
/// it, and the table knows nothing else of them.
pub trait Matcher {
    /// Methods matched.
    fn methods(&self) -> MethodSet;
    /// Host matched (lowercase); any when `None`.
    fn host(&self) -> Option<&str>;
    /// Path pattern.
    fn pattern(&self) -> &PathPattern;
    /// Header predicates: lowercase name → `Some(value)` exact or `None` present.
    fn headers(&self) -> &[(String, Option<String>)];
}

/// Two routes that would match the same requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Index of the route defined first.
    pub earlier: usize,
    /// Index of the route that conflicts with it.
    pub later: usize,
}

/// The compiled route table.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    root: Node,
    entries: Vec<Entry>,
}

/// A successful lookup.
#[derive(Clone, Copy, Debug)]
pub struct Match<'t, 'p> {
    /// Index of the route in the configuration.
    pub route: usize,
    /// Captured parameters.
    pub params: Params<'t, 'p>,
}

impl RouteTable {
    /// Builds the table, rejecting conflicts.
    ///
    /// # Errors
    /// Every pair of conflicting routes.
    pub fn build<R: Matcher>(routes: &[R]) -> Result<RouteTable, Vec<Conflict>> {
        let mut t = RouteTable::default();
        let mut conflicts = Vec::new();
        for (ix, r) in routes.iter().enumerate() {
            let pattern = r.pattern();
            let mut headers: Vec<(Box<str>, Option<Box<str>>)> = r
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().into(), v.as_deref().map(Into::into)))
                .collect();
            headers.sort();
            t.entries.push(Entry {
                methods: r.methods(),
                host: r.host().map(Into::into),
                headers,
                names: pattern.param_names().map(Into::into).collect(),
            });
            let mut node = &mut t.root;
            let mut slot_is_catch_all = false;
            for seg in &pattern.segments {
                match seg {
                    Segment::Static(s) => {
                        let pos = node
                            .statics
                            .binary_search_by(|(k, _)| (**k).cmp(s.as_str()));
                        let i = match pos {
                            Ok(i) => i,
                            Err(i) => {
                                node.statics.insert(i, (s.as_str().into(), Node::default()));
                                i
                            }
                        };
                        node = &mut node.statics[i].1;
                    }
                    Segment::Param(_) => {
                        node = node.param.get_or_insert_with(Default::default);
                    }
                    Segment::CatchAll(_) => {
                        slot_is_catch_all = true;
                    }
                }
            }
            let slot = if slot_is_catch_all {
                &mut node.catch_all
            } else if pattern.trailing_slash {
                &mut node.leaves_slash
            } else {
                &mut node.leaves
            };
            for &other in slot.iter() {
                if t.entries[other].overlaps(&t.entries[ix]) {
                    conflicts.push(Conflict {
                        earlier: other,
                        later: ix,
                    });
                }
            }
            slot.push(ix);
            // more specific first: host set, then more header predicates
            let entries = &t.entries;
            slot.sort_by_key(|&i| {
                let e = &entries[i];
                (e.host.is_none(), usize::MAX - e.headers.len(), i)
            });
        }
        t.root.build_index();
        if conflicts.is_empty() {
            Ok(t)
        } else {
            Err(conflicts)
        }
    }

    /// Finds the route for a request. `host` is the request's host without port;
    /// `path` must already be checked by [`crate::target::parse_target`].
    #[must_use]
    pub fn lookup<'t, 'p, H: Headers + ?Sized>(
        &'t self,
        method: Method,
        host: Option<&str>,
        path: &'p str,
        headers: &H,
    ) -> Option<Match<'t, 'p>> {
        let rest = path.strip_prefix('/')?;
        let mut values: [&'p str; MAX_PARAMS] = [""; MAX_PARAMS];
        let q = Query {
            method,
            host,
            headers,
        };
        let route = self.walk(&self.root, rest, &mut values, 0, &q)?;
        let e = &self.entries[route];
        let mut params = Params::empty();
        for (i, n) in e.names.iter().enumerate() {
            params.names[i] = n;
            params.values[i] = values[i];
        }
        params.len = e.names.len();
        Some(Match { route, params })
    }

    fn walk<'p, H: Headers + ?Sized>(
        &self,
        node: &Node,
        rest: &'p str,
        values: &mut [&'p str; MAX_PARAMS],
        depth: usize,
        q: &Query<'_, H>,
    ) -> Option<usize> {
        if rest.is_empty() {
            return self.pick(&node.leaves, q);
        }
        // segments are short: a byte scan beats memchr's setup cost
        let (seg, tail, last) = match rest.bytes().position(|b| b == b'/') {
            Some(i) => (&rest[..i], &rest[i + 1..], false),
            None => (rest, "", true),
        };
        if seg.is_empty() {
            // trailing slash ("/a/" → seg "" at the end)
            if last || tail.is_empty() {
                return self.pick(&node.leaves_slash, q);
            }
            return None;
        }
        if let Some(i) = node.find_static(seg) {
            let child = &node.statics[i].1;
            if let Some(r) = self.descend(child, tail, last, values, depth, q) {
                return Some(r);
            }
        }
        if let Some(child) = &node.param {
            if depth < MAX_PARAMS {
                values[depth] = seg;
                if let Some(r) = self.descend(child, tail, last, values, depth + 1, q) {
                    return Some(r);
                }
            }
        }
        if !node.catch_all.is_empty() && depth < MAX_PARAMS {
            values[depth] = rest;
            return self.pick(&node.catch_all, q);
        }
        None
    }

    fn descend<'p, H: Headers + ?Sized>(
        &self,
        child: &Node,
        tail: &'p str,
        last: bool,
        values: &mut [&'p str; MAX_PARAMS],
        depth: usize,
        q: &Query<'_, H>,
    ) -> Option<usize> {
        if last {
            self.pick(&child.leaves, q)
        } else if tail.is_empty() {
            self.pick(&child.leaves_slash, q)
        } else {
            self.walk(child, tail, values, depth, q)
        }
    }

    fn pick<H: Headers + ?Sized>(&self, slot: &[usize], q: &Query<'_, H>) -> Option<usize> {
        slot.iter().copied().find(|&i| self.entries[i].admits(q))
    }
}

struct Query<'a, H: ?Sized> {
    method: Method,
    host: Option<&'a str>,
    headers: &'a H,
}

impl Entry {
    fn admits<H: Headers + ?Sized>(&self, q: &Query<'_, H>) -> bool {
        self.methods.contains(q.method)
            && match (&self.host, q.host) {
                (None, _) => true,
                (Some(h), Some(qh)) => h.eq_ignore_ascii_case(qh),
                (Some(_), None) => false,
            }
            && self
                .headers
                .iter()
                .all(|(n, v)| match (q.headers.header(n), v) {
                    (Some(_), None) => true,
                    (Some(got), Some(want)) => got == &**want,
                    (None, _) => false,
                })
    }

    fn overlaps(&self, other: &Entry) -> bool {
        self.methods.intersects(other.methods)
            && self.host == other.host
            && self.headers == other.headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    type Expect = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Vec<(&'static str, &'static str)>,
    );
    type RouteSpec<'a> = &'a [(&'a str, &'a str, Option<&'a str>)];

    struct MatchTest {
        routes: Vec<(&'static str, &'static str, Option<&'static str>)>,
        matches: Vec<Expect>,
    }

    /// A route as the table sees it, normalized as validation leaves it (lowercase host and
    /// header names, `None` for a header that need only be present).
    struct TestRoute {
        name: String,
        methods: MethodSet,
        host: Option<String>,
        pattern: PathPattern,
        headers: Vec<(String, Option<String>)>,
    }

    impl Matcher for TestRoute {
        fn methods(&self) -> MethodSet {
            self.methods
        }
        fn host(&self) -> Option<&str> {
            self.host.as_deref()
        }
        fn pattern(&self) -> &PathPattern {
            &self.pattern
        }
        fn headers(&self) -> &[(String, Option<String>)] {
            &self.headers
        }
    }

    /// A route named `name` for `method` (any when empty), `path` and `host`.
    fn route(name: &str, method: &str, path: &str, host: Option<&str>) -> TestRoute {
        TestRoute {
            name: name.into(),
            methods: if method.is_empty() {
                MethodSet::ANY
            } else {
                MethodSet::NONE.with(Method::parse(method).unwrap())
            },
            host: host.map(str::to_ascii_lowercase),
            pattern: PathPattern::parse(path).unwrap(),
            headers: Vec::new(),
        }
    }

    /// Routes `r0`, `r1`, … from `(method, path, host)`.
    fn routes(specs: RouteSpec<'_>) -> Vec<TestRoute> {
        specs
            .iter()
            .enumerate()
            .map(|(i, (m, p, h))| route(&format!("r{i}"), m, p, *h))
            .collect()
    }

    impl MatchTest {
        fn run(self) {
            let routes = routes(&self.routes);
            let table = RouteTable::build(&routes).unwrap();
            let none: [(&str, &str); 0] = [];
            for (method, path, expect, params) in self.matches {
                let m = table.lookup(
                    Method::parse(method).unwrap(),
                    Some("example.com"),
                    path,
                    &none[..],
                );
                match expect {
                    None => assert!(
                        m.is_none(),
                        "{method} {path} should not match, got {:?}",
                        m.map(|m| m.route)
                    ),
                    Some(want) => {
                        let m = m.unwrap_or_else(|| panic!("{method} {path} should match {want}"));
                        assert_eq!(routes[m.route].pattern.raw, want, "{method} {path}");
                        let got: Vec<(&str, &str)> = m.params.iter().collect();
                        assert_eq!(got, params, "{method} {path}");
                    }
                }
            }
        }
    }

    #[test]
    fn table_driven_matching() {
        MatchTest {
            routes: vec![
                ("GET", "/", None),
                ("GET", "/repos/{owner}/{repo}", None),
                ("GET", "/repos/{owner}/{repo}/issues", None),
                ("GET", "/repos/rust-lang/{repo}", None),
                ("", "/static/{*path}", None),
                ("GET", "/a/b/", None),
                ("POST", "/repos/{owner}/{repo}/issues", None),
                ("GET", "/users/{id}", None),
                ("GET", "/users/me", None),
                ("GET", "/x/{p}/y", None),
                ("GET", "/x/{*rest}", None),
            ],
            matches: vec![
                ("GET", "/", Some("/"), vec![]),
                (
                    "GET",
                    "/repos/a/b",
                    Some("/repos/{owner}/{repo}"),
                    vec![("owner", "a"), ("repo", "b")],
                ),
                (
                    "GET",
                    "/repos/rust-lang/rust",
                    Some("/repos/rust-lang/{repo}"),
                    vec![("repo", "rust")],
                ),
                (
                    "GET",
                    "/repos/a/b/issues",
                    Some("/repos/{owner}/{repo}/issues"),
                    vec![("owner", "a"), ("repo", "b")],
                ),
                (
                    "GET",
                    "/repos/rust-lang/rust/issues",
                    Some("/repos/{owner}/{repo}/issues"),
                    vec![("owner", "rust-lang"), ("repo", "rust")],
                ),
                (
                    "POST",
                    "/repos/a/b/issues",
                    Some("/repos/{owner}/{repo}/issues"),
                    vec![("owner", "a"), ("repo", "b")],
                ),
                ("DELETE", "/repos/a/b/issues", None, vec![]),
                ("GET", "/repos/a", None, vec![]),
                ("GET", "/repos/a/b/c", None, vec![]),
                (
                    "GET",
                    "/static/css/site.css",
                    Some("/static/{*path}"),
                    vec![("path", "css/site.css")],
                ),
                (
                    "PUT",
                    "/static/x",
                    Some("/static/{*path}"),
                    vec![("path", "x")],
                ),
                ("GET", "/static", None, vec![]),
                ("GET", "/a/b/", Some("/a/b/"), vec![]),
                ("GET", "/a/b", None, vec![]),
                ("GET", "/users/me", Some("/users/me"), vec![]),
                ("GET", "/users/42", Some("/users/{id}"), vec![("id", "42")]),
                ("GET", "/x/1/y", Some("/x/{p}/y"), vec![("p", "1")]),
                ("GET", "/x/1/z", Some("/x/{*rest}"), vec![("rest", "1/z")]),
                ("GET", "/x/1", Some("/x/{*rest}"), vec![("rest", "1")]),
                ("GET", "/nothing", None, vec![]),
            ],
        }
        .run();
    }

    #[test]
    fn host_and_header_predicates() {
        let mk = |name: &str, host: Option<&str>, hdr: Option<(&str, Option<&str>)>| TestRoute {
            headers: hdr
                .into_iter()
                .map(|(n, v)| (n.into(), v.map(Into::into)))
                .collect(),
            ..route(name, "GET", "/api/{*rest}", host)
        };
        let routes = vec![
            mk("any", None, None),
            mk("beta", None, Some(("x-beta", Some("1")))),
            mk("host", Some("api.example.com"), None),
            mk("present", None, Some(("x-trace", None))),
        ];
        let t = &RouteTable::build(&routes).unwrap();
        let name = |m: Option<Match<'_, '_>>| m.map(|m| routes[m.route].name.as_str());
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            name(t.lookup(Method::Get, Some("other"), "/api/x", &none[..])),
            Some("any")
        );
        assert_eq!(
            name(t.lookup(Method::Get, Some("API.example.com"), "/api/x", &none[..])),
            Some("host")
        );
        assert_eq!(
            name(t.lookup(Method::Get, None, "/api/x", &[("x-beta", "1")][..])),
            Some("beta")
        );
        assert_eq!(
            name(t.lookup(Method::Get, None, "/api/x", &[("x-beta", "2")][..])),
            Some("any")
        );
        assert_eq!(
            name(t.lookup(Method::Get, None, "/api/x", &[("X-Trace", "")][..])),
            Some("present")
        );
        assert_eq!(
            name(t.lookup(Method::Post, None, "/api/x", &none[..])),
            None
        );
    }

    #[test]
    fn conflicts_are_rejected_when_built() {
        let cases: [(RouteSpec<'_>, bool); 6] = [
            (&[("GET", "/a/{x}", None), ("GET", "/a/{y}", None)], true),
            (&[("GET", "/a/{x}", None), ("POST", "/a/{y}", None)], false),
            (&[("", "/a/{x}", None), ("POST", "/a/{y}", None)], true),
            (&[("GET", "/a/{*x}", None), ("GET", "/a/{*y}", None)], true),
            (
                &[("GET", "/a/{x}", Some("h")), ("GET", "/a/{x}", None)],
                false,
            ),
            (&[("GET", "/a/b", None), ("GET", "/a/{x}", None)], false),
        ];
        for (specs, conflict) in cases {
            match RouteTable::build(&routes(specs)) {
                Ok(_) => assert!(!conflict, "{specs:?} should conflict"),
                Err(c) => {
                    assert!(conflict, "{specs:?}: {c:?}");
                    assert_eq!(
                        c,
                        [Conflict {
                            earlier: 0,
                            later: 1
                        }],
                        "{specs:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn pattern_errors() {
        for (p, needle) in [
            ("a/b", "must start with '/'"),
            ("/a//b", "empty segment"),
            ("/a/{*x}/b", "must be the last"),
            ("/a/x{y}", "mixes text"),
            ("/a/{x}/{x}", "appears twice"),
            ("/a/{}", "not a valid parameter"),
            ("/a/..", "dot segments"),
            ("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", "more than 8"),
        ] {
            let e = PathPattern::parse(p).unwrap_err();
            assert!(e.contains(needle), "{p}: {e}");
        }
    }

    #[test]
    fn render_substitutes_params() {
        let table = RouteTable::build(&routes(&[("GET", "/gh/{owner}/{*rest}", None)])).unwrap();
        let none: [(&str, &str); 0] = [];
        let m = table
            .lookup(Method::Get, None, "/gh/me/a/b", &none[..])
            .unwrap();
        let up = PathPattern::parse("/repos/{owner}/{*rest}").unwrap();
        assert_eq!(up.render(&m.params), "/repos/me/a/b");
        assert_eq!(PathPattern::parse("/").unwrap().render(&m.params), "/");
    }
}
