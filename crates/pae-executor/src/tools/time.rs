//! [`CurrentTime`]: the current date and time from the system clock, in UTC
//! or at a fixed offset; no network, no time-zone database.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pae_core::{Tool, ToolError};
use serde_json::{Value, json};

use super::calendar::{Date, MONTHS, WEEKDAYS, parse_date};

/// Tells the current date and time.
///
/// Input (all optional): `utc_offset` such as `"+02:00"`, `"-0530"`, `"Z"`
/// or `"UTC"`; `format`, a strftime-like pattern with `%Y %m %d %H %M %S
/// %j %A %a %B %b %z %Z %s %%`; `until`, a date (`2026-12-25`, or `12-25`
/// and `December 25` for its next occurrence), to also count the days from
/// today to it. The default output is RFC 3339 with the weekday, for
/// example `2025-03-14T15:09:26+01:00 (Friday)`; with `until` it goes on
/// with `; 2025-12-25 (Thursday) is 286 days from today`.
///
/// Without a time-zone database the tool knows offsets, not zone names:
/// the default offset is UTC unless set with
/// [`with_default_offset_minutes`](Self::with_default_offset_minutes).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use pae_executor::tools::CurrentTime;
///
/// let clock = CurrentTime::frozen_at(UNIX_EPOCH + Duration::from_secs(1_710_428_966));
/// assert_eq!(clock.now_formatted(None, None).unwrap(), "2024-03-14T15:09:26Z (Thursday)");
/// assert_eq!(clock.now_formatted(Some("+01:00"), Some("%d.%m.%Y %H:%M")).unwrap(), "14.03.2024 16:09");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CurrentTime {
    frozen: Option<SystemTime>,
    default_offset_minutes: i32,
}

/// The largest offset accepted (UTC-14:00 to UTC+14:00 are used on Earth;
/// allow a little more).
const MAX_OFFSET_MINUTES: i32 = 18 * 60;

impl CurrentTime {
    /// The tool's name: `current_time`.
    pub const NAME: &'static str = "current_time";

    /// A tool that reads the system clock, reporting UTC by default.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tool whose clock is stopped at `time` (for tests and replays).
    pub fn frozen_at(time: SystemTime) -> Self {
        Self {
            frozen: Some(time),
            default_offset_minutes: 0,
        }
    }

    /// Sets the offset used when the input names none, in minutes east of
    /// UTC (clamped to ±18 hours).
    #[must_use]
    pub fn with_default_offset_minutes(mut self, minutes: i32) -> Self {
        self.default_offset_minutes = minutes.clamp(-MAX_OFFSET_MINUTES, MAX_OFFSET_MINUTES);
        self
    }

    /// The current time at `offset` (or the default offset), in `format`
    /// (or RFC 3339 with the weekday). A format without any `%` code (a
    /// name like `"full_date"` or `"YYYY-MM-DD"`, as small models write)
    /// gives that default form too: it holds every field they ask for.
    ///
    /// # Errors
    /// [`ToolError::InvalidInput`] for an offset or format the tool does not
    /// understand; [`ToolError::Failed`] if the clock is before 1970.
    pub fn now_formatted(
        &self,
        offset: Option<&str>,
        format: Option<&str>,
    ) -> Result<String, ToolError> {
        let offset_minutes = match offset {
            Some(text) => parse_offset(text)?,
            None => self.default_offset_minutes,
        };
        let now = self.frozen.unwrap_or_else(SystemTime::now);
        let seconds = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ToolError::failed("the system clock is set before 1970"))?
            .as_secs();
        let seconds = i64::try_from(seconds)
            .map_err(|_| ToolError::failed("the system clock is out of range"))?;
        let local = seconds + i64::from(offset_minutes) * 60;
        let civil = Civil::from_unix(local);
        match format.filter(|pattern| pattern.contains('%')) {
            None => Ok(format!(
                "{}-{:02}-{:02}T{:02}:{:02}:{:02}{} ({})",
                civil.year,
                civil.month,
                civil.day,
                civil.hour,
                civil.minute,
                civil.second,
                offset_text(offset_minutes, true),
                WEEKDAYS[civil.weekday]
            )),
            Some(pattern) => format_with(pattern, &civil, offset_minutes, seconds),
        }
    }
}

impl CurrentTime {
    /// How many days from today (at `offset`, or the default offset) to
    /// `until`, in words: `2026-12-25 (Friday) is 286 days from today`,
    /// `... was 3 days ago`, `... is today`.
    ///
    /// # Errors
    /// [`ToolError::InvalidInput`] for an offset or a date the tool does
    /// not understand; [`ToolError::Failed`] if the clock is before 1970.
    pub fn days_until(&self, offset: Option<&str>, until: &str) -> Result<String, ToolError> {
        let offset_minutes = match offset {
            Some(text) => parse_offset(text)?,
            None => self.default_offset_minutes,
        };
        let seconds = self
            .frozen
            .unwrap_or_else(SystemTime::now)
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ToolError::failed("the system clock is set before 1970"))?
            .as_secs();
        let seconds = i64::try_from(seconds)
            .map_err(|_| ToolError::failed("the system clock is out of range"))?;
        let civil = Civil::from_unix(seconds + i64::from(offset_minutes) * 60);
        let today = Date {
            year: civil.year,
            month: civil.month,
            day: civil.day,
        };
        let date = parse_date(until, today)?;
        let days = date.days() - today.days();
        let named = format!(
            "{}-{:02}-{:02} ({})",
            date.year,
            date.month,
            date.day,
            WEEKDAYS[date.weekday()]
        );
        Ok(match days {
            0 => format!("{named} is today"),
            1 => format!("{named} is 1 day from today"),
            -1 => format!("{named} was 1 day ago"),
            d if d > 0 => format!("{named} is {d} days from today"),
            d => format!("{named} was {} days ago", -d),
        })
    }
}

#[async_trait]
impl Tool for CurrentTime {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn description(&self) -> &str {
        // No example values: small models copy them into every call (a
        // copied "%Y-%m-%d" format loses the weekday they were asked for).
        "Returns today's date, the time and the weekday in UTC; only for what depends on today. \
Call it with no input, or give `until` a date to also get the number of days from today to it; \
give a UTC offset or a format only when the step names one."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "utc_offset": {
                    "type": "string",
                    "description": "Offset from UTC as +HH:MM or -HH:MM; leave out for UTC.",
                    "maxLength": 6
                },
                "format": {
                    "type": "string",
                    "description": "Leave this out: the answer then has the date, the time and the weekday. Give it only when the step asks for a custom layout, written with % codes.",
                    "maxLength": 64
                },
                "until": {
                    "type": "string",
                    "description": "A date as YYYY-MM-DD, or MM-DD for its next occurrence: the answer then also says how many days from today to it.",
                    "maxLength": 32
                }
            },
            "additionalProperties": false
        })
    }

    async fn call(&self, input: Value) -> Result<String, ToolError> {
        let field = |name: &str| match input.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(ToolError::invalid_input(format!(
                "{name} must be a string, got {other}"
            ))),
        };
        let now = self.now_formatted(field("utc_offset")?, field("format")?)?;
        match field("until")? {
            None => Ok(now),
            Some(until) => Ok(format!(
                "{now}; {}",
                self.days_until(field("utc_offset")?, until)?
            )),
        }
    }

    fn is_read_only(&self) -> bool {
        true
    }
}

/// Parses `Z`, `UTC`, `GMT`, `+HH`, `+HH:MM`, `+HHMM` (also with a `UTC`
/// prefix: `UTC+2`), and an unsigned zero (`0`, `00:00`). Other unsigned
/// numbers are refused: `5` may mean +05:00 or -05:00.
fn parse_offset(text: &str) -> Result<i32, ToolError> {
    let bad = || {
        ToolError::invalid_input(format!(
            "{text:?} is not a UTC offset (write it like \"+02:00\", \"-05:30\" or \"Z\")"
        ))
    };
    let mut s = text.trim();
    for prefix in ["UTC", "utc", "GMT", "gmt"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.trim_start();
        }
    }
    let zero = !s.is_empty() && s.bytes().all(|b| b == b'0' || b == b':');
    if s.is_empty() || s == "Z" || s == "z" || zero {
        return Ok(0);
    }
    let (sign, digits) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (hours, minutes) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "0"),
    };
    let all_digits = |part: &str| {
        !part.is_empty() && part.len() <= 2 && part.bytes().all(|b| b.is_ascii_digit())
    };
    if !all_digits(hours) || !all_digits(minutes) {
        return Err(bad());
    }
    let hours: i32 = hours.parse().map_err(|_| bad())?;
    let minutes: i32 = minutes.parse().map_err(|_| bad())?;
    if minutes >= 60 {
        return Err(bad());
    }
    let total = sign * (hours * 60 + minutes);
    if total.abs() > MAX_OFFSET_MINUTES {
        return Err(ToolError::invalid_input(format!(
            "the offset {text:?} is more than 18 hours from UTC"
        )));
    }
    Ok(total)
}

fn offset_text(minutes: i32, z_for_utc: bool) -> String {
    if minutes == 0 && z_for_utc {
        return String::from("Z");
    }
    let sign = if minutes < 0 { '-' } else { '+' };
    let abs = minutes.abs();
    format!("{sign}{:02}:{:02}", abs / 60, abs % 60)
}

/// A calendar date and time of day (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Monday.
    weekday: usize,
    /// 1-based day of the year.
    ordinal: u32,
}

impl Civil {
    /// Converts seconds since 1970-01-01T00:00:00 (at some offset) to a
    /// civil date and time, with Howard Hinnant's days-from-civil inverse.
    fn from_unix(seconds: i64) -> Self {
        let days = seconds.div_euclid(86_400);
        let of_day = seconds.rem_euclid(86_400);
        let Date { year, month, day } = Date::from_days(days);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const BEFORE_MONTH: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        // Bounded by construction (of_day < 86400): the conversions below
        // cannot truncate.
        let ordinal = BEFORE_MONTH[(month - 1) as usize] + day + u32::from(leap && month > 2);
        Self {
            year,
            month,
            day,
            hour: (of_day / 3600) as u32,
            minute: (of_day % 3600 / 60) as u32,
            second: (of_day % 60) as u32,
            // 1970-01-01 was a Thursday (index 3).
            weekday: (days + 3).rem_euclid(7) as usize,
            ordinal,
        }
    }
}

fn format_with(
    pattern: &str,
    civil: &Civil,
    offset_minutes: i32,
    unix: i64,
) -> Result<String, ToolError> {
    if pattern.chars().count() > 200 {
        return Err(ToolError::invalid_input(
            "the format is longer than 200 characters",
        ));
    }
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            return Err(ToolError::invalid_input("the format ends with a lone '%'"));
        };
        match spec {
            'Y' => out.push_str(&civil.year.to_string()),
            'm' => out.push_str(&format!("{:02}", civil.month)),
            'd' => out.push_str(&format!("{:02}", civil.day)),
            'H' => out.push_str(&format!("{:02}", civil.hour)),
            'M' => out.push_str(&format!("{:02}", civil.minute)),
            'S' => out.push_str(&format!("{:02}", civil.second)),
            'j' => out.push_str(&format!("{:03}", civil.ordinal)),
            'A' => out.push_str(WEEKDAYS[civil.weekday]),
            'a' => out.push_str(&WEEKDAYS[civil.weekday][..3]),
            'B' => out.push_str(MONTHS[(civil.month - 1) as usize]),
            'b' => out.push_str(&MONTHS[(civil.month - 1) as usize][..3]),
            'z' => out.push_str(&offset_text(offset_minutes, false).replace(':', "")),
            'Z' => out.push_str(&format!("UTC{}", offset_text(offset_minutes, false))),
            's' => out.push_str(&unix.to_string()),
            '%' => out.push('%'),
            other => {
                return Err(ToolError::invalid_input(format!(
                    "%{other} is not supported (use %Y %m %d %H %M %S %j %A %a %B %b %z %Z %s %%)"
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64) -> CurrentTime {
        CurrentTime::frozen_at(UNIX_EPOCH + Duration::from_secs(seconds))
    }

    #[test]
    fn civil_dates() {
        assert_eq!(
            Civil::from_unix(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                weekday: 3,
                ordinal: 1
            }
        );
        // 2000-02-29T12:34:56Z, a Tuesday, day 60 of a leap year.
        let leap = Civil::from_unix(951_827_696);
        assert_eq!(
            (leap.year, leap.month, leap.day, leap.weekday, leap.ordinal),
            (2000, 2, 29, 1, 60)
        );
        assert_eq!((leap.hour, leap.minute, leap.second), (12, 34, 56));
        // 2023-12-31T23:59:59Z, a Sunday, day 365.
        let eoy = Civil::from_unix(1_704_067_199);
        assert_eq!(
            (eoy.year, eoy.month, eoy.day, eoy.weekday, eoy.ordinal),
            (2023, 12, 31, 6, 365)
        );
        // Before 1970 at a negative offset.
        let before = Civil::from_unix(-1);
        assert_eq!(
            (before.year, before.month, before.day, before.hour),
            (1969, 12, 31, 23)
        );
    }

    #[test]
    fn offsets_and_formats() {
        let tool = at(1_710_428_966);
        assert_eq!(
            tool.now_formatted(Some("-05:30"), None).unwrap(),
            "2024-03-14T09:39:26-05:30 (Thursday)"
        );
        assert_eq!(
            tool.now_formatted(Some("UTC+2"), Some("%H:%M %z %Z"))
                .unwrap(),
            "17:09 +0200 UTC+02:00"
        );
        assert_eq!(
            tool.now_formatted(Some("+0930"), Some("%a %b %j %s %%"))
                .unwrap(),
            "Fri Mar 075 1710428966 %"
        );
        assert_eq!(
            tool.now_formatted(Some("Z"), Some("%A %B")).unwrap(),
            "Thursday March"
        );
        let shifted = tool.with_default_offset_minutes(60);
        assert_eq!(shifted.now_formatted(None, Some("%H")).unwrap(), "16");
        for zero in ["0", "00:00", "+0", "UTC+0"] {
            assert_eq!(
                tool.now_formatted(Some(zero), None).unwrap(),
                "2024-03-14T15:09:26Z (Thursday)",
                "{zero}"
            );
        }
        for name in ["full_date", "YYYY-MM-DD", ""] {
            assert_eq!(
                tool.now_formatted(None, Some(name)).unwrap(),
                "2024-03-14T15:09:26Z (Thursday)",
                "{name}"
            );
        }
    }

    #[test]
    fn bad_offsets_and_formats_are_invalid_input() {
        let tool = at(0);
        for offset in ["+25:00", "5", "+1:75", "Europe/Paris", "+1a", "++1"] {
            assert!(
                matches!(
                    tool.now_formatted(Some(offset), None),
                    Err(ToolError::InvalidInput { .. })
                ),
                "{offset}"
            );
        }
        for format in ["%Q", "100%"] {
            assert!(matches!(
                tool.now_formatted(None, Some(format)),
                Err(ToolError::InvalidInput { .. })
            ));
        }
    }

    #[tokio::test]
    async fn tool_call_reads_optional_fields() {
        let tool = at(86_400);
        assert_eq!(
            tool.call(json!({})).await.unwrap(),
            "1970-01-02T00:00:00Z (Friday)"
        );
        assert_eq!(
            tool.call(json!({"format": "%Y", "utc_offset": null}))
                .await
                .unwrap(),
            "1970"
        );
        assert!(tool.call(json!({"format": 3})).await.is_err());
        // 2026-03-14T10:00:00Z, a Saturday.
        let tool = at(1_773_482_400);
        assert_eq!(
            tool.call(json!({"until": "12-25"})).await.unwrap(),
            "2026-03-14T10:00:00Z (Saturday); 2026-12-25 (Friday) is 286 days from today"
        );
        assert_eq!(
            tool.days_until(None, "2026-01-01").unwrap(),
            "2026-01-01 (Thursday) was 72 days ago"
        );
        assert_eq!(
            tool.days_until(None, "March 14").unwrap(),
            "2026-03-14 (Saturday) is today"
        );
        assert!(tool.call(json!({"until": "someday"})).await.is_err());
        assert!(CurrentTime::new().call(json!({})).await.is_ok());
    }
}
