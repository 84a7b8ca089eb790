//! Dates, timestamps and intervals: parsing and formatting in PostgreSQL's styles, and the
//! calendar arithmetic used by operators and functions (`date_trunc`, `extract`).
//!
//! Invariants: DATE is days since 1970-01-01; TIMESTAMP and TIMESTAMPTZ are microseconds since
//! the Unix epoch (TIMESTAMPTZ in UTC; the session time zone is always UTC). An [`Interval`]
//! keeps months, days and microseconds apart as PostgreSQL does; comparisons and grouping use
//! its total with 30-day months and 24-hour days. Every function returns `None`/an error for out
//! of range input rather than panicking.
//! Not handled: time zones other than UTC, TIME / TIMETZ types, ISO 8601 interval input.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, SecondsFormat, Timelike, Utc};

pub const DAY_US: i64 = 86_400_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// Total length with 30-day months (for ordering and equality).
    pub fn total(&self) -> i128 {
        (self.months as i128 * 30 + self.days as i128) * DAY_US as i128 + self.micros as i128
    }

    pub fn checked_add(&self, o: &Interval) -> Option<Interval> {
        Some(Interval {
            months: self.months.checked_add(o.months)?,
            days: self.days.checked_add(o.days)?,
            micros: self.micros.checked_add(o.micros)?,
        })
    }

    pub fn checked_neg(&self) -> Option<Interval> {
        Some(Interval { months: self.months.checked_neg()?, days: self.days.checked_neg()?, micros: self.micros.checked_neg()? })
    }

    /// Multiplies by a factor, cascading fractional months into days and fractional days into time.
    pub fn mul(&self, f: f64) -> Option<Interval> {
        let months = self.months as f64 * f;
        let days = self.days as f64 * f + months.fract() * 30.0;
        let micros = self.micros as f64 * f + days.fract() * DAY_US as f64;
        let ok = |v: f64, max: f64| v.is_finite() && v.abs() < max;
        if !ok(months, i32::MAX as f64) || !ok(days, i32::MAX as f64) || !ok(micros, 9.2e18) {
            return None;
        }
        Some(Interval { months: months.trunc() as i32, days: days.trunc() as i32, micros: micros.round() as i64 })
    }

    /// Parses `1 day`, `2 hours 30 minutes`, `1 year 2 mons 3 days 04:05:06.5`, `-1 week`, `10:00`.
    pub fn parse(s: &str) -> Option<Interval> {
        let lower = s.trim().to_ascii_lowercase();
        let toks: Vec<&str> = lower.split_whitespace().collect();
        if toks.is_empty() {
            return None;
        }
        let (mut months, mut days, mut micros) = (0f64, 0f64, 0f64);
        let mut i = 0;
        while i < toks.len() {
            let t = toks[i];
            if t.contains(':') {
                micros += parse_clock(t)? as f64;
                i += 1;
                continue;
            }
            // A number glued to its unit ("5d") or followed by it ("5 days").
            let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
            let (num, mut unit) = t.split_at(split);
            let n: f64 = num.parse().ok()?;
            if unit.is_empty() {
                unit = toks.get(i + 1).copied().unwrap_or("second");
                i += 1;
            }
            i += 1;
            match unit.trim_end_matches(',') {
                "microsecond" | "microseconds" | "us" | "usec" | "usecs" => micros += n,
                "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => micros += n * 1e3,
                "second" | "seconds" | "sec" | "secs" | "s" => micros += n * 1e6,
                "minute" | "minutes" | "min" | "mins" | "m" => micros += n * 6e7,
                "hour" | "hours" | "hr" | "hrs" | "h" => micros += n * 3.6e9,
                "day" | "days" | "d" => days += n,
                "week" | "weeks" | "w" => days += n * 7.0,
                "month" | "months" | "mon" | "mons" => months += n,
                "year" | "years" | "yr" | "yrs" | "y" => months += n * 12.0,
                "decade" | "decades" => months += n * 120.0,
                "century" | "centuries" => months += n * 1200.0,
                _ => return None,
            }
        }
        Interval::from_parts(months, days, micros)
    }

    fn from_parts(months: f64, days: f64, micros: f64) -> Option<Interval> {
        let days = days + months.fract() * 30.0;
        let micros = micros + days.fract() * DAY_US as f64;
        if months.abs() >= i32::MAX as f64 || days.abs() >= i32::MAX as f64 || !micros.is_finite() || micros.abs() >= 9.2e18 {
            return None;
        }
        Some(Interval { months: months.trunc() as i32, days: days.trunc() as i32, micros: micros.round() as i64 })
    }

    /// PostgreSQL's default output style: `1 year 2 mons 3 days 04:05:06.5`, `00:00:00`.
    pub fn format(&self) -> String {
        // PostgreSQL's `postgres` interval style: a unit is plural unless its value is exactly 1
        // (`-1 days`), and a positive field after a negative one carries a `+` sign.
        let mut parts = Vec::new();
        let mut before_neg = false;
        let (y, m) = (self.months / 12, self.months % 12);
        for (n, unit) in [(y, "year"), (m, "mon"), (self.days, "day")] {
            if n != 0 {
                parts.push(format!("{}{n} {unit}{}", if before_neg && n > 0 { "+" } else { "" }, if n == 1 { "" } else { "s" }));
                before_neg = n < 0;
            }
        }
        if self.micros != 0 || parts.is_empty() {
            let neg = self.micros < 0;
            let us = self.micros.unsigned_abs();
            let secs = us / 1_000_000;
            let sign = if neg {
                "-"
            } else if before_neg {
                "+"
            } else {
                ""
            };
            let mut t = format!("{sign}{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
            push_fraction(&mut t, us % 1_000_000);
            parts.push(t);
        }
        parts.join(" ")
    }
}

/// `[-]HH:MM[:SS[.ffffff]]` as microseconds.
fn parse_clock(t: &str) -> Option<i64> {
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let parts: Vec<&str> = t.split(':').collect();
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?, 0.0),
        [h, m, s] => (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?, s.parse::<f64>().ok()?),
        _ => return None,
    };
    if !(0.0..60.0).contains(&s) || !(0..60).contains(&m) || !(0..=2_562_047_788).contains(&h) {
        return None;
    }
    let us = h * 3_600_000_000 + m * 60_000_000 + (s * 1e6).round() as i64;
    Some(if neg { -us } else { us })
}

fn push_fraction(s: &mut String, frac_us: u64) {
    if frac_us != 0 {
        let f = format!("{frac_us:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
}

/// Parses RFC 3339, `YYYY-MM-DD HH:MM:SS[.f][±tz]` and `YYYY-MM-DD` (UTC when no zone).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f %#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.timestamp_micros());
        }
    }
    if let Some(rest) = s.strip_suffix(" UTC").or_else(|| s.strip_suffix('Z')) {
        return parse_naive(rest);
    }
    parse_naive(s)
}

/// A timestamp without zone; a zone, if present, is applied (as if the session were UTC).
pub fn parse_naive(s: &str) -> Option<i64> {
    let s = s.trim();
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) => Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros()),
        Err(_) if s.contains(['+', 'Z', 'z']) || s.matches('-').count() > 2 => parse_timestamp(s),
        Err(_) => None,
    }
}

/// A date string (`YYYY-MM-DD`, or a timestamp whose date part is taken).
pub fn parse_date(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return date_to_days(d);
    }
    parse_naive(s).map(|us| us.div_euclid(DAY_US) as i32)
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

pub fn date_to_days(d: NaiveDate) -> Option<i32> {
    i32::try_from(d.signed_duration_since(epoch()).num_days()).ok()
}

pub fn days_to_date(days: i32) -> Option<NaiveDate> {
    epoch().checked_add_signed(chrono::TimeDelta::try_days(days as i64)?)
}

pub fn format_date(days: i32) -> String {
    days_to_date(days).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_else(|| days.to_string())
}

/// TIMESTAMPTZ output: RFC 3339 in UTC.
pub fn format_timestamp(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => us.to_string(),
    }
}

/// TIMESTAMP output: `YYYY-MM-DD HH:MM:SS[.ffffff]`.
pub fn format_naive(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) => {
            let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
            push_fraction(&mut s, us.rem_euclid(1_000_000) as u64);
            s
        }
        None => us.to_string(),
    }
}

fn naive(us: i64) -> Option<NaiveDateTime> {
    DateTime::<Utc>::from_timestamp_micros(us).map(|t| t.naive_utc())
}

/// `ts + iv` with calendar months and days.
pub fn add_interval(us: i64, iv: &Interval) -> Option<i64> {
    let mut t = naive(us)?;
    t = if iv.months >= 0 {
        t.checked_add_months(Months::new(iv.months as u32))?
    } else {
        t.checked_sub_months(Months::new(iv.months.unsigned_abs()))?
    };
    t = if iv.days >= 0 {
        t.checked_add_days(Days::new(iv.days as u64))?
    } else {
        t.checked_sub_days(Days::new(iv.days.unsigned_abs() as u64))?
    };
    t.and_utc().timestamp_micros().checked_add(iv.micros)
}

/// `a - b` of two timestamps, as days and time (like PostgreSQL, never months).
pub fn diff(a: i64, b: i64) -> Option<Interval> {
    let d = a.checked_sub(b)?;
    Some(Interval { months: 0, days: i32::try_from(d / DAY_US).ok()?, micros: d % DAY_US })
}

/// `date_trunc(field, ts)`.
pub fn trunc(field: &str, us: i64) -> Option<i64> {
    let t = naive(us)?;
    let d = t.date();
    let day = |d: NaiveDate| d.and_hms_opt(0, 0, 0);
    let r = match field {
        "microsecond" | "microseconds" => t,
        "millisecond" | "milliseconds" => t.with_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)?,
        "second" | "seconds" => t.with_nanosecond(0)?,
        "minute" | "minutes" => t.with_nanosecond(0)?.with_second(0)?,
        "hour" | "hours" => t.with_nanosecond(0)?.with_second(0)?.with_minute(0)?,
        "day" | "days" => day(d)?,
        "week" | "weeks" => day(d.checked_sub_days(Days::new(d.weekday().num_days_from_monday() as u64))?)?,
        "month" | "months" => day(d.with_day(1)?)?,
        "quarter" => day(NaiveDate::from_ymd_opt(d.year(), (d.month0() / 3) * 3 + 1, 1)?)?,
        "year" | "years" => day(NaiveDate::from_ymd_opt(d.year(), 1, 1)?)?,
        "decade" => day(NaiveDate::from_ymd_opt(d.year().div_euclid(10) * 10, 1, 1)?)?,
        "century" => day(NaiveDate::from_ymd_opt((d.year() - 1).div_euclid(100) * 100 + 1, 1, 1)?)?,
        _ => return None,
    };
    Some(r.and_utc().timestamp_micros())
}

/// `extract(field from ts)` as a float.
pub fn extract(field: &str, us: i64) -> Option<f64> {
    let t = naive(us)?;
    let d = t.date();
    let secs = t.second() as f64 + t.nanosecond() as f64 / 1e9;
    Some(match field {
        "year" | "years" => d.year() as f64,
        "month" | "months" => d.month() as f64,
        "day" | "days" => d.day() as f64,
        "hour" | "hours" => t.hour() as f64,
        "minute" | "minutes" => t.minute() as f64,
        "second" | "seconds" => secs,
        "millisecond" | "milliseconds" => secs * 1e3,
        "microsecond" | "microseconds" => (secs * 1e6).round(),
        "dow" => d.weekday().num_days_from_sunday() as f64,
        "isodow" => d.weekday().number_from_monday() as f64,
        "doy" => d.ordinal() as f64,
        "week" => d.iso_week().week() as f64,
        "quarter" => (d.month0() / 3 + 1) as f64,
        "decade" => d.year().div_euclid(10) as f64,
        "century" => ((d.year() - 1).div_euclid(100) + 1) as f64,
        "epoch" => us as f64 / 1e6,
        _ => return None,
    })
}

/// `extract(field from interval)`.
pub fn extract_interval(field: &str, iv: &Interval) -> Option<f64> {
    Some(match field {
        "year" | "years" => (iv.months / 12) as f64,
        "month" | "months" => (iv.months % 12) as f64,
        "day" | "days" => iv.days as f64,
        "hour" | "hours" => (iv.micros / 3_600_000_000) as f64,
        "minute" | "minutes" => (iv.micros / 60_000_000 % 60) as f64,
        "second" | "seconds" => (iv.micros % 60_000_000) as f64 / 1e6,
        "epoch" => iv.total() as f64 / 1e6 + (iv.months as f64 * 0.25 * DAY_US as f64 / 1e6),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_format_like_postgres() {
        let iv = |s: &str| Interval::parse(s).map(|i| i.format());
        assert_eq!(iv("1 day 02:00:00").as_deref(), Some("1 day 02:00:00"));
        assert_eq!(iv("2 hours 30 minutes").as_deref(), Some("02:30:00"));
        assert_eq!(iv("1 year 14 months").as_deref(), Some("2 years 2 mons"));
        assert_eq!(iv("-1 week").as_deref(), Some("-7 days"));
        assert_eq!(iv("1.5 seconds").as_deref(), Some("00:00:01.5"));
        assert_eq!(iv("0 days").as_deref(), Some("00:00:00"));
        assert_eq!(iv("-1 day 2 hours").as_deref(), Some("-1 days +02:00:00"));
        assert_eq!(iv("-1 year -1 mon").as_deref(), Some("-1 years -1 mons"));
        assert_eq!(iv("1 day -2 hours").as_deref(), Some("1 day -02:00:00"));
        assert_eq!(iv("-1 year 3 days").as_deref(), Some("-1 years +3 days"));
        assert_eq!(iv("soon"), None);
        assert_eq!(iv("1e308 years"), None);
    }

    #[test]
    fn timestamps_and_calendar_math() {
        let ts = parse_naive("2024-01-31 10:20:30.25").unwrap();
        assert_eq!(format_naive(ts), "2024-01-31 10:20:30.25");
        let plus = add_interval(ts, &Interval { months: 1, days: 1, micros: 0 }).unwrap();
        assert_eq!(format_naive(plus), "2024-03-01 10:20:30.25");
        assert_eq!(format_naive(trunc("month", ts).unwrap()), "2024-01-01 00:00:00");
        assert_eq!(extract("quarter", ts), Some(1.0));
        assert_eq!(format_date(parse_date("2024-02-29").unwrap()), "2024-02-29");
        assert_eq!(parse_date("2024-02-30"), None);
    }
}
