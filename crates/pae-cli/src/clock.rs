//! A fixed "now" for the `time` tool (`--now` / `PAE_NOW`): RFC 3339
//! timestamps read into a `SystemTime`; and stored times printed as UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pae_executor::tools::CurrentTime;

/// The `time` tool for a run: the system clock, or stopped at `now`
/// (a `--now` value). The planner asks the same tool for the date.
pub(crate) fn time_tool(now: Option<&str>) -> Result<CurrentTime, String> {
    match now {
        Some(now) => parse_rfc3339(now).map(CurrentTime::frozen_at),
        None => Ok(CurrentTime::new()),
    }
}

/// Checks a `--now` value; the flag keeps the text (it is stored with the
/// run) and [`parse_rfc3339`] reads it when the tool is made.
pub(crate) fn parse_rfc3339_flag(text: &str) -> Result<String, String> {
    parse_rfc3339(text).map(|_| text.trim().to_owned())
}

/// `YYYY-MM-DDTHH:MM:SS` (a space for `T`, optional fraction) followed by
/// `Z` or `±HH:MM`, as a time after 1970.
pub(crate) fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time like 2026-03-14T10:00:00Z");
    let text = text.trim();
    let (date, rest) = text.split_at_checked(10).ok_or_else(bad)?;
    let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(bad)?;
    let (time, zone) = match rest.find(['Z', 'z', '+', '-']) {
        Some(at) => rest.split_at(at),
        None => return Err(bad()),
    };
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>());
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day)), None) = (
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
    ) else {
        return Err(bad());
    };
    let time = time.split('.').next().unwrap_or(time);
    let mut time_parts = time.split(':').map(|p| p.parse::<i64>());
    let (Some(Ok(hour)), Some(Ok(minute)), Some(Ok(second)), None) = (
        time_parts.next(),
        time_parts.next(),
        time_parts.next(),
        time_parts.next(),
    ) else {
        return Err(bad());
    };
    let offset_minutes = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':').ok_or_else(bad)?;
            let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if h > 18 || m > 59 {
                return Err(bad());
            }
            sign * (h * 60 + m)
        }
    };
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..61).contains(&second);
    if !valid {
        return Err(bad());
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_minutes * 60;
    let seconds = u64::try_from(seconds).map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// A time in milliseconds since the epoch as `YYYY-MM-DD HH:MM:SSZ`.
pub(crate) fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = i64::try_from(days).unwrap_or_default() + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> u64 {
        parse_rfc3339(text)
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_796_550_600_000), "2026-12-06 09:50:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00Z");
    }

    #[test]
    fn times_parse() {
        assert_eq!(secs("2026-03-14T10:00:00Z"), 1_773_482_400);
        assert_eq!(secs("2026-03-14 11:00:00.250+01:00"), 1_773_482_400);
        assert_eq!(secs("1970-01-01T00:00:00Z"), 0);
        for bad in [
            "",
            "2026-03-14",
            "2026-13-01T00:00:00Z",
            "2026-03-14T10:00:00",
            "x",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
