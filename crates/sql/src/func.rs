//! Built-in functions: name/arity resolution at compile time ([`compile_function`], which also
//! records aggregates), result types, and evaluation ([`eval_func`]).
//!
//! Invariants: argument-count mismatches and unknown names are 42883; a NULL argument yields
//! NULL for strict functions (all but coalesce/concat/greatest/least, which skip NULLs);
//! numeric overflow is 22003; bad arguments (negative repeat counts, invalid date fields) are
//! 22023. Never panics on any input; repeat/lpad/rpad are capped at 64 MiB of output.
//! Not handled: regex functions, formatting functions (to_char), `age`.

use crate::catalog::SqlType;
use crate::datum::Datum;
use crate::error::{SqlError, codes};
use crate::eval::{binary, eval, overflow};
use crate::expr::{AggFunc, AggSpec, BinOp, Compiler, Scalar, ident_name, unsupported};
use crate::temporal;
use rust_decimal::prelude::{Decimal, FromPrimitive, ToPrimitive};
use rust_decimal::{MathematicalOps, RoundingStrategy};
use sqlparser::ast::{DuplicateTreatment, Function, FunctionArg, FunctionArgExpr, FunctionArguments};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Lower,
    Upper,
    Length,
    OctetLength,
    Abs,
    Coalesce,
    NullIf,
    Greatest,
    Least,
    Substr,
    BTrim,
    LTrim,
    RTrim,
    Replace,
    Concat,
    StrPos,
    Left,
    Right,
    Repeat,
    Reverse,
    SplitPart,
    Lpad,
    Rpad,
    Ceil,
    Floor,
    Round,
    Trunc,
    Mod,
    Power,
    Sqrt,
    Sign,
    DateTrunc,
    Extract,
    GenRandomUuid,
    /// Replaced by a fresh `txn.unique_rowid()` literal wherever it is evaluated.
    UniqueRowid,
    JsonbTypeof,
}

const MAX_OUT: usize = 64 << 20;

fn args_of(f: &Function) -> Result<(Vec<&sqlparser::ast::Expr>, bool, bool), SqlError> {
    let mut star = false;
    let mut out = Vec::new();
    let mut distinct = false;
    match &f.args {
        FunctionArguments::None => {}
        FunctionArguments::Subquery(_) => return Err(unsupported("subquery as function argument")),
        FunctionArguments::List(list) => {
            distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
            if !list.clauses.is_empty() {
                return Err(unsupported(format!("function syntax {f}")));
            }
            for a in &list.args {
                match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => out.push(e),
                    FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                    _ => return Err(unsupported(format!("function argument {a}"))),
                }
            }
        }
    }
    Ok((out, star, distinct))
}

pub fn compile_function(c: &mut Compiler<'_>, f: &Function) -> Result<Scalar, SqlError> {
    let name = f.name.0.last().and_then(|p| p.as_ident()).map(ident_name).unwrap_or_default();
    if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
        return Err(unsupported(format!("function syntax {f}")));
    }
    let (arg_exprs, star, distinct) = args_of(f)?;
    let wrong_args = || SqlError::user(codes::UNDEFINED_FUNCTION, format!("function {f} does not exist"));
    let agg = match name.as_str() {
        "count" if star && arg_exprs.is_empty() => Some(AggFunc::CountStar),
        "count" => Some(AggFunc::Count),
        "sum" => Some(AggFunc::Sum),
        "min" => Some(AggFunc::Min),
        "max" => Some(AggFunc::Max),
        "avg" => Some(AggFunc::Avg),
        "bool_and" | "every" => Some(AggFunc::BoolAnd),
        "bool_or" => Some(AggFunc::BoolOr),
        "string_agg" => Some(AggFunc::StringAgg),
        _ => None,
    };
    if star && agg != Some(AggFunc::CountStar) {
        return Err(wrong_args());
    }
    if let Some(func) = agg {
        let Some(specs) = c.aggs.take() else {
            return Err(SqlError::user(codes::GROUPING, format!("aggregate function {name} is not allowed here")));
        };
        // Arguments are compiled with aggregates disallowed (no nesting).
        let compiled: Result<Vec<Scalar>, SqlError> = arg_exprs.iter().map(|e| c.compile(e)).collect();
        c.aggs = Some(specs);
        let mut args = compiled?;
        if args.iter().any(Scalar::has_outer) && !args.iter().any(|a| !a.columns().is_empty()) {
            // PostgreSQL evaluates such an aggregate in the outer query.
            return Err(unsupported(format!("aggregate {name} over outer query columns only, inside a subquery")));
        }
        let expected = match func {
            AggFunc::CountStar => 0,
            AggFunc::StringAgg => 2,
            _ => 1,
        };
        if args.len() != expected {
            return Err(wrong_args());
        }
        let sep = if func == AggFunc::StringAgg { args.pop() } else { None };
        let spec = AggSpec { func, arg: args.pop(), sep, distinct };
        let specs = c.aggs.get_or_insert_with(Vec::new);
        let idx = match specs.iter().position(|s| *s == spec) {
            Some(i) => i,
            None => {
                specs.push(spec);
                specs.len() - 1
            }
        };
        return Ok(Scalar::Agg(idx));
    }
    if distinct {
        return Err(wrong_args());
    }
    let mut args = Vec::with_capacity(arg_exprs.len());
    for e in &arg_exprs {
        args.push(c.compile(e)?);
    }
    let (func, min, max) = match name.as_str() {
        "now" | "current_timestamp" | "transaction_timestamp" | "statement_timestamp" | "localtimestamp" => {
            if !args.is_empty() {
                return Err(wrong_args());
            }
            let d = if name == "localtimestamp" { Datum::Timestamp(c.now) } else { Datum::TimestampTz(c.now) };
            return Ok(Scalar::Lit(d));
        }
        "current_date" => {
            if !args.is_empty() {
                return Err(wrong_args());
            }
            return Ok(Scalar::Lit(Datum::TimestampTz(c.now).cast(SqlType::Date)?));
        }
        "lower" => (Func::Lower, 1, 1),
        "upper" => (Func::Upper, 1, 1),
        "length" | "char_length" | "character_length" => (Func::Length, 1, 1),
        "octet_length" => (Func::OctetLength, 1, 1),
        "abs" => (Func::Abs, 1, 1),
        "coalesce" => (Func::Coalesce, 1, usize::MAX),
        "nullif" => (Func::NullIf, 2, 2),
        "greatest" => (Func::Greatest, 1, usize::MAX),
        "least" => (Func::Least, 1, usize::MAX),
        "substr" | "substring" => (Func::Substr, 2, 3),
        "btrim" | "trim" => (Func::BTrim, 1, 2),
        "ltrim" => (Func::LTrim, 1, 2),
        "rtrim" => (Func::RTrim, 1, 2),
        "replace" => (Func::Replace, 3, 3),
        "concat" => (Func::Concat, 1, usize::MAX),
        "strpos" => (Func::StrPos, 2, 2),
        "position" => (Func::StrPos, 2, 2),
        "left" => (Func::Left, 2, 2),
        "right" => (Func::Right, 2, 2),
        "repeat" => (Func::Repeat, 2, 2),
        "reverse" => (Func::Reverse, 1, 1),
        "split_part" => (Func::SplitPart, 3, 3),
        "lpad" => (Func::Lpad, 2, 3),
        "rpad" => (Func::Rpad, 2, 3),
        "ceil" | "ceiling" => (Func::Ceil, 1, 1),
        "floor" => (Func::Floor, 1, 1),
        "round" => (Func::Round, 1, 2),
        "trunc" | "truncate" => (Func::Trunc, 1, 2),
        "mod" => (Func::Mod, 2, 2),
        "power" | "pow" => (Func::Power, 2, 2),
        "sqrt" => (Func::Sqrt, 1, 1),
        "sign" => (Func::Sign, 1, 1),
        "date_trunc" => (Func::DateTrunc, 2, 2),
        "date_part" | "extract" => (Func::Extract, 2, 2),
        "gen_random_uuid" | "uuid_generate_v4" => (Func::GenRandomUuid, 0, 0),
        "unique_rowid" => (Func::UniqueRowid, 0, 0),
        "jsonb_typeof" | "json_typeof" => (Func::JsonbTypeof, 1, 1),
        _ => return Err(SqlError::user(codes::UNDEFINED_FUNCTION, format!("function {name}() does not exist"))),
    };
    if args.len() < min || args.len() > max {
        return Err(wrong_args());
    }
    if matches!(func, Func::Coalesce | Func::Greatest | Func::Least) {
        crate::expr::unify_numeric(c, &mut args.iter_mut().collect::<Vec<_>>())?;
    }
    Ok(Scalar::Func(func, args))
}

pub fn result_type(c: &Compiler<'_>, f: Func, args: &[Scalar]) -> Option<SqlType> {
    use SqlType as T;
    let first = || args.first().and_then(|a| c.ty(a));
    match f {
        Func::Lower
        | Func::Upper
        | Func::Substr
        | Func::BTrim
        | Func::LTrim
        | Func::RTrim
        | Func::Replace
        | Func::Concat
        | Func::Left
        | Func::Right
        | Func::Repeat
        | Func::Reverse
        | Func::SplitPart
        | Func::Lpad
        | Func::Rpad
        | Func::JsonbTypeof => Some(T::String),
        Func::Length | Func::OctetLength | Func::StrPos | Func::UniqueRowid => Some(T::Int),
        Func::Abs | Func::Ceil | Func::Floor | Func::Round | Func::Trunc | Func::Sign | Func::Mod => first().map(|t| t.base()),
        Func::Power | Func::Sqrt => match first() {
            Some(T::Decimal) => Some(T::Decimal),
            _ => Some(T::Float),
        },
        Func::Coalesce | Func::NullIf | Func::Greatest | Func::Least => args.iter().find_map(|a| c.ty(a)),
        Func::DateTrunc => match args.get(1).and_then(|a| c.ty(a)) {
            Some(T::Date) => Some(T::TimestampTz),
            t => t,
        },
        Func::Extract => Some(T::Float),
        Func::GenRandomUuid => Some(T::Uuid),
    }
}

fn bad_arg(f: Func, args: &[Datum]) -> SqlError {
    let types: Vec<&str> = args.iter().map(|a| a.type_name()).collect();
    SqlError::user(codes::UNDEFINED_FUNCTION, format!("function {}({}) does not exist", format!("{f:?}").to_lowercase(), types.join(", ")))
}

fn int_arg(d: &Datum) -> Option<i64> {
    match d {
        Datum::Int(i) => Some(*i),
        _ => None,
    }
}

fn capped(n: usize) -> Result<(), SqlError> {
    if n > MAX_OUT {
        return Err(SqlError::user(codes::LIMIT, "requested length too large"));
    }
    Ok(())
}

fn pad(s: &str, len: i64, fill: &str, left: bool) -> Result<String, SqlError> {
    let len = len.max(0) as usize;
    capped(len)?;
    let chars: Vec<char> = s.chars().collect();
    if chars.len() >= len || fill.is_empty() {
        return Ok(chars.into_iter().take(len).collect());
    }
    let padding: String = fill.chars().cycle().take(len - chars.len()).collect();
    Ok(if left { padding + s } else { s.to_string() + &padding })
}

fn trim(s: &str, chars: &str, left: bool, right: bool) -> String {
    let set: Vec<char> = chars.chars().collect();
    let mut r = s;
    if left {
        r = r.trim_start_matches(|c| set.contains(&c));
    }
    if right {
        r = r.trim_end_matches(|c| set.contains(&c));
    }
    r.to_string()
}

fn round_dec(d: Decimal, places: i64, strategy: RoundingStrategy) -> Decimal {
    if places >= 0 {
        let mut r = d.round_dp_with_strategy(places.min(28) as u32, strategy);
        r.rescale(places.min(28) as u32);
        r
    } else {
        let p = Decimal::from_i128_with_scale(10i128.pow((-places).min(28) as u32), 0);
        ((d / p).round_dp_with_strategy(0, strategy)) * p
    }
}

pub fn eval_func(f: Func, args: &[Scalar], row: &[Datum], aggs: &[Datum]) -> Result<Datum, SqlError> {
    if f == Func::Coalesce {
        // Lazy, as in PostgreSQL: arguments after the first non-NULL one are never evaluated,
        // so `coalesce(x, 1 / 0)` does not fail when x is not NULL.
        for a in args {
            let v = eval(a, row, aggs)?;
            if !v.is_null() {
                return Ok(v);
            }
        }
        return Ok(Datum::Null);
    }
    let mut vals = Vec::with_capacity(args.len());
    for a in args {
        vals.push(eval(a, row, aggs)?);
    }
    match f {
        // concat() uses each type's output form: booleans are `t`/`f` (not `true` as in ::TEXT).
        Func::Concat => {
            let text = |v: &Datum| match v {
                Datum::Bool(b) => (if *b { "t" } else { "f" }).to_string(),
                other => other.to_text(),
            };
            return Ok(Datum::String(vals.iter().filter(|v| !v.is_null()).map(text).collect()));
        }
        Func::Greatest | Func::Least => {
            let mut best: Option<Datum> = None;
            for v in vals.into_iter().filter(|v| !v.is_null()) {
                best = Some(match best {
                    None => v,
                    Some(b) => {
                        let o = v.compare(&b).ok_or_else(|| bad_arg(f, &[v.clone(), b.clone()]))?;
                        if (o == std::cmp::Ordering::Greater) == (f == Func::Greatest) && o != std::cmp::Ordering::Equal { v } else { b }
                    }
                });
            }
            return Ok(best.unwrap_or(Datum::Null));
        }
        Func::NullIf => {
            let eq = binary(BinOp::Eq, vals[0].clone(), vals[1].clone())?;
            return Ok(if eq == Datum::Bool(true) { Datum::Null } else { vals[0].clone() });
        }
        Func::GenRandomUuid => return Ok(Datum::Uuid(*uuid::Uuid::new_v4().as_bytes())),
        Func::UniqueRowid => return Err(SqlError::user(codes::UNSUPPORTED, "unique_rowid() is not available here")),
        _ => {}
    }
    if vals.iter().any(Datum::is_null) {
        return Ok(Datum::Null);
    }
    let bad = || bad_arg(f, &vals);
    let text = |i: usize| match vals.get(i) {
        Some(Datum::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let int = |i: usize| vals.get(i).and_then(int_arg);
    let invalid = |msg: &str| SqlError::user(codes::INVALID_PARAM, msg.to_string());
    Ok(match f {
        Func::Lower => Datum::String(text(0).ok_or_else(bad)?.to_lowercase()),
        Func::Upper => Datum::String(text(0).ok_or_else(bad)?.to_uppercase()),
        Func::Length => match &vals[0] {
            Datum::String(s) => Datum::Int(s.chars().count() as i64),
            Datum::Bytes(b) => Datum::Int(b.len() as i64),
            _ => return Err(bad()),
        },
        Func::OctetLength => match &vals[0] {
            Datum::String(s) => Datum::Int(s.len() as i64),
            Datum::Bytes(b) => Datum::Int(b.len() as i64),
            _ => return Err(bad()),
        },
        Func::Reverse => Datum::String(text(0).ok_or_else(bad)?.chars().rev().collect()),
        Func::Substr => {
            let s: Vec<char> = text(0).ok_or_else(bad)?.chars().collect();
            let start = int(1).ok_or_else(bad)?;
            let end = match vals.get(2) {
                None => i64::MAX,
                Some(d) => {
                    let n = int_arg(d).ok_or_else(bad)?;
                    if n < 0 {
                        return Err(SqlError::user("22011", "negative substring length not allowed"));
                    }
                    start.saturating_add(n)
                }
            };
            let from = start.max(1) as usize - 1;
            let to = end.clamp(1, s.len() as i64 + 1) as usize - 1;
            Datum::String(if from < to { s[from..to].iter().collect() } else { String::new() })
        }
        Func::BTrim | Func::LTrim | Func::RTrim => {
            let chars = if vals.len() > 1 { text(1).ok_or_else(bad)? } else { " " };
            Datum::String(trim(text(0).ok_or_else(bad)?, chars, f != Func::RTrim, f != Func::LTrim))
        }
        Func::Replace => {
            let (s, from, to) = (text(0).ok_or_else(bad)?, text(1).ok_or_else(bad)?, text(2).ok_or_else(bad)?);
            if from.is_empty() {
                Datum::String(s.to_string())
            } else {
                let n = s.matches(from).count();
                capped(s.len() + n.saturating_mul(to.len()))?;
                Datum::String(s.replace(from, to))
            }
        }
        Func::StrPos => {
            let (s, sub) = (text(0).ok_or_else(bad)?, text(1).ok_or_else(bad)?);
            Datum::Int(s.find(sub).map(|b| s[..b].chars().count() as i64 + 1).unwrap_or(0))
        }
        Func::Left | Func::Right => {
            let s: Vec<char> = text(0).ok_or_else(bad)?.chars().collect();
            let n = int(1).ok_or_else(bad)?;
            let len = s.len() as i64;
            let keep = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
            let out: String = if f == Func::Left { s[..keep].iter().collect() } else { s[s.len() - keep..].iter().collect() };
            Datum::String(out)
        }
        Func::Repeat => {
            let s = text(0).ok_or_else(bad)?;
            let n = int(1).ok_or_else(bad)?.max(0) as usize;
            capped(s.len().saturating_mul(n))?;
            Datum::String(s.repeat(n))
        }
        Func::SplitPart => {
            let (s, delim, n) = (text(0).ok_or_else(bad)?, text(1).ok_or_else(bad)?, int(2).ok_or_else(bad)?);
            if n == 0 {
                return Err(invalid("field position must not be zero"));
            }
            let parts: Vec<&str> = if delim.is_empty() { vec![s] } else { s.split(delim).collect() };
            let idx = if n > 0 { n - 1 } else { parts.len() as i64 + n };
            Datum::String(usize::try_from(idx).ok().and_then(|i| parts.get(i)).map(|p| p.to_string()).unwrap_or_default())
        }
        Func::Lpad | Func::Rpad => {
            let fill = if vals.len() > 2 { text(2).ok_or_else(bad)? } else { " " };
            Datum::String(pad(text(0).ok_or_else(bad)?, int(1).ok_or_else(bad)?, fill, f == Func::Lpad)?)
        }
        Func::Abs => match &vals[0] {
            Datum::Int(i) => Datum::Int(i.checked_abs().ok_or_else(overflow)?),
            Datum::Float(x) => Datum::Float(x.abs()),
            Datum::Decimal(d) => Datum::Decimal(d.abs()),
            _ => return Err(bad()),
        },
        Func::Sign => match &vals[0] {
            Datum::Int(i) => Datum::Int(i.signum()),
            Datum::Float(x) => Datum::Float(if *x == 0.0 { 0.0 } else { x.signum() }),
            Datum::Decimal(d) => Datum::Decimal(if d.is_zero() {
                Decimal::ZERO
            } else if d.is_sign_negative() {
                Decimal::NEGATIVE_ONE
            } else {
                Decimal::ONE
            }),
            _ => return Err(bad()),
        },
        Func::Ceil | Func::Floor => match &vals[0] {
            Datum::Int(i) => Datum::Int(*i),
            Datum::Float(x) => Datum::Float(if f == Func::Ceil { x.ceil() } else { x.floor() }),
            Datum::Decimal(d) => Datum::Decimal(if f == Func::Ceil { d.ceil() } else { d.floor() }),
            _ => return Err(bad()),
        },
        Func::Round | Func::Trunc => {
            let places = if vals.len() > 1 { int(1).ok_or_else(bad)? } else { 0 };
            let strategy = if f == Func::Round { RoundingStrategy::MidpointAwayFromZero } else { RoundingStrategy::ToZero };
            match &vals[0] {
                Datum::Int(i) if places >= 0 => Datum::Int(*i),
                Datum::Int(i) => Datum::Int(round_dec(Decimal::from(*i), places, strategy).to_i64().ok_or_else(overflow)?),
                Datum::Float(x) if vals.len() == 1 => Datum::Float(if f == Func::Round { x.round_ties_even() } else { x.trunc() }),
                Datum::Float(x) => {
                    let d = Decimal::from_f64(*x).ok_or_else(|| SqlError::user(codes::OUT_OF_RANGE, "value out of range"))?;
                    Datum::Decimal(round_dec(d, places, strategy))
                }
                Datum::Decimal(d) => Datum::Decimal(round_dec(*d, places, strategy)),
                _ => return Err(bad()),
            }
        }
        Func::Mod => binary(BinOp::Mod, vals[0].clone(), vals[1].clone())?,
        Func::Power => binary(BinOp::Pow, vals[0].clone(), vals[1].clone())?,
        Func::Sqrt => match &vals[0] {
            Datum::Int(_) | Datum::Float(_) => {
                let x = match vals[0] {
                    Datum::Int(i) => i as f64,
                    Datum::Float(x) => x,
                    _ => 0.0,
                };
                if x < 0.0 {
                    return Err(SqlError::user("2201F", "cannot take square root of a negative number"));
                }
                Datum::Float(x.sqrt())
            }
            Datum::Decimal(d) => {
                Datum::Decimal(d.sqrt().ok_or_else(|| SqlError::user("2201F", "cannot take square root of a negative number"))?)
            }
            _ => return Err(bad()),
        },
        Func::DateTrunc => {
            let field = text(0).ok_or_else(bad)?.to_lowercase();
            let (us, out): (i64, fn(i64) -> Datum) = match &vals[1] {
                Datum::Timestamp(us) => (*us, Datum::Timestamp),
                Datum::TimestampTz(us) => (*us, Datum::TimestampTz),
                Datum::Date(d) => (*d as i64 * temporal::DAY_US, Datum::TimestampTz),
                _ => return Err(bad()),
            };
            out(temporal::trunc(&field, us).ok_or_else(|| invalid(&format!("unit \"{field}\" not recognized for date_trunc")))?)
        }
        Func::Extract => {
            let field = text(0).ok_or_else(bad)?.to_lowercase();
            let v = match &vals[1] {
                Datum::Interval(iv) => temporal::extract_interval(&field, iv),
                d => temporal::extract(&field, d.micros().ok_or_else(bad)?),
            };
            Datum::Float(v.ok_or_else(|| invalid(&format!("unit \"{field}\" not recognized")))?)
        }
        Func::JsonbTypeof => match &vals[0] {
            Datum::Json(j) => Datum::String(
                match j {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Bool(_) => "boolean",
                    serde_json::Value::Number(_) => "number",
                    serde_json::Value::String(_) => "string",
                    serde_json::Value::Array(_) => "array",
                    serde_json::Value::Object(_) => "object",
                }
                .into(),
            ),
            _ => return Err(bad()),
        },
        Func::Coalesce | Func::Concat | Func::Greatest | Func::Least | Func::NullIf | Func::GenRandomUuid | Func::UniqueRowid => {
            return Err(bad());
        }
    })
}
