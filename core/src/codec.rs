//! A tiny length-prefixed binary codec shared by snapshots and cache entries.
//! Reading never panics: every read is bounds-checked and returns `None` past the end.

use alloc::string::String;
use alloc::vec::Vec;

/// Appends values to a buffer.
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer with room for `n` bytes.
    #[must_use]
    pub fn with_capacity(n: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    /// Raw bytes, no length.
    pub fn bytes_raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// LEB128 unsigned varint.
    pub fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(b);
                return;
            }
            self.buf.push(b | 0x80);
        }
    }
    /// An f64, little-endian bits.
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    /// Length-prefixed UTF-8.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// A count then string pairs.
    pub fn pairs(&mut self, p: &[(String, String)]) {
        self.varint(p.len() as u64);
        for (a, b) in p {
            self.str(a);
            self.str(b);
        }
    }
    /// The encoded bytes.
    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads values back; `None` on truncation or malformed data.
pub struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `b`.
    #[must_use]
    pub fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b }
    }
    /// Whether everything was read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    /// `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    /// A varint (at most 10 bytes; overlong or overflowing encodings are refused).
    pub fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// An f64.
    pub fn f64(&mut self) -> Option<f64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(f64::from_bits(u64::from_le_bytes(a)))
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }
    /// Length-prefixed UTF-8.
    pub fn str(&mut self) -> Option<String> {
        core::str::from_utf8(self.bytes()?).ok().map(String::from)
    }
    /// A count then string pairs; the count is checked against what is left.
    pub fn pairs(&mut self) -> Option<Vec<(String, String)>> {
        let n = usize::try_from(self.varint()?).ok()?;
        if n > self.b.len() {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let a = self.str()?;
            let b = self.str()?;
            out.push((a, b));
        }
        Some(out)
    }
}

/// `v` as 16 lowercase hex digits.
///
/// All sixteen digits at once: the nibbles are spread one to a byte and turned into digits with
/// a few word operations, instead of sixteen table lookups.
#[must_use]
pub fn hex16(v: u64) -> [u8; 16] {
    let spread = |half: u32| {
        let mut x = u64::from(half);
        x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
        x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
        x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
        // 0x30 + n for n < 10, 0x61 + (n - 10) above: add 0x27 where n >= 10
        let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
        (x + 0x3030_3030_3030_3030 + letters * 0x27).to_be_bytes()
    };
    let (hi, lo) = (spread((v >> 32) as u32), spread(v as u32));
    let mut digits = [0u8; 16];
    digits[..8].copy_from_slice(&hi);
    digits[8..].copy_from_slice(&lo);
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex16_matches_the_formatter() {
        let mut r = crate::rng::Rng::seed(7);
        let mut values = alloc::vec![0, 1, 9, 10, 15, 16, u64::MAX, 0x0123_4567_89ab_cdef];
        values.extend((0..1000).map(|_| r.next_u64()));
        for v in values {
            let digits = hex16(v);
            assert_eq!(
                core::str::from_utf8(&digits),
                Ok(alloc::format!("{v:016x}").as_str())
            );
        }
    }

    #[test]
    fn varints_round_trip_and_refuse_overflow() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut w = Writer::with_capacity(10);
            w.varint(v);
            let b = w.finish();
            assert_eq!(Reader::new(&b).varint(), Some(v));
        }
        assert_eq!(Reader::new(&[0xff; 10]).varint(), None);
        assert_eq!(Reader::new(&[0x80]).varint(), None);
        assert_eq!(Reader::new(&[0x05, b'a']).bytes(), None);
    }
}
