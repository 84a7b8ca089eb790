//! [`Datum`]: one SQL value, with casts, comparison, and conversion to and from JSON.
//!
//! Invariants: `TimestampTz` is microseconds since the Unix epoch, UTC. Comparison is only defined
//! between values of the same type (Int and Float compare numerically); NULL handling is the
//! caller's job (see `expr`). JSON output: Int/Float → number (NaN/±inf as strings), String →
//! string, Bool → bool, Bytes → `"\x<hex>"`, TimestampTz → RFC 3339, NULL → null.
//! Not handled: time zones other than UTC on output, NUMERIC, arrays, JSON columns.

use crate::catalog::SqlType;
use crate::error::{SqlError, codes};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use std::cmp::Ordering;

#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    Null,
    Int(i64),
    Float(f64),
    String(String),
    Bool(bool),
    Bytes(Vec<u8>),
    /// Microseconds since the Unix epoch, UTC.
    TimestampTz(i64),
}

impl Datum {
    pub fn ty(&self) -> Option<SqlType> {
        Some(match self {
            Datum::Null => return None,
            Datum::Int(_) => SqlType::Int,
            Datum::Float(_) => SqlType::Float,
            Datum::String(_) => SqlType::String,
            Datum::Bool(_) => SqlType::Bool,
            Datum::Bytes(_) => SqlType::Bytes,
            Datum::TimestampTz(_) => SqlType::TimestampTz,
        })
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }

    /// A JSON argument as a datum: integers → Int, other numbers → Float, strings, bools, null.
    pub fn from_json(v: &serde_json::Value) -> Result<Datum, SqlError> {
        Ok(match v {
            serde_json::Value::Null => Datum::Null,
            serde_json::Value::Bool(b) => Datum::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Datum::Int(i),
                None => match n.as_f64() {
                    Some(f) => Datum::Float(f),
                    None => {
                        return Err(SqlError::user(codes::OUT_OF_RANGE, format!("number {n} out of range")));
                    }
                },
            },
            serde_json::Value::String(s) => Datum::String(s.clone()),
            other => {
                return Err(SqlError::user(
                    codes::INVALID_TEXT,
                    format!("unsupported argument value {other}: only numbers, strings, bools and null"),
                ));
            }
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Datum::Null => serde_json::Value::Null,
            Datum::Int(i) => serde_json::Value::from(*i),
            Datum::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => serde_json::Value::Number(n),
                None => serde_json::Value::String(float_text(*f)),
            },
            Datum::String(s) => serde_json::Value::String(s.clone()),
            Datum::Bool(b) => serde_json::Value::Bool(*b),
            Datum::Bytes(_) | Datum::TimestampTz(_) => serde_json::Value::String(self.to_text()),
        }
    }

    /// The value's text form, as `CAST(x AS STRING)` produces it.
    pub fn to_text(&self) -> String {
        match self {
            Datum::Null => "NULL".into(),
            Datum::Int(i) => i.to_string(),
            Datum::Float(f) => float_text(*f),
            Datum::String(s) => s.clone(),
            Datum::Bool(b) => b.to_string(),
            Datum::Bytes(b) => {
                let mut s = String::with_capacity(2 + b.len() * 2);
                s.push_str("\\x");
                for byte in b {
                    s.push_str(&format!("{byte:02x}"));
                }
                s
            }
            Datum::TimestampTz(us) => format_timestamp(*us),
        }
    }

    /// Explicit cast (`CAST(x AS ty)`, `x::ty`). NULL casts to NULL.
    pub fn cast(&self, to: SqlType) -> Result<Datum, SqlError> {
        let bad = |from: &Datum| {
            SqlError::user(codes::INVALID_TEXT, format!("invalid input syntax for type {}: \"{}\"", to.name(), from.to_text()))
        };
        let cannot = |from: &Datum| {
            let from_name = from.ty().map(|t| t.name()).unwrap_or("NULL");
            SqlError::user(codes::CANNOT_CAST, format!("cannot cast {from_name} to {}", to.name()))
        };
        Ok(match (self, to) {
            (Datum::Null, _) => Datum::Null,
            (d, t) if d.ty() == Some(t) => d.clone(),
            (Datum::Float(f), SqlType::Int) => {
                let r = f.round();
                if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
                    return Err(SqlError::user(codes::OUT_OF_RANGE, "integer out of range"));
                }
                Datum::Int(r as i64)
            }
            (Datum::Bool(b), SqlType::Int) => Datum::Int(*b as i64),
            (Datum::String(s), SqlType::Int) => Datum::Int(s.trim().parse::<i64>().map_err(|_| bad(self))?),
            (Datum::Int(i), SqlType::Float) => Datum::Float(*i as f64),
            (Datum::String(s), SqlType::Float) => Datum::Float(parse_float(s.trim()).ok_or_else(|| bad(self))?),
            (d, SqlType::String) => Datum::String(d.to_text()),
            (Datum::Int(i), SqlType::Bool) => Datum::Bool(*i != 0),
            (Datum::String(s), SqlType::Bool) => Datum::Bool(parse_bool(s).ok_or_else(|| bad(self))?),
            (Datum::String(s), SqlType::Bytes) => Datum::Bytes(parse_bytes(s).ok_or_else(|| bad(self))?),
            (Datum::String(s), SqlType::TimestampTz) => Datum::TimestampTz(parse_timestamp(s).ok_or_else(|| bad(self))?),
            (d, _) => return Err(cannot(d)),
        })
    }

    /// Implicit (assignment) coercion to a column's type: same type, Int → Float, or a string
    /// parsed as the target type. Anything else is 42804.
    pub fn coerce_to(self, to: SqlType, column: &str) -> Result<Datum, SqlError> {
        match (&self, to) {
            (Datum::Null, _) => Ok(Datum::Null),
            (d, t) if d.ty() == Some(t) => Ok(self),
            (Datum::Int(_), SqlType::Float) | (Datum::String(_), _) => self.cast(to),
            (d, t) => Err(SqlError::user(
                codes::DATATYPE_MISMATCH,
                format!("value type {} doesn't match type {} of column \"{column}\"", d.ty().map(|t| t.name()).unwrap_or("NULL"), t.name()),
            )),
        }
    }

    /// Total order of two non-NULL values of compatible types; None if incomparable.
    pub fn compare(&self, other: &Datum) -> Option<Ordering> {
        match (self, other) {
            (Datum::Int(a), Datum::Int(b)) => Some(a.cmp(b)),
            (Datum::Float(a), Datum::Float(b)) => Some(a.total_cmp(b)),
            (Datum::Int(a), Datum::Float(b)) => Some((*a as f64).total_cmp(b)),
            (Datum::Float(a), Datum::Int(b)) => Some(a.total_cmp(&(*b as f64))),
            (Datum::String(a), Datum::String(b)) => Some(a.cmp(b)),
            (Datum::Bool(a), Datum::Bool(b)) => Some(a.cmp(b)),
            (Datum::Bytes(a), Datum::Bytes(b)) => Some(a.cmp(b)),
            (Datum::TimestampTz(a), Datum::TimestampTz(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// Order for ORDER BY: NULLs sort after every value (as in PostgreSQL's ASC default).
    pub fn sort_cmp(&self, other: &Datum) -> Ordering {
        match (self, other) {
            (Datum::Null, Datum::Null) => Ordering::Equal,
            (Datum::Null, _) => Ordering::Greater,
            (_, Datum::Null) => Ordering::Less,
            (a, b) => a.compare(b).unwrap_or(Ordering::Equal),
        }
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else {
        f.to_string()
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" | "+infinity" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "yes" | "y" | "on" | "1" => Some(true),
        "f" | "false" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `\x<hex>` is decoded as hex; any other string is taken as its UTF-8 bytes.
fn parse_bytes(s: &str) -> Option<Vec<u8>> {
    let Some(hex) = s.strip_prefix("\\x") else {
        return Some(s.as_bytes().to_vec());
    };
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// Parses RFC 3339, `YYYY-MM-DD HH:MM:SS[.f][±tz]` and `YYYY-MM-DD` (UTC when no zone).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.timestamp_micros());
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

pub fn format_timestamp(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => us.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip_and_special_values() {
        assert_eq!(Datum::from_json(&json!(5)).unwrap(), Datum::Int(5));
        assert_eq!(Datum::from_json(&json!(1.5)).unwrap(), Datum::Float(1.5));
        assert_eq!(Datum::from_json(&json!([1])).unwrap_err().code(), "22P02");
        assert_eq!(Datum::Float(f64::NAN).to_json(), json!("NaN"));
        assert_eq!(Datum::Bytes(vec![1, 0xab]).to_json(), json!("\\x01ab"));
        assert_eq!(Datum::TimestampTz(0).to_json(), json!("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn casts_and_coercions() {
        assert_eq!(Datum::String("42".into()).cast(SqlType::Int).unwrap(), Datum::Int(42));
        assert_eq!(Datum::String("x".into()).cast(SqlType::Int).unwrap_err().code(), "22P02");
        assert_eq!(Datum::Float(1e300).cast(SqlType::Int).unwrap_err().code(), "22003");
        assert_eq!(Datum::Int(1).coerce_to(SqlType::Float, "c").unwrap(), Datum::Float(1.0));
        assert_eq!(Datum::Bool(true).coerce_to(SqlType::Int, "c").unwrap_err().code(), "42804");
        let ts = Datum::String("2024-01-02 03:04:05+00".into()).cast(SqlType::TimestampTz).unwrap();
        assert_eq!(ts.to_text(), "2024-01-02T03:04:05Z");
        assert_eq!(
            Datum::String("2024-01-02T03:04:05.5Z".into()).cast(SqlType::TimestampTz).unwrap().to_text(),
            "2024-01-02T03:04:05.500Z"
        );
        assert_eq!(Datum::String("\\x0aff".into()).cast(SqlType::Bytes).unwrap(), Datum::Bytes(vec![10, 255]));
    }

    #[test]
    fn ordering_puts_nulls_last() {
        assert_eq!(Datum::Null.sort_cmp(&Datum::Int(1)), Ordering::Greater);
        assert_eq!(Datum::Int(1).compare(&Datum::Float(1.5)), Some(Ordering::Less));
        assert_eq!(Datum::Int(1).compare(&Datum::String("a".into())), None);
    }
}
