//! The Iranian (Jalali, Solar Hijri) calendar, through icu_calendar: programme years run Nowruz to
//! Nowruz (1398 = 2019-03-21 … 2020-03-19), and people write dates in it.

use chrono::{Datelike, NaiveDate};
use icu_calendar::Date;
use icu_calendar::cal::{Iso, Persian};

use crate::error::FieldError;
use crate::text::ascii_digits;

/// A day in the Jalali calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct JalaliDate {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl std::fmt::Display for JalaliDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The Jalali date of a Gregorian day.
pub fn to_jalali(date: NaiveDate) -> Option<JalaliDate> {
    let month = u8::try_from(date.month()).ok()?;
    let day = u8::try_from(date.day()).ok()?;
    let iso = Date::try_new_iso(date.year(), month, day).ok()?;
    let persian = iso.to_calendar(Persian::new());
    Some(JalaliDate {
        year: persian.year().extended_year(),
        month: persian.month().ordinal,
        day: persian.day_of_month().0,
    })
}

/// The Gregorian day of a Jalali date; `None` when the date does not exist (1398-12-30, …).
pub fn from_jalali(year: i32, month: u8, day: u8) -> Option<NaiveDate> {
    let persian = Date::try_new_persian(year, month, day).ok()?;
    // Make sure the round trip is exact: no day is silently moved.
    let iso = persian.to_calendar(Iso);
    let date = NaiveDate::from_ymd_opt(
        iso.year().extended_year(),
        u32::from(iso.month().ordinal),
        u32::from(iso.day_of_month().0),
    )?;
    (to_jalali(date) == Some(JalaliDate { year, month, day })).then_some(date)
}

/// First and last Gregorian day of a Jalali year.
pub fn jalali_year(year: i32) -> Option<(NaiveDate, NaiveDate)> {
    let first = from_jalali(year, 1, 1)?;
    let next = from_jalali(year + 1, 1, 1)?;
    Some((first, next.pred_opt()?))
}

/// Years below this are read as Jalali: no Gregorian date of birth or programme event is that
/// old, and no Jalali year is that recent.
const JALALI_BEFORE: i32 = 1700;

/// Parses `YYYY-MM-DD` (or with `/`), in any digit script. Years before 1700 are Jalali
/// (`1360-05-12`), later ones Gregorian (`1981-08-03`).
pub fn parse_date(field: &str, input: &str) -> Result<NaiveDate, FieldError> {
    let bad = || {
        FieldError::new(
            field,
            "format",
            "must be a date as YYYY-MM-DD, Gregorian (1981-08-03) or Jalali (1360-05-12)",
        )
    };
    let parts: Vec<&str> = input.trim().split(['-', '/']).collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let number = |s: &str| {
        ascii_digits(s)
            .filter(|d| !d.is_empty())
            .and_then(|d| d.parse::<u32>().ok())
    };
    let (Some(year), Some(month), Some(day)) = (number(y), number(m), number(d)) else {
        return Err(bad());
    };
    let year = i32::try_from(year).map_err(|_| bad())?;
    let no_such_day = || FieldError::new(field, "invalid", "no such day");
    let date = if year < JALALI_BEFORE {
        let month = u8::try_from(month).map_err(|_| no_such_day())?;
        let day = u8::try_from(day).map_err(|_| no_such_day())?;
        from_jalali(year, month, day).ok_or_else(no_such_day)?
    } else {
        NaiveDate::from_ymd_opt(year, month, day).ok_or_else(no_such_day)?
    };
    // Far outside any real event; and both backends must compare stored dates alike (SQLite
    // stores dates as text, where year 10000 would sort before 2026).
    if !(EARLIEST..=LATEST).contains(&date.year()) {
        return Err(FieldError::new(
            field,
            "out_of_range",
            format!("must be between the years {EARLIEST} and {LATEST} (Gregorian)"),
        ));
    }
    Ok(date)
}

/// The range of years dates may have.
const EARLIEST: i32 = 1900;
const LATEST: i32 = 2200;

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn dates_far_off_are_refused() {
        assert_eq!(
            parse_date("d", "10000-01-01").map_err(|e| e.code),
            Err("out_of_range")
        );
        assert_eq!(
            parse_date("d", "1800-01-01").map_err(|e| e.code),
            Err("out_of_range")
        );
        assert!(parse_date("d", "2200-12-31").is_ok());
    }

    #[test]
    fn year_1398_runs_from_nowruz_to_nowruz() {
        assert_eq!(
            jalali_year(1398),
            Some((ymd(2019, 3, 21), ymd(2020, 3, 19)))
        );
        assert_eq!(
            to_jalali(ymd(2024, 3, 20))
                .map(|j| j.to_string())
                .as_deref(),
            Some("1403-01-01")
        );
    }

    #[test]
    fn jalali_and_gregorian_input_both_parse() {
        assert_eq!(parse_date("birth_date", "1360-05-12"), Ok(ymd(1981, 8, 3)));
        assert_eq!(parse_date("birth_date", "۱۳۶۰/۰۵/۱۲"), Ok(ymd(1981, 8, 3)));
        assert_eq!(parse_date("birth_date", "1981-08-03"), Ok(ymd(1981, 8, 3)));
    }

    #[test]
    fn impossible_days_are_refused() {
        // 1398 is not a leap year: Esfand has 29 days.
        assert_eq!(
            parse_date("d", "1398-12-30").map_err(|e| e.code),
            Err("invalid")
        );
        assert!(parse_date("d", "1399-12-30").is_ok(), "1399 is a leap year");
        assert_eq!(
            parse_date("d", "2019-02-29").map_err(|e| e.code),
            Err("invalid")
        );
        assert_eq!(
            parse_date("d", "yesterday").map_err(|e| e.code),
            Err("format")
        );
        assert_eq!(
            parse_date("d", "1398-13-01").map_err(|e| e.code),
            Err("invalid")
        );
    }
}
