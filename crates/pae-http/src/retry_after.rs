//! `Retry-After`: a number of seconds or an HTTP date, read with the
//! `httpdate` crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Parses an HTTP `Retry-After` value: a number of seconds or an HTTP date
/// in any of the three forms RFC 9110 (section 5.6.7) says recipients must
/// accept (IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete
/// RFC 850 form `Sunday, 06-Nov-94 08:49:37 GMT` and C's asctime form
/// `Sun Nov  6 08:49:37 1994`), relative to `now`. A date in the past is a
/// zero wait; anything unparseable is `None`.
///
/// Adapters use it to fill [`ProviderError::Http::retry_after`](pae_core::ProviderError::Http).
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use pae_http::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_767); // 08:49:27 GMT
/// assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
/// assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(10)));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = parse_http_date(value)?;
    // Whole seconds, as the dates have: a date in the past is no wait.
    let at = at.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// The wait a response asks for in its `Retry-After` header, from now.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, SystemTime::now()))
}

const SHORT_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// An HTTP date in any of RFC 9110's three forms. `httpdate` also checks
/// the day name against the date; a recipient need not (the date says
/// when), so a date whose day name is wrong is read with the right one.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    if let Ok(at) = httpdate::parse_http_date(value) {
        return Some(at);
    }
    let cut = value.find([',', ' '])?;
    let (day, rest) = value.split_at(cut);
    let names: &[&str] = match day.len() {
        3 if SHORT_DAYS.contains(&day) => &SHORT_DAYS,
        _ if LONG_DAYS.contains(&day) => &LONG_DAYS,
        _ => return None,
    };
    names
        .iter()
        .filter(|name| **name != day)
        .find_map(|name| httpdate::parse_http_date(&format!("{name}{rest}")).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let check = |value: &str, expect: Option<Duration>| {
            assert_eq!(parse_retry_after(value, now), expect, "{value:?}");
        };
        check("0", Some(Duration::ZERO));
        check(" 120 ", Some(Duration::from_secs(120)));
        check("1.5", Some(Duration::from_millis(1500)));
        check("-1", None);
        check("NaN", None);
        check("Sun, 06 Nov 1994 08:49:37 GMT", Some(Duration::ZERO));
        check(
            "Sun, 06 Nov 1994 08:50:37 GMT",
            Some(Duration::from_secs(60)),
        );
        check(
            "Mon, 07 Nov 1994 08:49:37 GMT",
            Some(Duration::from_secs(86_400)),
        );
        check(
            "Sat, 29 Feb 2000 00:00:00 GMT",
            Some(Duration::from_secs(951_782_400 - 784_111_777)),
        );
        check(
            "Sunday, 06-Nov-94 08:50:37 GMT",
            Some(Duration::from_secs(60)),
        );
        check("Sun Nov  6 08:50:37 1994", Some(Duration::from_secs(60)));
        check("Sun, 06 Nov 1994 08:49:37 PST", None);
        check("Sunday, 06-Nov-94 08:49:37 PST", None);
        check("Sun Nov  6 08:49:37", None);
        check("Sun, 06 Nov 1994 08:49:37:12 GMT", None);
        check("Sun, 06 Foo 1994 08:49:37 GMT", None);
        check("", None);
        check("tomorrow", None);
    }

    #[test]
    fn a_wrong_day_name_does_not_hide_the_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        for value in [
            "Mon, 06 Nov 1994 08:50:37 GMT",
            "Monday, 06-Nov-94 08:50:37 GMT",
            "Mon Nov  6 08:50:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(value, now),
                Some(Duration::from_secs(60)),
                "{value:?}"
            );
        }
        assert_eq!(
            parse_retry_after("Xyz, 06 Nov 1994 08:50:37 GMT", now),
            None
        );
    }

    #[test]
    fn the_header_is_read_from_now() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(3500) && wait <= Duration::from_secs(3600));
    }
}
