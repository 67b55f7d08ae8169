//! Calendar dates for [`CurrentTime`](super::CurrentTime)'s `until`: reading
//! a date as people and models write it, and counting days between dates.

use pae_core::ToolError;

/// The months, January first.
pub(super) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The days of the week, Monday first (as [`Date::weekday`] counts them).
pub(super) const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Whether `word` names a day of the week, whole or cut to three letters,
/// in any case (`Saturday`, `sat`).
pub(super) fn is_weekday_name(word: &str) -> bool {
    WEEKDAYS.iter().any(|day| {
        day.eq_ignore_ascii_case(word) || (word.len() == 3 && day[..3].eq_ignore_ascii_case(word))
    })
}

/// A calendar date (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Date {
    pub(super) year: i64,
    pub(super) month: u32,
    pub(super) day: u32,
}

impl Date {
    /// Days since 1970-01-01 (Howard Hinnant's days-from-civil).
    pub(super) fn days(self) -> i64 {
        let year = self.year - i64::from(self.month <= 2);
        let era = year.div_euclid(400);
        let yoe = year.rem_euclid(400);
        let month = i64::from(self.month);
        let mp = if month > 2 { month - 3 } else { month + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` days after 1970-01-01 (Howard Hinnant's
    /// civil-from-days).
    pub(super) fn from_days(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        Self {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
        }
    }

    /// An ISO date (`2026-12-25`) at the start of `chars`: exactly four,
    /// two and two digits, a real calendar date.
    pub(super) fn iso_prefix(chars: &[char]) -> Option<Self> {
        let digit = |i: usize| chars.get(i).and_then(|c| c.to_digit(10));
        let number = |from: usize, len: usize| {
            (from..from + len).try_fold(0_u32, |n, i| digit(i).map(|d| n * 10 + d))
        };
        if chars.get(4) != Some(&'-') || chars.get(7) != Some(&'-') {
            return None;
        }
        let date = Self {
            year: i64::from(number(0, 4)?),
            month: number(5, 2)?,
            day: number(8, 2)?,
        };
        date.is_valid().then_some(date)
    }

    /// 0 = Monday.
    pub(super) fn weekday(self) -> usize {
        // 1970-01-01 was a Thursday (index 3); the result is in 0..7.
        (self.days() + 3).rem_euclid(7) as usize
    }

    fn is_valid(self) -> bool {
        let leap = (self.year % 4 == 0 && self.year % 100 != 0) || self.year % 400 == 0;
        let days_in_month = match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return false,
        };
        (1..=days_in_month).contains(&self.day) && (1..=9999).contains(&self.year)
    }
}

/// A date the caller wrote: `2026-12-25`, `2026/12/25`, `12-25` (its next
/// occurrence from `today`, today included), `December 25`, `25 December
/// 2026`, `Dec 25, 2026`.
///
/// # Errors
/// [`ToolError::InvalidInput`] saying how to write a date.
pub(super) fn parse_date(text: &str, today: Date) -> Result<Date, ToolError> {
    let bad = || {
        ToolError::invalid_input(format!(
            "{text:?} is not a date (write it like \"2026-12-25\", or \"12-25\" for the next 25 December)"
        ))
    };
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || matches!(c, '-' | '/' | ',' | '.'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let number = |w: &str| w.parse::<i64>().ok();
    let month_name = |w: &str| {
        let w = w.trim_end_matches("st").trim_end_matches('.');
        (w.len() >= 3)
            .then(|| {
                MONTHS
                    .iter()
                    .position(|m| m.get(..w.len()).is_some_and(|p| p.eq_ignore_ascii_case(w)))
            })
            .flatten()
            .map(|i| i as u32 + 1)
    };
    let day_number = |w: &str| {
        let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        digits.parse::<u32>().ok()
    };
    let (year, month, day) = match words.as_slice() {
        [y, m, d] if y.len() == 4 => (
            number(y),
            m.parse::<u32>().ok().or_else(|| month_name(m)),
            day_number(d),
        ),
        [m, d] if [m, d].iter().all(|w| w.chars().all(|c| c.is_ascii_digit())) => {
            (None, m.parse::<u32>().ok(), day_number(d))
        }
        [a, b] => match (month_name(a), month_name(b)) {
            (Some(m), _) => (None, Some(m), day_number(b)),
            (None, Some(m)) => (None, Some(m), day_number(a)),
            _ => return Err(bad()),
        },
        [a, b, y] => match (month_name(a), month_name(b)) {
            (Some(m), _) => (number(y), Some(m), day_number(b)),
            (None, Some(m)) => (number(y), Some(m), day_number(a)),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let (Some(month), Some(day)) = (month, day) else {
        return Err(bad());
    };
    let date = match year {
        Some(year) => Date { year, month, day },
        None => {
            let this_year = Date {
                year: today.year,
                month,
                day,
            };
            if this_year.is_valid() && this_year.days() < today.days() {
                Date {
                    year: today.year + 1,
                    month,
                    day,
                }
            } else {
                this_year
            }
        }
    };
    if date.is_valid() {
        Ok(date)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i64, month: u32, day: u32) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn days_and_back() {
        for days in [-800_000, -1, 0, 1, 59, 10_957, 20_447, 2_932_896] {
            assert_eq!(Date::from_days(days).days(), days, "{days}");
        }
        assert_eq!(Date::from_days(20_447), date(2025, 12, 25));
        assert_eq!(
            Date::iso_prefix(&"2026-12-25 - x".chars().collect::<Vec<_>>()),
            Some(date(2026, 12, 25))
        );
        for text in [
            "2026-13-01",
            "2026-02-29",
            "2026-1-01",
            "26-12-25",
            "2026-12-2",
        ] {
            assert_eq!(
                Date::iso_prefix(&text.chars().collect::<Vec<_>>()),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn days_and_weekdays() {
        assert_eq!(date(1970, 1, 1).days(), 0);
        assert_eq!(date(2000, 3, 1).days() - date(2000, 2, 28).days(), 2);
        assert_eq!(date(2026, 12, 25).days() - date(2026, 3, 14).days(), 286);
        // 2026-03-14 is a Saturday.
        assert_eq!(date(2026, 3, 14).weekday(), 5);
        assert_eq!(date(1969, 12, 31).days(), -1);
    }

    #[test]
    fn dates_as_written() {
        let today = date(2026, 3, 14);
        for (text, expected) in [
            ("2026-12-25", date(2026, 12, 25)),
            ("2027/01/01", date(2027, 1, 1)),
            ("12-25", date(2026, 12, 25)),
            ("01-01", date(2027, 1, 1)),
            ("03-14", date(2026, 3, 14)),
            ("December 25", date(2026, 12, 25)),
            ("25 december", date(2026, 12, 25)),
            ("Dec 25, 2030", date(2030, 12, 25)),
            ("1st January 2027", date(2027, 1, 1)),
            ("2026-dec-25", date(2026, 12, 25)),
        ] {
            assert_eq!(parse_date(text, today).unwrap(), expected, "{text}");
        }
        for bad in ["", "soon", "2026-13-01", "2026-02-30", "25", "a b c d"] {
            assert!(parse_date(bad, today).is_err(), "{bad}");
        }
    }
}
