//! ISO 8601 UTC timestamps in the reference's form (`2026-06-01T12:00:00.123456+00:00`, as
//! Python's `datetime.isoformat()` writes them), computed from the system clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as ISO 8601 UTC with microseconds.
pub fn now_iso8601() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    iso8601_from_micros(
        i64::try_from(since.as_secs()).unwrap_or(0),
        since.subsec_micros(),
    )
}

/// `secs` since the Unix epoch plus `micros`, as ISO 8601 UTC.
pub fn iso8601_from_micros(secs: i64, micros: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian; H. Hinnant's
/// algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants_like_python_isoformat() {
        assert_eq!(
            iso8601_from_micros(0, 0),
            "1970-01-01T00:00:00.000000+00:00"
        );
        // datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=timezone.utc).timestamp() == 1780315200
        assert_eq!(
            iso8601_from_micros(1_780_315_200, 123_456),
            "2026-06-01T12:00:00.123456+00:00"
        );
        // 2024-02-29 (a leap day) 23:59:59 UTC
        assert_eq!(
            iso8601_from_micros(1_709_251_199, 1),
            "2024-02-29T23:59:59.000001+00:00"
        );
    }
}
