//! RFC 3339 UTC formatting of nanosecond timestamps (no time-zone database needed).

use meshflow_engine::ledger::time::civil_from_days;

/// `2026-06-01T12:00:00.123456789Z` for a timestamp in ns since the Unix epoch.
pub fn rfc3339_ns(timestamp_ns: u64) -> String {
    let secs = timestamp_ns / 1_000_000_000;
    let nanos = timestamp_ns % 1_000_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // Proves the civil-date conversion on the epoch, a leap day and a recent date.
        assert_eq!(rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_ns(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(
            rfc3339_ns(1_780_315_200_123_456_789),
            "2026-06-01T12:00:00.123456789Z"
        );
    }
}
