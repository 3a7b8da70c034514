//! Time formatting: RFC 3339 UTC from Unix time, without a calendar dependency.

use crate::capture::Nanos;

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2026-11-22T00:32:13Z`
pub fn rfc3339_secs(secs: i64) -> String {
    let mut out = String::with_capacity(20);
    push_date_time(&mut out, secs);
    out.push('Z');
    out
}

/// `2026-11-22T00:32:13.123456Z` (microseconds, as tcpdump prints them).
pub fn rfc3339_nanos(ts: Nanos) -> String {
    let secs = ts.div_euclid(1_000_000_000);
    let micros = ts.rem_euclid(1_000_000_000) / 1000;
    let mut out = String::with_capacity(27);
    push_date_time(&mut out, secs);
    out.push('.');
    push_padded(&mut out, micros, 6);
    out.push('Z');
    out
}

/// `2026-11-22T00:32:13`, written digit by digit (once per connection: `format!` was a tenth
/// of summarising one).
fn push_date_time(out: &mut String, secs: i64) {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    if (0..=9999).contains(&y) {
        push_padded(out, y, 4);
    } else {
        out.push_str(&format!("{y:04}"));
    }
    for (sep, v) in [
        ('-', i64::from(m)),
        ('-', i64::from(d)),
        ('T', s / 3600),
        (':', (s / 60) % 60),
        (':', s % 60),
    ] {
        out.push(sep);
        push_padded(out, v, 2);
    }
}

/// `v` (0 <= v < 10^width) in `width` digits, zero-padded.
fn push_padded(out: &mut String, v: i64, width: u32) {
    let mut div = 10i64.pow(width.saturating_sub(1));
    while div > 0 {
        out.push(char::from(b'0' + (v / div % 10) as u8));
        div /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_secs(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_secs(1_795_307_533), "2026-11-22T00:32:13Z");
        assert_eq!(rfc3339_nanos(1_500_000_000), "1970-01-01T00:00:01.500000Z");
        assert_eq!(rfc3339_nanos(-1_000), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            rfc3339_nanos(1_795_307_533_000_123_999),
            "2026-11-22T00:32:13.000123Z"
        );
        assert_eq!(rfc3339_secs(253_402_300_800), "10000-01-01T00:00:00Z");
        assert_eq!(rfc3339_secs(-62_198_755_200), "-001-01-01T00:00:00Z");
    }
}
