//! Secret values: redacted in `Debug`/`Display`, compared in constant time.

use alloc::string::String;
use core::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A resolved secret. It never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (trailing CR/LF trimmed, as files usually end with one).
    #[must_use]
    pub fn new(value: impl Into<String>) -> Secret {
        let mut s: String = value.into();
        while s.ends_with(['\n', '\r']) {
            s.pop();
        }
        Secret(s)
    }
    /// The value, for building a header or a MAC. Do not log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Constant-time equality with a presented value (length leaks only via the SHA-256
    /// pre-hash, which has a fixed length).
    #[must_use]
    pub fn matches(&self, presented: &[u8]) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(presented);
        a.ct_eq(&b).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Constant-time check of a presented API key against SHA-256 digests. Every digest is compared
/// (no early exit) so timing does not reveal which one matched.
#[must_use]
pub fn key_matches(presented: &[u8], digests: &[[u8; 32]]) -> bool {
    let d = Sha256::digest(presented);
    let mut any = subtle::Choice::from(0);
    for h in digests {
        any |= d.as_slice().ct_eq(h);
    }
    any.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn redacted_and_constant_time_match() {
        let s = Secret::new("hunter2\n");
        assert_eq!(format!("{s:?} {s}"), "Secret(<redacted>) <redacted>");
        assert_eq!(s.expose(), "hunter2");
        assert!(s.matches(b"hunter2"));
        assert!(!s.matches(b"hunter3"));
        assert!(!s.matches(b""));
        let d: [u8; 32] = Sha256::digest(b"k1").into();
        assert!(key_matches(b"k1", &[[0; 32], d]));
        assert!(!key_matches(b"k2", &[[0; 32], d]));
        assert!(!key_matches(b"k1", &[]));
    }
}
