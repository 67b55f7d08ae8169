//! [`http_date`]: times as HTTP dates, for `Retry-After` headers.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `time` as an HTTP date (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37
/// GMT`), for `Retry-After` headers in tests. Times before 1970 give the
/// epoch.
pub fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time.max(UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn http_dates_round_trip_through_core_parsing() {
        let check = |secs: u64, expect: &str| {
            assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(secs)), expect);
        };
        check(0, "Thu, 01 Jan 1970 00:00:00 GMT");
        check(784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT");
        check(951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT");
        check(4_102_444_799, "Thu, 31 Dec 2099 23:59:59 GMT");
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = http_date(now + Duration::from_secs(90));
        assert_eq!(
            pae_http::parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
    }
}
