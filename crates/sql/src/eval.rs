//! Evaluation of compiled [`Scalar`] expressions over a row and aggregate results.
//!
//! Invariants: SQL three-valued logic (NULL propagates through operators; AND/OR/NOT/IN use
//! Kleene logic, AND/OR short-circuit); integer arithmetic is checked (22003 on overflow, 22012
//! on division by zero, also for floats); operators on unsupported type pairs are 42883;
//! non-boolean conditions are 42804. Never panics on any input.
//! Not handled: LIKE ESCAPE clauses (backslash is the fixed escape), collations.

use crate::datum::Datum;
use crate::error::{SqlError, codes};
use crate::expr::{BinOp, Func, Scalar};
use std::cmp::Ordering;

pub(crate) fn overflow() -> SqlError {
    SqlError::user(codes::OUT_OF_RANGE, "integer out of range")
}

fn no_operator(op: &str, a: &Datum, b: &Datum) -> SqlError {
    let n = |d: &Datum| d.ty().map(|t| t.name()).unwrap_or("NULL");
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
        Scalar::InList(x, list, negated) => {
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
        Scalar::Like { expr, pattern, negated, ci } => match (eval(expr, row, aggs)?, eval(pattern, row, aggs)?) {
            (Datum::Null, _) | (_, Datum::Null) => Datum::Null,
            (Datum::String(s), Datum::String(p)) => {
                let (s, p): (Vec<char>, Vec<char>) = if *ci {
                    (s.to_lowercase().chars().collect(), p.to_lowercase().chars().collect())
                } else {
                    (s.chars().collect(), p.chars().collect())
                };
                Datum::Bool(like(&s, &p) != *negated)
            }
            (a, b) => return Err(no_operator("LIKE", &a, &b)),
        },
        Scalar::Cast(e, ty) => eval(e, row, aggs)?.cast(*ty)?,
        Scalar::Func(f, args) => func(*f, args, row, aggs)?,
    })
}

/// Compares two values for a comparison operator; None when either is NULL.
fn compare(a: &Datum, b: &Datum, op: &str) -> Result<Option<Ordering>, SqlError> {
    if a.is_null() || b.is_null() {
        return Ok(None);
    }
    a.compare(b).map(Some).ok_or_else(|| no_operator(op, a, b))
}

fn binary(op: BinOp, a: Datum, b: Datum) -> Result<Datum, SqlError> {
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
    Ok(match (op, &a, &b) {
        (BinOp::Concat, Datum::Bytes(x), Datum::Bytes(y)) => Datum::Bytes([x.as_slice(), y].concat()),
        (BinOp::Concat, _, _) => Datum::String(a.to_text() + &b.to_text()),
        (_, Datum::Int(x), Datum::Int(y)) => {
            let (x, y) = (*x, *y);
            if matches!(op, BinOp::Div | BinOp::Mod) && y == 0 {
                return Err(SqlError::user(codes::DIV_ZERO, "division by zero"));
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
        (_, Datum::Int(_) | Datum::Float(_), Datum::Int(_) | Datum::Float(_)) => {
            let f = |d: &Datum| match d {
                Datum::Int(i) => *i as f64,
                Datum::Float(f) => *f,
                _ => 0.0,
            };
            let (x, y) = (f(&a), f(&b));
            if matches!(op, BinOp::Div | BinOp::Mod) && y == 0.0 {
                return Err(SqlError::user(codes::DIV_ZERO, "division by zero"));
            }
            let r = match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                _ => x % y,
            };
            if r.is_infinite() && x.is_finite() && y.is_finite() {
                return Err(SqlError::user(codes::OUT_OF_RANGE, "value out of range: overflow"));
            }
            Datum::Float(r)
        }
        _ => return Err(no_operator(name, &a, &b)),
    })
}

fn func(f: Func, args: &[Scalar], row: &[Datum], aggs: &[Datum]) -> Result<Datum, SqlError> {
    if f == Func::Coalesce {
        for a in args {
            let v = eval(a, row, aggs)?;
            if !v.is_null() {
                return Ok(v);
            }
        }
        return Ok(Datum::Null);
    }
    let v = match args.first() {
        Some(a) => eval(a, row, aggs)?,
        None => Datum::Null,
    };
    let bad = |v: &Datum| {
        SqlError::user(
            codes::UNDEFINED_FUNCTION,
            format!("function {f:?}({}) does not exist", v.ty().map(|t| t.name()).unwrap_or("NULL")).to_lowercase(),
        )
    };
    Ok(match (f, &v) {
        (_, Datum::Null) => Datum::Null,
        (Func::Lower, Datum::String(s)) => Datum::String(s.to_lowercase()),
        (Func::Upper, Datum::String(s)) => Datum::String(s.to_uppercase()),
        (Func::Length, Datum::String(s)) => Datum::Int(s.chars().count() as i64),
        (Func::Length, Datum::Bytes(b)) => Datum::Int(b.len() as i64),
        (Func::Abs, Datum::Int(i)) => Datum::Int(i.checked_abs().ok_or_else(overflow)?),
        (Func::Abs, Datum::Float(x)) => Datum::Float(x.abs()),
        _ => return Err(bad(&v)),
    })
}

/// SQL LIKE: `%` matches any run of characters, `_` exactly one, `\` escapes the next character.
fn like(s: &[char], p: &[char]) -> bool {
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' if i + 1 < p.len() => {
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
