//! Evaluation of compiled [`Scalar`] expressions over a row and aggregate results.
//!
//! Invariants: SQL three-valued logic (NULL propagates through operators; AND/OR/NOT/IN/ANY/ALL
//! use Kleene logic, AND/OR short-circuit); integer arithmetic is checked (22003 on overflow,
//! 22012 on division by zero, also for floats); operators on unsupported type pairs are 42883;
//! non-boolean conditions are 42804. Never panics on any input. A correlated subquery is read
//! from its cache: a miss fails the evaluation and the calling operator runs the subquery
//! (`subquery::eval_row`).
//! Date/time arithmetic follows PostgreSQL (date ± int, date - date, timestamp ± interval,
//! timestamp - timestamp); DECIMAL arithmetic is exact (division rounds to at least 16 places).
//! Not handled: collations, jsonb operators other than `->`, `->>` and `||`.

use crate::datum::Datum;
use crate::error::{SqlError, codes};
use crate::expr::{BinOp, Scalar};
use crate::func::eval_func;
use crate::temporal;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::cmp::Ordering;

pub(crate) fn overflow() -> SqlError {
    SqlError::user(codes::OUT_OF_RANGE, "integer out of range")
}

fn no_operator(op: &str, a: &Datum, b: &Datum) -> SqlError {
    let n = |d: &Datum| d.type_name();
    SqlError::user(codes::UNDEFINED_FUNCTION, format!("operator does not exist: {} {op} {}", n(a), n(b)))
}

/// SQL truth value of a datum: Some(bool) or None for NULL; non-booleans are 42804.
pub fn truth(d: &Datum, what: &str) -> Result<Option<bool>, SqlError> {
    match d {
        Datum::Bool(b) => Ok(Some(*b)),
        Datum::Null => Ok(None),
        other => Err(SqlError::user(
            codes::DATATYPE_MISMATCH,
            format!("argument of {what} must be type BOOL, not {}", other.ty().map(|t| t.name()).unwrap_or("NULL")),
        )),
    }
}

fn bool_or_null(b: Option<bool>) -> Datum {
    b.map(Datum::Bool).unwrap_or(Datum::Null)
}

/// Evaluates `s` over `row` (column values) and `aggs` (aggregate results).
pub fn eval(s: &Scalar, row: &[Datum], aggs: &[Datum]) -> Result<Datum, SqlError> {
    Ok(match s {
        Scalar::Lit(d) => d.clone(),
        Scalar::Col(i) => row.get(*i).cloned().unwrap_or(Datum::Null),
        Scalar::Agg(i) => aggs.get(*i).cloned().unwrap_or(Datum::Null),
        Scalar::Neg(e) => match eval(e, row, aggs)? {
            Datum::Null => Datum::Null,
            Datum::Int(i) => Datum::Int(i.checked_neg().ok_or_else(overflow)?),
            Datum::Float(f) => Datum::Float(-f),
            Datum::Decimal(d) => Datum::Decimal(-d),
            Datum::Interval(iv) => Datum::Interval(iv.checked_neg().ok_or_else(interval_range)?),
            other => return Err(no_operator("-", &Datum::Null, &other)),
        },
        Scalar::Not(e) => bool_or_null(truth(&eval(e, row, aggs)?, "NOT")?.map(|b| !b)),
        Scalar::Bin(BinOp::And, l, r) => {
            let a = truth(&eval(l, row, aggs)?, "AND")?;
            if a == Some(false) {
                return Ok(Datum::Bool(false));
            }
            match (a, truth(&eval(r, row, aggs)?, "AND")?) {
                (_, Some(false)) => Datum::Bool(false),
                (Some(true), Some(true)) => Datum::Bool(true),
                _ => Datum::Null,
            }
        }
        Scalar::Bin(BinOp::Or, l, r) => {
            let a = truth(&eval(l, row, aggs)?, "OR")?;
            if a == Some(true) {
                return Ok(Datum::Bool(true));
            }
            match (a, truth(&eval(r, row, aggs)?, "OR")?) {
                (_, Some(true)) => Datum::Bool(true),
                (Some(false), Some(false)) => Datum::Bool(false),
                _ => Datum::Null,
            }
        }
        Scalar::Bin(op, l, r) => binary(*op, eval(l, row, aggs)?, eval(r, row, aggs)?)?,
        Scalar::IsNull(e, negated) => Datum::Bool(eval(e, row, aggs)?.is_null() != *negated),
        Scalar::IsBool(e, value, negated) => {
            let t = truth(&eval(e, row, aggs)?, "IS TRUE")?;
            Datum::Bool((t == Some(*value)) != *negated)
        }
        Scalar::IsDistinct(l, r, negated) => {
            let (a, b) = (eval(l, row, aggs)?, eval(r, row, aggs)?);
            let same = match (a.is_null(), b.is_null()) {
                (true, true) => true,
                (false, false) => compare(&a, &b, "IS DISTINCT FROM")? == Some(Ordering::Equal),
                _ => false,
            };
            Datum::Bool(same == *negated)
        }
        Scalar::Case { operand, whens, otherwise } => {
            let op = operand.as_ref().map(|o| eval(o, row, aggs)).transpose()?;
            for (cond, result) in whens {
                let c = eval(cond, row, aggs)?;
                let hit = match &op {
                    Some(o) => compare(o, &c, "=")? == Some(Ordering::Equal),
                    None => truth(&c, "CASE")? == Some(true),
                };
                if hit {
                    return eval(result, row, aggs);
                }
            }
            match otherwise {
                Some(o) => eval(o, row, aggs)?,
                None => Datum::Null,
            }
        }
        Scalar::Subquery(_) | Scalar::Exists(..) | Scalar::InSubquery(..) | Scalar::AnySubquery(..) => {
            return Err(SqlError::user(codes::UNSUPPORTED, "unsupported: subquery in this context"));
        }
        Scalar::Outer(..) => return Err(SqlError::user("XX000", "internal error: outer reference outside its subquery")),
        Scalar::Correlated(c) => crate::subquery::eval_corr(c, row, aggs)?,
        Scalar::AnyList(x, op, all, items) => {
            // With no values the left operand is never evaluated.
            let x = if items.is_empty() { Datum::Null } else { eval(x, row, aggs)? };
            any_all(*op, *all, &x, items)?
        }
        Scalar::InList(x, list, negated) => {
            // An empty list (a subquery without rows): `x IN ()` is false, `x NOT IN ()` true,
            // even when x is NULL.
            if list.is_empty() {
                return Ok(Datum::Bool(*negated));
            }
            let x = eval(x, row, aggs)?;
            if x.is_null() {
                return Ok(Datum::Null);
            }
            let mut result = Some(false);
            for item in list {
                match compare(&x, &eval(item, row, aggs)?, "=")? {
                    Some(Ordering::Equal) => {
                        result = Some(true);
                        break;
                    }
                    None => result = None,
                    Some(_) => {}
                }
            }
            bool_or_null(result.map(|b| b != *negated))
        }
        Scalar::Between(x, lo, hi, negated) => {
            let x = eval(x, row, aggs)?;
            let ge = compare(&x, &eval(lo, row, aggs)?, ">=")?.map(|o| o != Ordering::Less);
            let le = compare(&x, &eval(hi, row, aggs)?, "<=")?.map(|o| o != Ordering::Greater);
            let both = match (ge, le) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            bool_or_null(both.map(|b| b != *negated))
        }
        Scalar::Like { expr, pattern, negated, ci, escape } => match (eval(expr, row, aggs)?, eval(pattern, row, aggs)?) {
            (Datum::Null, _) | (_, Datum::Null) => Datum::Null,
            (Datum::String(s), Datum::String(p)) => {
                let (s, p): (Vec<char>, Vec<char>) = if *ci {
                    (s.to_lowercase().chars().collect(), p.to_lowercase().chars().collect())
                } else {
                    (s.chars().collect(), p.chars().collect())
                };
                Datum::Bool(like(&s, &p, *escape) != *negated)
            }
            (a, b) => return Err(no_operator("LIKE", &a, &b)),
        },
        Scalar::Cast(e, spec) => eval(e, row, aggs)?.cast(spec.ty)?.conform(spec, true)?,
        Scalar::Func(f, args) => eval_func(*f, args, row, aggs)?,
    })
}

/// `x op ANY (items)` (`all` false) or `x op ALL (items)`: over no items false (ANY) or true
/// (ALL) whatever `x`; otherwise true/false when some comparison decides it, else NULL when a
/// comparison was NULL. `x IN (...)` is `x = ANY (...)`.
pub(crate) fn any_all(op: BinOp, all: bool, x: &Datum, items: &[Datum]) -> Result<Datum, SqlError> {
    let mut unknown = false;
    for item in items {
        match truth(&binary(op, x.clone(), item.clone())?, "ANY/ALL")? {
            Some(b) if b != all => return Ok(Datum::Bool(b)),
            Some(_) => {}
            None => unknown = true,
        }
    }
    Ok(if unknown { Datum::Null } else { Datum::Bool(all) })
}

/// Compares two values for a comparison operator; None when either is NULL.
fn compare(a: &Datum, b: &Datum, op: &str) -> Result<Option<Ordering>, SqlError> {
    if a.is_null() || b.is_null() {
        return Ok(None);
    }
    a.compare(b).map(Some).ok_or_else(|| no_operator(op, a, b))
}

pub(crate) fn binary(op: BinOp, a: Datum, b: Datum) -> Result<Datum, SqlError> {
    let cmp = |name: &str, f: fn(Ordering) -> bool| -> Result<Datum, SqlError> { Ok(bool_or_null(compare(&a, &b, name)?.map(f))) };
    match op {
        BinOp::Eq => return cmp("=", |o| o == Ordering::Equal),
        BinOp::NotEq => return cmp("<>", |o| o != Ordering::Equal),
        BinOp::Lt => return cmp("<", |o| o == Ordering::Less),
        BinOp::LtEq => return cmp("<=", |o| o != Ordering::Greater),
        BinOp::Gt => return cmp(">", |o| o == Ordering::Greater),
        BinOp::GtEq => return cmp(">=", |o| o != Ordering::Less),
        _ => {}
    }
    if a.is_null() || b.is_null() {
        return Ok(Datum::Null);
    }
    let name = match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        _ => "||",
    };
    let div_zero = || SqlError::user(codes::DIV_ZERO, "division by zero");
    Ok(match (op, &a, &b) {
        (BinOp::JsonGet | BinOp::JsonGetText, Datum::Json(j), key) => {
            let v = match key {
                Datum::String(k) => j.get(k.as_str()),
                Datum::Int(i) => match j {
                    serde_json::Value::Array(arr) => {
                        let idx = if *i < 0 { arr.len() as i64 + i } else { *i };
                        usize::try_from(idx).ok().and_then(|i| arr.get(i))
                    }
                    _ => None,
                },
                _ => return Err(no_operator(name, &a, &b)),
            };
            match (v, op) {
                (None, _) => Datum::Null,
                (Some(serde_json::Value::Null), BinOp::JsonGetText) => Datum::Null,
                (Some(serde_json::Value::String(s)), BinOp::JsonGetText) => Datum::String(s.clone()),
                (Some(v), BinOp::JsonGetText) => Datum::String(v.to_string()),
                (Some(v), _) => Datum::Json(v.clone()),
            }
        }
        (BinOp::JsonGet | BinOp::JsonGetText, _, _) => return Err(no_operator(name, &a, &b)),
        (BinOp::Concat, Datum::Bytes(x), Datum::Bytes(y)) => Datum::Bytes([x.as_slice(), y].concat()),
        (BinOp::Concat, Datum::Json(x), Datum::Json(y)) => match (x, y) {
            (serde_json::Value::Object(m1), serde_json::Value::Object(m2)) => {
                let mut m = m1.clone();
                m.extend(m2.clone());
                Datum::Json(serde_json::Value::Object(m))
            }
            (x, y) => {
                let as_vec = |v: &serde_json::Value| match v {
                    serde_json::Value::Array(a) => a.clone(),
                    other => vec![other.clone()],
                };
                Datum::Json(serde_json::Value::Array([as_vec(x), as_vec(y)].concat()))
            }
        },
        (BinOp::Concat, _, _) => Datum::String(a.to_text() + &b.to_text()),
        (_, Datum::Int(x), Datum::Int(y)) if op != BinOp::Pow => {
            let (x, y) = (*x, *y);
            if matches!(op, BinOp::Div | BinOp::Mod) && y == 0 {
                return Err(div_zero());
            }
            let r = match op {
                BinOp::Add => x.checked_add(y),
                BinOp::Sub => x.checked_sub(y),
                BinOp::Mul => x.checked_mul(y),
                BinOp::Div => x.checked_div(y),
                _ => x.checked_rem(y),
            };
            Datum::Int(r.ok_or_else(overflow)?)
        }
        (_, Datum::Decimal(_) | Datum::Int(_), Datum::Decimal(_) | Datum::Int(_))
            if !(op == BinOp::Pow && matches!((&a, &b), (Datum::Int(_), Datum::Int(_)))) =>
        {
            let dec = |d: &Datum| match d {
                Datum::Int(i) => Decimal::from(*i),
                Datum::Decimal(x) => *x,
                _ => Decimal::ZERO,
            };
            let (x, y) = (dec(&a), dec(&b));
            let over = || SqlError::user(codes::OUT_OF_RANGE, "value overflows numeric format");
            if matches!(op, BinOp::Div | BinOp::Mod) && y.is_zero() {
                return Err(div_zero());
            }
            Datum::Decimal(match op {
                BinOp::Add => x.checked_add(y).ok_or_else(over)?,
                BinOp::Sub => x.checked_sub(y).ok_or_else(over)?,
                BinOp::Mul => x.checked_mul(y).ok_or_else(over)?,
                BinOp::Div => {
                    let q = x.checked_div(y).ok_or_else(over)?;
                    let scale = x.scale().max(y.scale()).max(16);
                    let mut r = q.round_dp(scale);
                    if r.scale() < scale && r.mantissa().abs() < 10i128.pow(12) {
                        r.rescale(scale);
                    }
                    r
                }
                BinOp::Mod => x.checked_rem(y).ok_or_else(over)?,
                _ => {
                    let p = rust_decimal::MathematicalOps::checked_powd(&x, y).ok_or_else(over)?;
                    p.normalize()
                }
            })
        }
        (_, Datum::Int(_) | Datum::Float(_) | Datum::Decimal(_), Datum::Int(_) | Datum::Float(_) | Datum::Decimal(_)) => {
            let f = |d: &Datum| match d {
                Datum::Int(i) => *i as f64,
                Datum::Float(f) => *f,
                Datum::Decimal(x) => x.to_f64().unwrap_or(f64::NAN),
                _ => 0.0,
            };
            let (x, y) = (f(&a), f(&b));
            if matches!(op, BinOp::Div | BinOp::Mod) && y == 0.0 {
                return Err(div_zero());
            }
            let r = match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                BinOp::Pow => {
                    if x == 0.0 && y < 0.0 {
                        return Err(SqlError::user("2201F", "zero raised to a negative power is undefined"));
                    }
                    x.powf(y)
                }
                _ => x % y,
            };
            if r.is_infinite() && x.is_finite() && y.is_finite() {
                return Err(SqlError::user(codes::OUT_OF_RANGE, "value out of range: overflow"));
            }
            Datum::Float(r)
        }
        _ => temporal_op(op, &a, &b).ok_or_else(|| no_operator(name, &a, &b))??,
    })
}

fn interval_range() -> SqlError {
    SqlError::user(codes::DATETIME, "interval out of range")
}

fn ts_range() -> SqlError {
    SqlError::user(codes::DATETIME, "timestamp out of range")
}

/// Date/time arithmetic; None when the operator does not exist for the types.
fn temporal_op(op: BinOp, a: &Datum, b: &Datum) -> Option<Result<Datum, SqlError>> {
    use Datum::*;
    let shift = |us: i64, iv: &temporal::Interval, neg: bool| -> Result<i64, SqlError> {
        let iv = if neg { iv.checked_neg().ok_or_else(interval_range)? } else { *iv };
        temporal::add_interval(us, &iv).ok_or_else(ts_range)
    };
    let date = |d: i64| -> Result<Datum, SqlError> {
        i32::try_from(d).map(Date).map_err(|_| SqlError::user(codes::DATETIME, "date out of range"))
    };
    Some(match (op, a, b) {
        (BinOp::Add, Date(d), Int(n)) | (BinOp::Add, Int(n), Date(d)) => date(*d as i64 + n),
        (BinOp::Sub, Date(d), Int(n)) => date(*d as i64 - n),
        (BinOp::Sub, Date(x), Date(y)) => Ok(Int(*x as i64 - *y as i64)),
        (BinOp::Add | BinOp::Sub, Date(d), Interval(iv)) => shift(*d as i64 * temporal::DAY_US, iv, op == BinOp::Sub).map(Timestamp),
        (BinOp::Add, Interval(iv), Date(d)) => shift(*d as i64 * temporal::DAY_US, iv, false).map(Timestamp),
        (BinOp::Add | BinOp::Sub, Timestamp(us), Interval(iv)) => shift(*us, iv, op == BinOp::Sub).map(Timestamp),
        (BinOp::Add | BinOp::Sub, TimestampTz(us), Interval(iv)) => shift(*us, iv, op == BinOp::Sub).map(TimestampTz),
        (BinOp::Add, Interval(iv), Timestamp(us)) => shift(*us, iv, false).map(Timestamp),
        (BinOp::Add, Interval(iv), TimestampTz(us)) => shift(*us, iv, false).map(TimestampTz),
        (BinOp::Sub, Timestamp(x) | TimestampTz(x), Timestamp(y) | TimestampTz(y)) => {
            temporal::diff(*x, *y).map(Interval).ok_or_else(interval_range)
        }
        (BinOp::Add, Interval(x), Interval(y)) => x.checked_add(y).map(Interval).ok_or_else(interval_range),
        (BinOp::Sub, Interval(x), Interval(y)) => y.checked_neg().and_then(|n| x.checked_add(&n)).map(Interval).ok_or_else(interval_range),
        (BinOp::Mul | BinOp::Div, Interval(iv), n) | (BinOp::Mul, n @ (Int(_) | Float(_) | Decimal(_)), Interval(iv)) => {
            let f = match n {
                Int(i) => *i as f64,
                Float(f) => *f,
                Decimal(d) => d.to_f64().unwrap_or(f64::NAN),
                _ => return None,
            };
            if op == BinOp::Div && f == 0.0 {
                return Some(Err(SqlError::user(codes::DIV_ZERO, "division by zero")));
            }
            iv.mul(if op == BinOp::Div { 1.0 / f } else { f }).map(Interval).ok_or_else(interval_range)
        }
        _ => return None,
    })
}

/// SQL LIKE: `%` matches any run of characters, `_` exactly one, the escape character (default
/// backslash, none if `None`) makes the next character literal.
fn like(s: &[char], p: &[char], escape: Option<char>) -> bool {
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            c if Some(c) == escape && i + 1 < p.len() => {
                toks.push(Tok::Lit(p[i + 1]));
                i += 1;
            }
            '%' => toks.push(Tok::Any),
            '_' => toks.push(Tok::One),
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    // Greedy match, backtracking to the last `%` on a mismatch.
    let (mut si, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match toks.get(ti) {
            Some(Tok::Any) => {
                star = Some((ti, si));
                ti += 1;
                continue;
            }
            Some(Tok::One) => {
                si += 1;
                ti += 1;
                continue;
            }
            Some(Tok::Lit(c)) if *c == s[si] => {
                si += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((st, ss)) => {
                ti = st + 1;
                si = ss + 1;
                star = Some((st, ss + 1));
            }
            None => return false,
        }
    }
    toks[ti.min(toks.len())..].iter().all(|t| matches!(t, Tok::Any))
}
