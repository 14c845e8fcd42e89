//! The part of RFC 8941 Structured Field Values that HTTP Message Signatures (RFC 9421) and
//! `Content-Digest` (RFC 9530) need: dictionaries, inner lists, parameters and bare items, parsed
//! strictly and serialized canonically. Untrusted input: bounded, never panics.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use base64::Engine as _;

use super::keys::{LENIENT_B64, STRICT_B64};

/// Bounds on what we accept, far above what a signature header needs.
const MAX_INPUT: usize = 8 * 1024;
const MAX_MEMBERS: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Bare {
    Integer(i64),
    /// Kept in canonical serialized form (at most three fractional digits, no trailing zeros).
    Decimal(String),
    Str(String),
    Token(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

pub(crate) type Params = Vec<(String, Bare)>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Member {
    Item(Bare, Params),
    Inner(Vec<(Bare, Params)>, Params),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn key(&mut self) -> Option<String> {
        let start = self.i;
        if !matches!(self.peek(), Some(b'a'..=b'z' | b'*')) {
            return None;
        }
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
        ) {
            self.i += 1;
        }
        let k = self.s.get(start..self.i)?;
        core::str::from_utf8(k).ok().map(String::from)
    }

    fn params(&mut self) -> Option<Params> {
        let mut out: Params = Vec::new();
        while self.eat(b';') {
            self.skip_sp();
            let k = self.key()?;
            let v = if self.eat(b'=') {
                self.bare()?
            } else {
                Bare::Bool(true)
            };
            if let Some(slot) = out.iter_mut().find(|(ek, _)| *ek == k) {
                slot.1 = v;
            } else {
                if out.len() >= MAX_MEMBERS {
                    return None;
                }
                out.push((k, v));
            }
        }
        Some(out)
    }

    fn item(&mut self) -> Option<(Bare, Params)> {
        let b = self.bare()?;
        Some((b, self.params()?))
    }

    fn item_or_inner(&mut self) -> Option<Member> {
        if !self.eat(b'(') {
            let (b, p) = self.item()?;
            return Some(Member::Item(b, p));
        }
        let mut items = Vec::new();
        loop {
            self.skip_sp();
            if self.eat(b')') {
                let p = self.params()?;
                return Some(Member::Inner(items, p));
            }
            if items.len() >= MAX_MEMBERS {
                return None;
            }
            items.push(self.item()?);
            if !matches!(self.peek(), Some(b' ' | b')')) {
                return None;
            }
        }
    }

    fn bare(&mut self) -> Option<Bare> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b':' => self.bytes(),
            b'?' => {
                self.i += 1;
                match self.peek()? {
                    b'1' => {
                        self.i += 1;
                        Some(Bare::Bool(true))
                    }
                    b'0' => {
                        self.i += 1;
                        Some(Bare::Bool(false))
                    }
                    _ => None,
                }
            }
            b'*' | b'a'..=b'z' | b'A'..=b'Z' => self.token(),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Bare> {
        let neg = self.eat(b'-');
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let int = core::str::from_utf8(self.s.get(start..self.i)?).ok()?;
        if int.is_empty() {
            return None;
        }
        if !self.eat(b'.') {
            if int.len() > 15 {
                return None;
            }
            let v: i64 = int.parse().ok()?;
            return Some(Bare::Integer(if neg { -v } else { v }));
        }
        let fstart = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let frac = core::str::from_utf8(self.s.get(fstart..self.i)?).ok()?;
        if int.len() > 12 || frac.is_empty() || frac.len() > 3 {
            return None;
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        let mut canon = String::new();
        if neg {
            canon.push('-');
        }
        canon.push_str(if int.is_empty() { "0" } else { int });
        canon.push('.');
        canon.push_str(if frac.is_empty() { "0" } else { frac });
        Some(Bare::Decimal(canon))
    }

    fn string(&mut self) -> Option<Bare> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return Some(Bare::Str(out)),
                b'\\' => {
                    let e = self.peek()?;
                    if e != b'"' && e != b'\\' {
                        return None;
                    }
                    self.i += 1;
                    out.push(char::from(e));
                }
                0x20..=0x7e => out.push(char::from(c)),
                _ => return None,
            }
        }
    }

    fn token(&mut self) -> Option<Bare> {
        let start = self.i;
        self.i += 1;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c))
        {
            self.i += 1;
        }
        let t = core::str::from_utf8(self.s.get(start..self.i)?).ok()?;
        Some(Bare::Token(String::from(t)))
    }

    fn bytes(&mut self) -> Option<Bare> {
        self.i += 1; // opening colon
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
        {
            self.i += 1;
        }
        let b64 = self.s.get(start..self.i)?;
        if !self.eat(b':') {
            return None;
        }
        LENIENT_B64.decode(b64).ok().map(Bare::Bytes)
    }
}

/// Parses a Dictionary (RFC 8941 §4.2.2). Later duplicates of a key replace earlier ones.
pub(crate) fn parse_dictionary(input: &str) -> Option<Vec<(String, Member)>> {
    if input.len() > MAX_INPUT {
        return None;
    }
    let mut p = Parser {
        s: input.as_bytes(),
        i: 0,
    };
    p.skip_sp();
    let mut out: Vec<(String, Member)> = Vec::new();
    if p.peek().is_none() {
        return Some(out);
    }
    loop {
        let k = p.key()?;
        let m = if p.eat(b'=') {
            p.item_or_inner()?
        } else {
            Member::Item(Bare::Bool(true), p.params()?)
        };
        if let Some(slot) = out.iter_mut().find(|(ek, _)| *ek == k) {
            slot.1 = m;
        } else {
            if out.len() >= MAX_MEMBERS {
                return None;
            }
            out.push((k, m));
        }
        p.skip_ows();
        if p.peek().is_none() {
            return Some(out);
        }
        if !p.eat(b',') {
            return None;
        }
        p.skip_ows();
        // A trailing comma is an error.
        p.peek()?;
    }
}

fn write_bare(out: &mut String, b: &Bare) {
    match b {
        Bare::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Bare::Decimal(d) => out.push_str(d),
        Bare::Str(s) => {
            out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        Bare::Token(t) => out.push_str(t),
        Bare::Bytes(bytes) => {
            out.push(':');
            out.push_str(&STRICT_B64.encode(bytes));
            out.push(':');
        }
        Bare::Bool(v) => out.push_str(if *v { "?1" } else { "?0" }),
    }
}

fn write_params(out: &mut String, params: &Params) {
    for (k, v) in params {
        out.push(';');
        out.push_str(k);
        if *v != Bare::Bool(true) {
            out.push('=');
            write_bare(out, v);
        }
    }
}

/// Canonical serialization of an inner list with parameters (RFC 8941 §4.1.1.1): the value of
/// `@signature-params`.
pub(crate) fn serialize_inner_list(items: &[(Bare, Params)], params: &Params) -> String {
    let mut out = String::from("(");
    for (n, (b, p)) in items.iter().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        write_bare(&mut out, b);
        write_params(&mut out, p);
    }
    out.push(')');
    write_params(&mut out, params);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signature_input_and_reserializes_canonically() {
        let d = parse_dictionary(
            r#"sig1=("@method" "@authority" "content-digest");created=1618884473;keyid="test-key-ed25519" ,  other=?0"#,
        )
        .unwrap_or_default();
        assert_eq!(d.len(), 2);
        let Some((_, Member::Inner(items, params))) = d.first() else {
            panic!("inner list expected: {d:?}");
        };
        assert_eq!(
            serialize_inner_list(items, params),
            r#"("@method" "@authority" "content-digest");created=1618884473;keyid="test-key-ed25519""#
        );
        assert_eq!(
            d.get(1).map(|m| &m.1),
            Some(&Member::Item(Bare::Bool(false), Vec::new()))
        );
    }

    #[test]
    fn byte_sequences_and_rejections() {
        let d = parse_dictionary("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
            .unwrap_or_default();
        assert!(
            matches!(d.first(), Some((k, Member::Item(Bare::Bytes(b), _))) if k == "sha-256" && b.len() == 32)
        );
        for bad in [
            "a=(",
            "a=\"unterminated",
            "A=1",
            "a=1,",
            "a=1 b=2",
            "a=:!!:",
            "a=1234567890123456",
            "a=1.2345",
            "a=\"\\x\"",
            "a=?2",
            "a=(1 2",
            "a=(1;)",
        ] {
            assert_eq!(parse_dictionary(bad), None, "{bad}");
        }
        assert_eq!(
            parse_dictionary("a=1.50, b=-0.0, c=tok/en:x, d;p"),
            Some(alloc::vec![
                (
                    String::from("a"),
                    Member::Item(Bare::Decimal(String::from("1.5")), Vec::new())
                ),
                (
                    String::from("b"),
                    Member::Item(Bare::Decimal(String::from("-0.0")), Vec::new())
                ),
                (
                    String::from("c"),
                    Member::Item(Bare::Token(String::from("tok/en:x")), Vec::new())
                ),
                (
                    String::from("d"),
                    Member::Item(
                        Bare::Bool(true),
                        alloc::vec![(String::from("p"), Bare::Bool(true))]
                    )
                ),
            ])
        );
    }
}
