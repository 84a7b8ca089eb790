//! [`Datum`]: one SQL value, with casts, comparison, and conversion to and from JSON.
//!
//! Invariants: INT2/INT4/INT8 values are all `Int` (column types range-check on write), FLOAT4
//! values are `Float` holding the nearest f64 of the shortest FLOAT4 text; `Decimal` is exact;
//! `Date` is days since the epoch, `Timestamp`/`TimestampTz` microseconds since the epoch (UTC).
//! Comparison is defined between values of the same type family (numbers with numbers, dates
//! with timestamps); NULL handling is the caller's job (see `eval`).
//! JSON output: Int/Float → number (NaN/±inf as strings), Decimal → exact string, String →
//! string, Bool → bool, Bytes → `"\x<hex>"`, Date `YYYY-MM-DD`, Timestamp `YYYY-MM-DD
//! HH:MM:SS[.f]`, TimestampTz RFC 3339 UTC, Interval PostgreSQL style, Uuid canonical, Jsonb
//! nested JSON, NULL → null.
//! Not handled: time zones other than UTC, arrays, ranges.

use crate::catalog::{SqlType, TypeSpec};
use crate::error::{SqlError, codes};
use crate::temporal::{self, DAY_US, Interval};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use std::cmp::Ordering;

pub use crate::temporal::{format_timestamp, parse_timestamp};

#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    Null,
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    String(String),
    Bool(bool),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since the Unix epoch, no zone.
    Timestamp(i64),
    /// Microseconds since the Unix epoch, UTC.
    TimestampTz(i64),
    Interval(Interval),
    Uuid([u8; 16]),
    Json(serde_json::Value),
}

fn out_of_range(ty: SqlType) -> SqlError {
    SqlError::user(codes::OUT_OF_RANGE, format!("{} out of range", ty.pg_name()))
}

impl Datum {
    pub fn ty(&self) -> Option<SqlType> {
        Some(match self {
            Datum::Null => return None,
            Datum::Int(_) => SqlType::Int,
            Datum::Float(_) => SqlType::Float,
            Datum::Decimal(_) => SqlType::Decimal,
            Datum::String(_) => SqlType::String,
            Datum::Bool(_) => SqlType::Bool,
            Datum::Bytes(_) => SqlType::Bytes,
            Datum::Date(_) => SqlType::Date,
            Datum::Timestamp(_) => SqlType::Timestamp,
            Datum::TimestampTz(_) => SqlType::TimestampTz,
            Datum::Interval(_) => SqlType::Interval,
            Datum::Uuid(_) => SqlType::Uuid,
            Datum::Json(_) => SqlType::Jsonb,
        })
    }

    pub fn type_name(&self) -> &'static str {
        self.ty().map(|t| t.name()).unwrap_or("NULL")
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }

    /// Rough in-memory size, for result and buffer limits.
    pub fn size(&self) -> usize {
        16 + match self {
            Datum::String(s) => s.len(),
            Datum::Bytes(b) => b.len(),
            Datum::Json(j) => j.to_string().len(),
            _ => 0,
        }
    }

    /// A JSON argument as a datum: integers → Int, other numbers → Float, strings, bools, null;
    /// arrays and objects → Jsonb.
    pub fn from_json(v: &serde_json::Value) -> Result<Datum, SqlError> {
        Ok(match v {
            serde_json::Value::Null => Datum::Null,
            serde_json::Value::Bool(b) => Datum::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Datum::Int(i),
                None => match n.as_f64() {
                    Some(f) => Datum::Float(f),
                    None => return Err(SqlError::user(codes::OUT_OF_RANGE, format!("number {n} out of range"))),
                },
            },
            serde_json::Value::String(s) => Datum::String(s.clone()),
            other => Datum::Json(other.clone()),
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
            Datum::Bool(b) => serde_json::Value::Bool(*b),
            Datum::Json(j) => j.clone(),
            Datum::String(s) => serde_json::Value::String(s.clone()),
            other => serde_json::Value::String(other.to_text()),
        }
    }

    /// The value's text form, as `CAST(x AS STRING)` produces it.
    pub fn to_text(&self) -> String {
        match self {
            Datum::Null => "NULL".into(),
            Datum::Int(i) => i.to_string(),
            Datum::Float(f) => float_text(*f),
            Datum::Decimal(d) => d.to_string(),
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
            Datum::Date(d) => temporal::format_date(*d),
            Datum::Timestamp(us) => temporal::format_naive(*us),
            Datum::TimestampTz(us) => format_timestamp(*us),
            Datum::Interval(iv) => iv.format(),
            Datum::Uuid(u) => uuid::Uuid::from_bytes(*u).hyphenated().to_string(),
            Datum::Json(j) => j.to_string(),
        }
    }

    /// Explicit cast (`CAST(x AS ty)`, `x::ty`). NULL casts to NULL.
    pub fn cast(&self, to: SqlType) -> Result<Datum, SqlError> {
        let bad = |from: &Datum| {
            SqlError::user(codes::INVALID_TEXT, format!("invalid input syntax for type {}: \"{}\"", to.pg_name(), from.to_text()))
        };
        // PostgreSQL: text that is not a date/time at all is 22007; a well-formed one with a
        // field out of range (`2023-02-29`, `25:00`) is 22008.
        let bad_time = |from: &Datum| {
            let s = from.to_text();
            let shaped = to != SqlType::Interval
                && s.trim().starts_with(|c: char| c.is_ascii_digit())
                && s.trim().chars().all(|c| c.is_ascii_digit() || " -:.+TZtz".contains(c));
            let (code, msg) = if shaped {
                (codes::DATETIME, format!("date/time field value out of range: \"{s}\""))
            } else {
                (codes::DATETIME_FORMAT, format!("invalid input syntax for type {}: \"{s}\"", to.pg_name()))
            };
            SqlError::user(code, msg)
        };
        let cannot = |from: &Datum| SqlError::user(codes::CANNOT_CAST, format!("cannot cast {} to {}", from.type_name(), to.name()));
        let base = to.base();
        let d = match (self, base) {
            (Datum::Null, _) => return Ok(Datum::Null),
            (d, t) if d.ty() == Some(t) => d.clone(),
            (Datum::Float(f), SqlType::Int) => {
                // PostgreSQL rounds half to even (rint): 2.5 → 2, -0.5 → 0.
                let r = f.round_ties_even();
                if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
                    return Err(out_of_range(to));
                }
                Datum::Int(r as i64)
            }
            (Datum::Decimal(d), SqlType::Int) => Datum::Int(
                d.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                    .to_i64()
                    .ok_or_else(|| out_of_range(to))?,
            ),
            (Datum::Bool(b), SqlType::Int) => Datum::Int(*b as i64),
            (Datum::String(s), SqlType::Int) => Datum::Int(s.trim().parse::<i64>().map_err(|_| bad(self))?),
            (Datum::Int(i), SqlType::Float) => Datum::Float(*i as f64),
            (Datum::Decimal(d), SqlType::Float) => Datum::Float(d.to_f64().unwrap_or(f64::NAN)),
            (Datum::String(s), SqlType::Float) => Datum::Float(parse_float(s.trim()).ok_or_else(|| bad(self))?),
            (Datum::Int(i), SqlType::Decimal) => Datum::Decimal(Decimal::from(*i)),
            (Datum::Float(f), SqlType::Decimal) => {
                Datum::Decimal(Decimal::from_f64(*f).ok_or_else(|| SqlError::user(codes::OUT_OF_RANGE, "numeric field overflow"))?)
            }
            (Datum::String(s), SqlType::Decimal) => Datum::Decimal(parse_decimal(s).ok_or_else(|| bad(self))?),
            (Datum::Json(j), SqlType::Int | SqlType::Float | SqlType::Decimal | SqlType::Bool) => match j {
                serde_json::Value::Number(n) => Datum::String(n.to_string()).cast(to)?,
                serde_json::Value::Bool(b) if base == SqlType::Bool => Datum::Bool(*b),
                _ => return Err(SqlError::user(codes::INVALID_PARAM, format!("cannot cast jsonb {j} to type {}", to.pg_name()))),
            },
            (d, SqlType::String) => Datum::String(d.to_text()),
            (Datum::Int(i), SqlType::Bool) => Datum::Bool(*i != 0),
            (Datum::String(s), SqlType::Bool) => Datum::Bool(parse_bool(s).ok_or_else(|| bad(self))?),
            (Datum::String(s), SqlType::Bytes) => Datum::Bytes(parse_bytes(s).ok_or_else(|| bad(self))?),
            (Datum::String(s), SqlType::TimestampTz) => Datum::TimestampTz(parse_timestamp(s).ok_or_else(|| bad_time(self))?),
            (Datum::String(s), SqlType::Timestamp) => Datum::Timestamp(temporal::parse_naive(s).ok_or_else(|| bad_time(self))?),
            (Datum::String(s), SqlType::Date) => Datum::Date(temporal::parse_date(s).ok_or_else(|| bad_time(self))?),
            (Datum::String(s), SqlType::Interval) => Datum::Interval(Interval::parse(s).ok_or_else(|| bad_time(self))?),
            (Datum::String(s), SqlType::Uuid) => Datum::Uuid(*uuid::Uuid::parse_str(s.trim()).map_err(|_| bad(self))?.as_bytes()),
            (Datum::String(s), SqlType::Jsonb) => {
                Datum::Json(serde_json::from_str(s).map_err(|_| SqlError::user(codes::INVALID_TEXT, "invalid input syntax for type json"))?)
            }
            (Datum::Timestamp(us) | Datum::TimestampTz(us), SqlType::Date) => {
                Datum::Date(i32::try_from(us.div_euclid(DAY_US)).map_err(|_| SqlError::user(codes::DATETIME, "date out of range"))?)
            }
            (Datum::Timestamp(us), SqlType::TimestampTz) => Datum::TimestampTz(*us),
            (Datum::TimestampTz(us), SqlType::Timestamp) => Datum::Timestamp(*us),
            (Datum::Date(d), SqlType::Timestamp) => Datum::Timestamp(*d as i64 * DAY_US),
            (Datum::Date(d), SqlType::TimestampTz) => Datum::TimestampTz(*d as i64 * DAY_US),
            (Datum::Bytes(b), SqlType::Uuid) if b.len() == 16 => Datum::Uuid(b.as_slice().try_into().unwrap_or([0; 16])),
            (Datum::Uuid(u), SqlType::Bytes) => Datum::Bytes(u.to_vec()),
            (d, SqlType::Jsonb) => match d.to_json() {
                serde_json::Value::String(_) if !matches!(d, Datum::String(_)) => return Err(cannot(d)),
                v => Datum::Json(v),
            },
            (d, _) => return Err(cannot(d)),
        };
        d.conform(&TypeSpec::of(to), true)
    }

    /// Applies a type's modifiers to a value of its base type: INT2/INT4 range, FLOAT4
    /// precision, DECIMAL scale/precision, VARCHAR/CHAR length (an explicit cast truncates,
    /// an assignment errors with 22001).
    pub fn conform(self, spec: &TypeSpec, explicit: bool) -> Result<Datum, SqlError> {
        Ok(match (self, spec.ty) {
            (Datum::Int(i), SqlType::Int2) if i16::try_from(i).is_err() => return Err(out_of_range(SqlType::Int2)),
            (Datum::Int(i), SqlType::Int4) if i32::try_from(i).is_err() => return Err(out_of_range(SqlType::Int4)),
            (Datum::Float(f), SqlType::Float4) => {
                let r = f as f32;
                if r.is_infinite() && f.is_finite() {
                    return Err(SqlError::user(codes::OUT_OF_RANGE, "value out of range: overflow"));
                }
                Datum::Float(r.to_string().parse::<f64>().unwrap_or(r as f64))
            }
            (Datum::Decimal(d), SqlType::Decimal) => Datum::Decimal(conform_decimal(d, spec.width, spec.scale)?),
            (Datum::String(s), SqlType::String) => match spec.width {
                Some(n) if s.chars().count() > n as usize => {
                    let trimmed = s.trim_end_matches(' ');
                    if explicit || trimmed.chars().count() <= n as usize {
                        Datum::String(s.chars().take(n as usize).collect())
                    } else {
                        let kind = if spec.fixed { "character" } else { "character varying" };
                        return Err(SqlError::user(codes::STRING_TOO_LONG, format!("value too long for type {kind}({n})")));
                    }
                }
                Some(n) if spec.fixed => Datum::String(format!("{s:<width$}", width = n as usize)),
                _ => Datum::String(s),
            },
            (d, _) => d,
        })
    }

    /// Implicit (assignment) coercion to a column's type: same type, between numeric types, a
    /// string parsed as the target type, or a date/timestamp conversion; then the modifiers.
    /// Anything else is 42804.
    pub fn coerce(self, spec: &TypeSpec, column: &str) -> Result<Datum, SqlError> {
        let to = spec.ty;
        let d = match (&self, to.base()) {
            (Datum::Null, _) => return Ok(Datum::Null),
            (d, t) if d.ty() == Some(t) => self,
            (Datum::Int(_) | Datum::Float(_) | Datum::Decimal(_), SqlType::Int | SqlType::Float | SqlType::Decimal)
            | (Datum::String(_), _)
            | (Datum::Date(_) | Datum::Timestamp(_) | Datum::TimestampTz(_), SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz)
            | (_, SqlType::Jsonb) => self.cast(to.base())?,
            (d, _) => {
                return Err(SqlError::user(
                    codes::DATATYPE_MISMATCH,
                    format!("value type {} doesn't match type {} of column \"{column}\"", d.type_name(), to.name()),
                ));
            }
        };
        d.conform(spec, false)
    }

    /// Assignment coercion to a bare type (no modifiers).
    pub fn coerce_to(self, to: SqlType, column: &str) -> Result<Datum, SqlError> {
        self.coerce(&TypeSpec::of(to), column)
    }

    /// Total order of two non-NULL values of compatible types; None if incomparable.
    pub fn compare(&self, other: &Datum) -> Option<Ordering> {
        use Datum::*;
        match (self, other) {
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (Float(a), Float(b)) => Some(pg_float_cmp(*a, *b)),
            (Int(a), Float(b)) => Some(pg_float_cmp(*a as f64, *b)),
            (Float(a), Int(b)) => Some(pg_float_cmp(*a, *b as f64)),
            (Decimal(a), Decimal(b)) => Some(a.cmp(b)),
            (Decimal(a), Int(b)) => Some(a.cmp(&rust_decimal::Decimal::from(*b))),
            (Int(a), Decimal(b)) => Some(rust_decimal::Decimal::from(*a).cmp(b)),
            (Decimal(a), Float(b)) => Some(pg_float_cmp(a.to_f64().unwrap_or(f64::NAN), *b)),
            (Float(a), Decimal(b)) => Some(pg_float_cmp(*a, b.to_f64().unwrap_or(f64::NAN))),
            (String(a), String(b)) => Some(a.cmp(b)),
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Bytes(a), Bytes(b)) => Some(a.cmp(b)),
            (Date(_) | Timestamp(_) | TimestampTz(_), Date(_) | Timestamp(_) | TimestampTz(_)) => {
                Some(self.micros().unwrap_or(0).cmp(&other.micros().unwrap_or(0)))
            }
            (Interval(a), Interval(b)) => Some(a.total().cmp(&b.total())),
            (Uuid(a), Uuid(b)) => Some(a.cmp(b)),
            (Json(a), Json(b)) => Some(if a == b { Ordering::Equal } else { a.to_string().cmp(&b.to_string()) }),
            _ => None,
        }
    }

    /// Microseconds since the epoch of a date or timestamp.
    pub fn micros(&self) -> Option<i64> {
        match self {
            Datum::Date(d) => Some(*d as i64 * DAY_US),
            Datum::Timestamp(us) | Datum::TimestampTz(us) => Some(*us),
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

/// Rounds to the scale and checks the precision of `DECIMAL(p, s)` (22003 on overflow).
pub fn conform_decimal(d: Decimal, precision: Option<u32>, scale: Option<u32>) -> Result<Decimal, SqlError> {
    let Some(p) = precision else {
        return Ok(d);
    };
    let s = scale.unwrap_or(0);
    let mut r = d.round_dp_with_strategy(s, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    r.rescale(s);
    let int_digits = p.saturating_sub(s);
    let limit = Decimal::from_i128_with_scale(10i128.pow(int_digits.min(28)), 0);
    if r.abs() >= limit {
        return Err(SqlError::user(
            codes::OUT_OF_RANGE,
            format!(
                "numeric field overflow: a field with precision {p}, scale {s} must round to an absolute value less than 10^{int_digits}"
            ),
        ));
    }
    Ok(r)
}

pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if s.len() > 100 {
        return None;
    }
    s.parse::<Decimal>().ok().or_else(|| Decimal::from_scientific(s).ok())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip_and_special_values() {
        assert_eq!(Datum::from_json(&json!(5)).unwrap(), Datum::Int(5));
        assert_eq!(Datum::from_json(&json!(1.5)).unwrap(), Datum::Float(1.5));
        assert_eq!(Datum::from_json(&json!([1])).unwrap(), Datum::Json(json!([1])));
        assert_eq!(Datum::Float(f64::NAN).to_json(), json!("NaN"));
        assert_eq!(Datum::Bytes(vec![1, 0xab]).to_json(), json!("\\x01ab"));
        assert_eq!(Datum::TimestampTz(0).to_json(), json!("1970-01-01T00:00:00Z"));
        assert_eq!(Datum::Timestamp(1_500_000).to_json(), json!("1970-01-01 00:00:01.5"));
        assert_eq!(Datum::Date(1).to_json(), json!("1970-01-02"));
        assert_eq!(Datum::String("1.50".into()).cast(SqlType::Decimal).unwrap().to_json(), json!("1.50"));
    }

    #[test]
    fn casts_and_coercions() {
        assert_eq!(Datum::String("42".into()).cast(SqlType::Int).unwrap(), Datum::Int(42));
        assert_eq!(Datum::String("x".into()).cast(SqlType::Int).unwrap_err().code(), "22P02");
        assert_eq!(Datum::Float(1e300).cast(SqlType::Int).unwrap_err().code(), "22003");
        assert_eq!(Datum::Int(1 << 40).cast(SqlType::Int4).unwrap_err().to_string(), "integer out of range");
        assert_eq!(Datum::Int(1).coerce_to(SqlType::Float, "c").unwrap(), Datum::Float(1.0));
        assert_eq!(Datum::Bool(true).coerce_to(SqlType::Int, "c").unwrap_err().code(), "42804");
        let ts = Datum::String("2024-01-02 03:04:05+00".into()).cast(SqlType::TimestampTz).unwrap();
        assert_eq!(ts.to_text(), "2024-01-02T03:04:05Z");
        assert_eq!(Datum::String("\\x0aff".into()).cast(SqlType::Bytes).unwrap(), Datum::Bytes(vec![10, 255]));
        let money = TypeSpec { width: Some(5), scale: Some(2), ..TypeSpec::of(SqlType::Decimal) };
        assert_eq!(Datum::String("1.005".into()).coerce(&money, "m").unwrap().to_text(), "1.01");
        assert_eq!(Datum::Int(1000).coerce(&money, "m").unwrap_err().code(), "22003");
        let vc = TypeSpec { width: Some(2), ..TypeSpec::of(SqlType::String) };
        assert_eq!(Datum::String("abc".into()).coerce(&vc, "s").unwrap_err().code(), "22001");
        assert_eq!(Datum::String("abc".into()).conform(&vc, true).unwrap(), Datum::String("ab".into()));
    }

    #[test]
    fn ordering_puts_nulls_last() {
        assert_eq!(Datum::Null.sort_cmp(&Datum::Int(1)), Ordering::Greater);
        assert_eq!(Datum::Int(1).compare(&Datum::Float(1.5)), Some(Ordering::Less));
        assert_eq!(Datum::Int(1).compare(&Datum::String("a".into())), None);
        assert_eq!(Datum::Date(1).compare(&Datum::Timestamp(DAY_US)), Some(Ordering::Equal));
    }
}

/// PostgreSQL's float order: `-0 = 0`, NaN equals NaN and sorts above every other value.
pub fn pg_float_cmp(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        // Neither is NaN, so partial_cmp always answers; -0.0 == 0.0 here.
        (false, false) => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

#[cfg(test)]
mod float_order_tests {
    use super::pg_float_cmp;
    use std::cmp::Ordering;

    #[test]
    fn floats_order_as_in_postgresql() {
        assert_eq!(pg_float_cmp(-0.0, 0.0), Ordering::Equal);
        assert_eq!(pg_float_cmp(f64::NAN, f64::NAN), Ordering::Equal);
        assert_eq!(pg_float_cmp(f64::NAN, f64::INFINITY), Ordering::Greater);
        assert_eq!(pg_float_cmp(-1.0, 2.0), Ordering::Less);
    }
}
