//! Header bytes as text without a second validation pass.
//!
//! The HTTP/1.1 parser has already checked every header value byte (tab, space, visible
//! ASCII or obs-text); what is left to decide is whether the bytes are text. For the ASCII
//! values that almost every header carries, `is_ascii` (a word at a time) settles it and full
//! UTF-8 validation would only repeat the work: about 500 instructions per proxied request
//! (callgrind). Anything else goes through the standard, checked path.
//!
//! With [`crate::alloc`], the only module of the crate with `unsafe` code.
#![allow(unsafe_code)]

/// `v` as a `&str` when every byte is ASCII; `None` otherwise.
#[must_use]
pub fn ascii_str(v: &[u8]) -> Option<&str> {
    if v.is_ascii() {
        // SAFETY: every byte is below 0x80, and ASCII is valid UTF-8
        Some(unsafe { std::str::from_utf8_unchecked(v) })
    } else {
        None
    }
}

/// `v` as an owned `String`: as it is when it is ASCII, else decoded (invalid UTF-8 replaced
/// by U+FFFD).
#[must_use]
pub fn to_text(v: &[u8]) -> String {
    match ascii_str(v) {
        Some(s) => s.to_owned(),
        None => String::from_utf8_lossy(v).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ASCII (every byte value below 0x80, at every position of short and long values) is
    /// taken as it is; anything else is not, and `to_text` then decodes it as UTF-8.
    #[test]
    fn ascii_only_is_taken_unchecked() {
        for len in 0..40usize {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'x'; len];
                    v[at] = b;
                    assert_eq!(ascii_str(&v).is_some(), b < 0x80, "{v:?}");
                    assert_eq!(to_text(&v), String::from_utf8_lossy(&v), "{v:?}");
                }
            }
        }
        assert_eq!(ascii_str(b"gzip, br"), Some("gzip, br"));
        assert_eq!(to_text("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(to_text(b"a\xffb"), "a\u{fffd}b");
    }
}
