//! RFC 3339 timestamps without `std` or a date library.

use alloc::string::String;
use core::fmt::Write as _;

use crate::time::Instant;

/// 9999-12-31T23:59:59Z, the last second RFC 3339's four-digit year can name.
const MAX_SECS: u64 = 253_402_300_799;

/// Proleptic-Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`, restricted to non-negative days).
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + u64::from(month <= 2);
    // Both are small by construction (see the ranges above).
    (year, month as u32, day as u32)
}

/// Formats `t` as RFC 3339 in UTC: `2024-05-06T07:08:09Z`, or with six fractional digits when
/// `t` is not on a whole second (`…:09.250000Z`). Instants after 9999-12-31T23:59:59.999999Z
/// (which RFC 3339 cannot write) are clamped to it.
#[must_use]
pub fn rfc3339(t: Instant) -> String {
    let (secs, micros) = if t.as_secs() > MAX_SECS {
        (MAX_SECS, 999_999)
    } else {
        (t.as_secs(), t.as_micros() % 1_000_000)
    };
    let (y, mo, d) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3_600, rem % 3_600 / 60, rem % 60);
    let mut out = String::with_capacity(27);
    // Writing to a String cannot fail.
    let _ = write!(out, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    out.push('Z');
    out
}

fn digits(b: &[u8], from: usize, n: usize) -> Option<u32> {
    let slice = b.get(from..from + n)?;
    slice.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Whether `s` is an RFC 3339 `date-time` (`2024-05-06T07:08:09.123+02:00`, `…Z`), checking
/// field ranges and days per month. Leap seconds (`:60`) are allowed, as the grammar allows.
#[must_use]
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        digits(b, 0, 4),
        digits(b, 5, 2),
        digits(b, 8, 2),
        digits(b, 11, 2),
        digits(b, 14, 2),
        digits(b, 17, 2),
    ) else {
        return false;
    };
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return false;
    }
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return false;
    }
    let mut i = 19;
    if sep(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            matches!((digits(b, i + 1, 2), digits(b, i + 4, 2)), (Some(oh), Some(om)) if oh <= 23 && om <= 59)
                && sep(i + 3, b":")
                && i + 6 == b.len()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(Instant::EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(Instant::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(Instant::from_secs(1_614_556_800)),
            "2021-03-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(Instant::from_micros(1_700_000_000_250_000)),
            "2023-11-14T22:13:20.250000Z"
        );
        assert_eq!(
            rfc3339(Instant::from_secs(4_107_542_399)),
            "2100-02-28T23:59:59Z"
        );
        assert_eq!(
            rfc3339(Instant::from_secs(4_107_542_400)),
            "2100-03-01T00:00:00Z"
        );
        assert_eq!(rfc3339(Instant::MAX), "9999-12-31T23:59:59.999999Z");
        assert_eq!(
            rfc3339(Instant::from_secs(MAX_SECS)),
            "9999-12-31T23:59:59Z"
        );
    }

    #[test]
    fn every_day_round_trips_through_the_validator() {
        // One instant per day for 1970..2110 plus odd offsets: formatted output must validate
        // and days must advance monotonically.
        let mut last = String::new();
        for day in 0..51_000u64 {
            let s = rfc3339(Instant::from_secs(day * 86_400 + 3_723));
            assert!(is_rfc3339(&s), "{s}");
            assert!(s > last, "{s} after {last}");
            last = s;
        }
    }

    #[test]
    fn validator_rejects_bad_shapes() {
        for ok in [
            "2021-12-11T22:25:10.000000Z",
            "2022-11-03T20:26:10.344522Z",
            "2024-02-29T23:59:60+14:00",
            "2024-01-01t00:00:00z",
            "2024-01-01T00:00:00-05:30",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0500",
            "2024-01-01T00:00:00Zjunk",
            "2013-12-03 17:23:34 UTC",
            "２０２４-01-01T00:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
