//! Scalar expressions: compilation of sqlparser's `Expr` into a resolved [`Scalar`] tree against
//! a [`ScopeCol`] list (column references become row positions; `$n` placeholders and `now()`
//! become literals; string literals compared with typed values are cast up front), and static
//! type inference. Functions are mapped in `func`, evaluation lives in `eval`.
//!
//! Invariants: unqualified names must be unique in their scope level (42702 otherwise); a name
//! not found in the compiler's own scope is looked up in the enclosing queries' scopes through
//! the [`Env`] chain (innermost first) and becomes an [`Scalar::Outer`] parameter of the
//! subquery being compiled. Subqueries are not compiled here but recorded in
//! `Compiler::subqueries` and referenced by index — `subquery::resolve_subqueries` plans them and
//! replaces the placeholders (by literals when uncorrelated, by [`Scalar::Correlated`] nodes when
//! they reference outer columns). Every error is a coded `SqlError`, never a panic.
//! Not handled: window functions, aggregate FILTER / ORDER BY, arrays (so `op ANY (array)`).

use crate::catalog::{SqlType, TableDesc, TypeSpec, parse_type};
use crate::datum::{Datum, parse_decimal};
use crate::error::{SqlError, codes};
use crate::eval::overflow;
pub use crate::eval::{eval, truth};
use crate::func::{Func, compile_function};
use crate::subquery::{Corr, Env};
use sqlparser::ast::{BinaryOperator, CeilFloorKind, DateTimeField, Expr, Ident, Query, TrimWhereField, UnaryOperator, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    JsonGet,
    JsonGetText,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFunc {
    CountStar,
    Count,
    Sum,
    Min,
    Max,
    Avg,
    BoolAnd,
    BoolOr,
    StringAgg,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AggSpec {
    pub func: AggFunc,
    pub arg: Option<Scalar>,
    /// string_agg's separator.
    pub sep: Option<Scalar>,
    pub distinct: bool,
}

/// What a recorded subquery is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubqKind {
    /// `(SELECT x)`: one column, at most one row.
    Scalar,
    /// `EXISTS (...)`.
    Exists,
    /// `x IN (SELECT y)`, `x op ANY/ALL (SELECT y)`: one column, any rows.
    In,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Lit(Datum),
    /// A column of the input row, by position.
    Col(usize),
    /// The result of the n-th aggregate of the query (rewritten to a `Col` by the planner).
    Agg(usize),
    Neg(Box<Scalar>),
    Not(Box<Scalar>),
    Bin(BinOp, Box<Scalar>, Box<Scalar>),
    IsNull(Box<Scalar>, bool),
    /// `x IS [NOT] TRUE/FALSE`: (expr, value, negated).
    IsBool(Box<Scalar>, bool, bool),
    /// `a IS [NOT] DISTINCT FROM b`: negated = IS NOT DISTINCT.
    IsDistinct(Box<Scalar>, Box<Scalar>, bool),
    InList(Box<Scalar>, Vec<Scalar>, bool),
    Between(Box<Scalar>, Box<Scalar>, Box<Scalar>, bool),
    Like {
        expr: Box<Scalar>,
        pattern: Box<Scalar>,
        negated: bool,
        ci: bool,
        escape: Option<char>,
    },
    Cast(Box<Scalar>, TypeSpec),
    Func(Func, Vec<Scalar>),
    Case {
        operand: Option<Box<Scalar>>,
        whens: Vec<(Scalar, Scalar)>,
        otherwise: Option<Box<Scalar>>,
    },
    /// Pending subqueries (indexes into `Compiler::subqueries`), replaced before evaluation.
    Subquery(usize),
    Exists(usize, bool),
    InSubquery(Box<Scalar>, usize, bool),
    /// `x op ANY (subquery)` (all = false) or `x op ALL (subquery)` (all = true), pending.
    AnySubquery(Box<Scalar>, BinOp, bool, usize),
    /// `x op ANY/ALL (values)`: an uncorrelated ANY/ALL subquery after it ran.
    AnyList(Box<Scalar>, BinOp, bool, Vec<Datum>),
    /// The k-th outer value of the correlated subquery this expression belongs to (with its
    /// static type); replaced by a literal each time the subquery runs.
    Outer(usize, Option<SqlType>),
    /// A subquery referencing outer columns, run per distinct value of its parameters.
    Correlated(Box<Corr>),
}

impl Scalar {
    /// Calls `f` on every node, children first.
    pub fn walk_mut(&mut self, f: &mut dyn FnMut(&mut Scalar)) {
        match self {
            Scalar::Lit(_) | Scalar::Col(_) | Scalar::Agg(_) | Scalar::Subquery(_) | Scalar::Exists(..) | Scalar::Outer(..) => {}
            Scalar::Neg(e) | Scalar::Not(e) | Scalar::IsNull(e, _) | Scalar::IsBool(e, ..) | Scalar::Cast(e, _) => e.walk_mut(f),
            Scalar::InSubquery(e, ..) | Scalar::AnySubquery(e, ..) | Scalar::AnyList(e, ..) => e.walk_mut(f),
            // A correlated subquery's parameters and left operand are expressions of this
            // level; its plan (another level) is not visited.
            Scalar::Correlated(c) => {
                c.params.iter_mut().for_each(|p| p.walk_mut(f));
                if let Some(l) = c.lhs.as_mut() {
                    l.walk_mut(f);
                }
            }
            Scalar::Bin(_, l, r) | Scalar::IsDistinct(l, r, _) => {
                l.walk_mut(f);
                r.walk_mut(f);
            }
            Scalar::InList(x, list, _) => {
                x.walk_mut(f);
                list.iter_mut().for_each(|s| s.walk_mut(f));
            }
            Scalar::Between(a, b, c, _) => {
                a.walk_mut(f);
                b.walk_mut(f);
                c.walk_mut(f);
            }
            Scalar::Like { expr, pattern, .. } => {
                expr.walk_mut(f);
                pattern.walk_mut(f);
            }
            Scalar::Func(_, args) => args.iter_mut().for_each(|s| s.walk_mut(f)),
            Scalar::Case { operand, whens, otherwise } => {
                if let Some(o) = operand {
                    o.walk_mut(f);
                }
                for (w, t) in whens {
                    w.walk_mut(f);
                    t.walk_mut(f);
                }
                if let Some(o) = otherwise {
                    o.walk_mut(f);
                }
            }
        }
        f(self);
    }

    /// Direct children.
    pub fn children(&self) -> Vec<&Scalar> {
        match self {
            Scalar::Lit(_) | Scalar::Col(_) | Scalar::Agg(_) | Scalar::Subquery(_) | Scalar::Exists(..) | Scalar::Outer(..) => Vec::new(),
            Scalar::Neg(e)
            | Scalar::Not(e)
            | Scalar::IsNull(e, _)
            | Scalar::IsBool(e, ..)
            | Scalar::Cast(e, _)
            | Scalar::InSubquery(e, ..)
            | Scalar::AnySubquery(e, ..)
            | Scalar::AnyList(e, ..) => {
                vec![e]
            }
            Scalar::Correlated(c) => c.params.iter().chain(c.lhs.as_deref()).collect(),
            Scalar::Bin(_, l, r) | Scalar::IsDistinct(l, r, _) => vec![l, r],
            Scalar::InList(x, list, _) => std::iter::once(&**x).chain(list.iter()).collect(),
            Scalar::Between(a, b, c, _) => vec![a, b, c],
            Scalar::Like { expr, pattern, .. } => vec![expr, pattern],
            Scalar::Func(_, args) => args.iter().collect(),
            Scalar::Case { operand, whens, otherwise } => {
                let mut v: Vec<&Scalar> = operand.iter().map(|b| &**b).collect();
                for (w, t) in whens {
                    v.push(w);
                    v.push(t);
                }
                v.extend(otherwise.iter().map(|b| &**b));
                v
            }
        }
    }

    /// Whether any node satisfies `p`.
    pub fn any(&self, p: &dyn Fn(&Scalar) -> bool) -> bool {
        let mut copy = self.clone();
        let mut found = false;
        copy.walk_mut(&mut |s| found |= p(s));
        found
    }

    /// Column positions referenced.
    pub fn columns(&self) -> Vec<usize> {
        let mut copy = self.clone();
        let mut out = Vec::new();
        copy.walk_mut(&mut |s| {
            if let Scalar::Col(i) = s {
                out.push(*i);
            }
        });
        out
    }

    /// Renumbers column references.
    pub fn map_cols(&mut self, f: &dyn Fn(usize) -> usize) {
        self.walk_mut(&mut |s| {
            if let Scalar::Col(i) = s {
                *i = f(*i);
            }
        });
    }

    /// Whether the expression contains a correlated subquery (which only operators that can
    /// run it may evaluate: see `subquery::eval_row`).
    pub fn has_correlated(&self) -> bool {
        self.any(&|n| matches!(n, Scalar::Correlated(_)))
    }

    /// Whether the expression references outer values of its subquery.
    pub fn has_outer(&self) -> bool {
        self.any(&|n| matches!(n, Scalar::Outer(..)))
    }
}

/// Normalizes an identifier as PostgreSQL does: unquoted names fold to lower case.
pub fn ident_name(id: &Ident) -> String {
    if id.quote_style.is_some() { id.value.clone() } else { id.value.to_lowercase() }
}

/// One column visible to expressions: its table (name or alias), name and static type.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeCol {
    pub table: Option<String>,
    pub name: String,
    pub ty: Option<SqlType>,
    /// Not found by unqualified names nor expanded by `*` (e.g. the right side of USING).
    pub hidden: bool,
}

impl ScopeCol {
    pub fn new(table: Option<&str>, name: &str, ty: Option<SqlType>) -> ScopeCol {
        ScopeCol { table: table.map(str::to_string), name: name.into(), ty, hidden: false }
    }
}

/// Finds a column in one scope level: `Some(position)`, `None` when the level does not have it
/// (look further out). Errors: an ambiguous name (42702); `t.c` where this level has table `t`
/// but no column `c` (42703: PostgreSQL does not look further out either).
pub fn find_in_scope(scope: &[ScopeCol], table: Option<&str>, name: &str) -> Result<Option<usize>, SqlError> {
    let mut found = None;
    for (i, c) in scope.iter().enumerate() {
        let hit = match table {
            Some(t) => c.table.as_deref() == Some(t) && c.name == name,
            None => !c.hidden && c.name == name,
        };
        if hit {
            if found.is_some() {
                return Err(SqlError::user(codes::AMBIGUOUS_COLUMN, format!("column reference \"{name}\" is ambiguous")));
            }
            found = Some(i);
        }
    }
    match (found, table) {
        (None, Some(t)) if scope.iter().any(|c| c.table.as_deref() == Some(t)) => {
            Err(SqlError::user(codes::UNDEFINED_COLUMN, format!("column {t}.{name} does not exist")))
        }
        (found, _) => Ok(found),
    }
}

/// The scope of one table's columns under `alias` (or its name).
pub fn table_scope(table: &TableDesc, alias: Option<&str>) -> Vec<ScopeCol> {
    let t = alias.unwrap_or(&table.name);
    table.columns.iter().map(|c| ScopeCol::new(Some(t), &c.name, Some(c.ty))).collect()
}

pub(crate) fn unsupported(what: impl std::fmt::Display) -> SqlError {
    SqlError::user(codes::UNSUPPORTED, format!("unsupported: {what}"))
}

/// Compiles expressions against a scope, with bound arguments.
pub struct Compiler<'a> {
    pub scope: Vec<ScopeCol>,
    pub args: &'a [Datum],
    /// Statement time, microseconds since the epoch, for `now()`.
    pub now: i64,
    /// `Some` while aggregates are allowed (SELECT list, HAVING, ORDER BY of a SELECT).
    pub aggs: Option<Vec<AggSpec>>,
    /// Subqueries met so far, to be run by the planner.
    pub subqueries: Vec<(Query, SubqKind)>,
    /// The enclosing queries' scopes when compiling a subquery (outer references).
    pub env: Option<&'a Env<'a>>,
}

impl<'a> Compiler<'a> {
    pub fn new(scope: Vec<ScopeCol>, args: &'a [Datum], now: i64) -> Self {
        Compiler { scope, args, now, aggs: None, subqueries: Vec::new(), env: None }
    }

    /// A compiler for the statement of `ctx`, seeing the outer scopes of `ctx` (if it plans a
    /// subquery).
    pub(crate) fn from_ctx(scope: Vec<ScopeCol>, ctx: &crate::exec::Ctx<'a>) -> Self {
        Compiler { env: ctx.outer, ..Compiler::new(scope, ctx.args, ctx.now) }
    }

    pub fn for_table(table: &TableDesc, alias: Option<&str>, args: &'a [Datum], now: i64) -> Self {
        Compiler::new(table_scope(table, alias), args, now)
    }

    pub fn compile(&mut self, e: &Expr) -> Result<Scalar, SqlError> {
        Ok(match e {
            Expr::Nested(inner) => self.compile(inner)?,
            Expr::Value(v) => Scalar::Lit(self.literal(&v.value)?),
            Expr::Identifier(id) => self.name_ref(None, &ident_name(id))?,
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [t, c] => self.name_ref(Some(&ident_name(t)), &ident_name(c))?,
                [_, t, c] => self.name_ref(Some(&ident_name(t)), &ident_name(c))?,
                _ => return Err(unsupported(format!("qualified name {e}"))),
            },
            Expr::UnaryOp { op, expr } => {
                let inner = self.compile(expr)?;
                match op {
                    UnaryOperator::Plus => inner,
                    UnaryOperator::Minus => match inner {
                        Scalar::Lit(Datum::Int(i)) => Scalar::Lit(Datum::Int(i.checked_neg().ok_or_else(overflow)?)),
                        Scalar::Lit(Datum::Float(f)) => Scalar::Lit(Datum::Float(-f)),
                        Scalar::Lit(Datum::Decimal(d)) => Scalar::Lit(Datum::Decimal(-d)),
                        other => Scalar::Neg(Box::new(other)),
                    },
                    UnaryOperator::Not => Scalar::Not(Box::new(inner)),
                    other => return Err(unsupported(format!("operator {other}"))),
                }
            }
            Expr::BinaryOp { left, op, right } => {
                let op = if let Some(cmp) = comparison(op) {
                    cmp
                } else {
                    match op {
                        BinaryOperator::Plus => BinOp::Add,
                        BinaryOperator::Minus => BinOp::Sub,
                        BinaryOperator::Multiply => BinOp::Mul,
                        BinaryOperator::Divide => BinOp::Div,
                        BinaryOperator::Modulo => BinOp::Mod,
                        BinaryOperator::PGExp => BinOp::Pow,
                        BinaryOperator::StringConcat => BinOp::Concat,
                        BinaryOperator::And => BinOp::And,
                        BinaryOperator::Or => BinOp::Or,
                        BinaryOperator::Arrow => BinOp::JsonGet,
                        BinaryOperator::LongArrow => BinOp::JsonGetText,
                        other => return Err(unsupported(format!("operator {other}"))),
                    }
                };
                let mut l = self.compile(left)?;
                let mut r = self.compile(right)?;
                if matches!(op, BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq) {
                    let (lt, rt) = (self.ty(&l), self.ty(&r));
                    coerce_lit(&mut l, rt)?;
                    coerce_lit(&mut r, lt)?;
                }
                if matches!(op, BinOp::Add | BinOp::Sub) {
                    // '1 day' next to a date/time is an interval, as PostgreSQL infers.
                    let (lt, rt) = (self.ty(&l), self.ty(&r));
                    let temporal = |t: Option<SqlType>| matches!(t, Some(SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz));
                    if temporal(lt) && matches!(r, Scalar::Lit(Datum::String(_))) {
                        coerce_lit(&mut r, if op == BinOp::Sub && lt == Some(SqlType::Date) { lt } else { Some(SqlType::Interval) })?;
                    }
                    if temporal(rt) && matches!(l, Scalar::Lit(Datum::String(_))) {
                        coerce_lit(&mut l, Some(SqlType::Interval))?;
                    }
                }
                Scalar::Bin(op, Box::new(l), Box::new(r))
            }
            Expr::IsNull(e) => Scalar::IsNull(Box::new(self.compile(e)?), false),
            Expr::IsNotNull(e) => Scalar::IsNull(Box::new(self.compile(e)?), true),
            Expr::IsTrue(e) => Scalar::IsBool(Box::new(self.compile(e)?), true, false),
            Expr::IsNotTrue(e) => Scalar::IsBool(Box::new(self.compile(e)?), true, true),
            Expr::IsFalse(e) => Scalar::IsBool(Box::new(self.compile(e)?), false, false),
            Expr::IsNotFalse(e) => Scalar::IsBool(Box::new(self.compile(e)?), false, true),
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                let (mut l, mut r) = (self.compile(a)?, self.compile(b)?);
                let (lt, rt) = (self.ty(&l), self.ty(&r));
                coerce_lit(&mut l, rt)?;
                coerce_lit(&mut r, lt)?;
                Scalar::IsDistinct(Box::new(l), Box::new(r), matches!(e, Expr::IsNotDistinctFrom(..)))
            }
            Expr::InList { expr, list, negated } => {
                let x = self.compile(expr)?;
                let t = self.ty(&x);
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    let mut s = self.compile(item)?;
                    coerce_lit(&mut s, t)?;
                    items.push(s);
                }
                Scalar::InList(Box::new(x), items, *negated)
            }
            Expr::InSubquery { expr, subquery, negated } => {
                let x = self.compile(expr)?;
                self.subqueries.push(((**subquery).clone(), SubqKind::In));
                Scalar::InSubquery(Box::new(x), self.subqueries.len() - 1, *negated)
            }
            Expr::Exists { subquery, negated } => {
                self.subqueries.push(((**subquery).clone(), SubqKind::Exists));
                Scalar::Exists(self.subqueries.len() - 1, *negated)
            }
            Expr::Subquery(q) => {
                self.subqueries.push(((**q).clone(), SubqKind::Scalar));
                Scalar::Subquery(self.subqueries.len() - 1)
            }
            Expr::AnyOp { left, compare_op, right, .. } => self.quantified(left, compare_op, right, false)?,
            Expr::AllOp { left, compare_op, right } => self.quantified(left, compare_op, right, true)?,
            Expr::Between { expr, negated, low, high } => {
                let x = self.compile(expr)?;
                let t = self.ty(&x);
                let (mut lo, mut hi) = (self.compile(low)?, self.compile(high)?);
                coerce_lit(&mut lo, t)?;
                coerce_lit(&mut hi, t)?;
                Scalar::Between(Box::new(x), Box::new(lo), Box::new(hi), *negated)
            }
            Expr::Like { negated, any: false, expr, pattern, escape_char }
            | Expr::ILike { negated, any: false, expr, pattern, escape_char } => {
                let escape = match escape_char {
                    None => Some('\\'),
                    Some(v) => {
                        let s = match eval(&self.compile(v)?, &[], &[])? {
                            Datum::String(s) => s,
                            _ => return Err(SqlError::user(codes::DATATYPE_MISMATCH, "ESCAPE must be a string")),
                        };
                        let mut chars = s.chars();
                        match (chars.next(), chars.next()) {
                            (None, _) => None,
                            (Some(c), None) => Some(c),
                            _ => return Err(SqlError::user("22025", "invalid escape string")),
                        }
                    }
                };
                Scalar::Like {
                    expr: Box::new(self.compile(expr)?),
                    pattern: Box::new(self.compile(pattern)?),
                    negated: *negated,
                    ci: matches!(e, Expr::ILike { .. }),
                    escape,
                }
            }
            Expr::Cast { expr, data_type, .. } => {
                let spec = parse_type(&data_type.to_string())?;
                match self.compile(expr)? {
                    Scalar::Lit(d) => Scalar::Lit(d.cast(spec.ty)?.conform(&spec, true)?),
                    inner => Scalar::Cast(Box::new(inner), spec),
                }
            }
            Expr::TypedString(ts) => {
                let spec = parse_type(&ts.data_type.to_string())?;
                Scalar::Lit(self.literal(&ts.value.value)?.cast(spec.ty)?.conform(&spec, true)?)
            }
            Expr::Interval(iv) => {
                if iv.leading_field.is_some() || iv.last_field.is_some() {
                    return Err(unsupported("INTERVAL with field qualifiers"));
                }
                match self.compile(&iv.value)? {
                    Scalar::Lit(d) => Scalar::Lit(d.cast(SqlType::Interval)?),
                    other => Scalar::Cast(Box::new(other), TypeSpec::of(SqlType::Interval)),
                }
            }
            Expr::Case { operand, conditions, else_result, .. } => {
                let operand = operand.as_ref().map(|o| self.compile(o)).transpose()?;
                let ot = operand.as_ref().and_then(|o| self.ty(o));
                let mut whens = Vec::with_capacity(conditions.len());
                for w in conditions {
                    let mut cond = self.compile(&w.condition)?;
                    coerce_lit(&mut cond, ot)?;
                    whens.push((cond, self.compile(&w.result)?));
                }
                let mut otherwise = else_result.as_ref().map(|e| self.compile(e)).transpose()?;
                let mut results: Vec<&mut Scalar> = whens.iter_mut().map(|(_, r)| r).chain(otherwise.as_mut()).collect();
                unify_numeric(self, &mut results)?;
                Scalar::Case { operand: operand.map(Box::new), whens, otherwise: otherwise.map(Box::new) }
            }
            Expr::Extract { field, expr, .. } => {
                let f = field_name(field);
                Scalar::Func(Func::Extract, vec![Scalar::Lit(Datum::String(f)), self.compile(expr)?])
            }
            Expr::Ceil { expr, field } | Expr::Floor { expr, field } => {
                if !matches!(field, CeilFloorKind::DateTimeField(DateTimeField::NoDateTime)) {
                    return Err(unsupported(format!("{e}")));
                }
                Scalar::Func(if matches!(e, Expr::Ceil { .. }) { Func::Ceil } else { Func::Floor }, vec![self.compile(expr)?])
            }
            Expr::Position { expr, r#in } => Scalar::Func(Func::StrPos, vec![self.compile(r#in)?, self.compile(expr)?]),
            Expr::Substring { expr, substring_from, substring_for, .. } => {
                let mut args = vec![self.compile(expr)?];
                args.push(match substring_from {
                    Some(f) => self.compile(f)?,
                    None => Scalar::Lit(Datum::Int(1)),
                });
                if let Some(n) = substring_for {
                    args.push(self.compile(n)?);
                }
                Scalar::Func(Func::Substr, args)
            }
            Expr::Trim { expr, trim_where, trim_what, trim_characters } => {
                let func = match trim_where {
                    Some(TrimWhereField::Leading) => Func::LTrim,
                    Some(TrimWhereField::Trailing) => Func::RTrim,
                    _ => Func::BTrim,
                };
                let mut args = vec![self.compile(expr)?];
                if let Some(w) = trim_what {
                    args.push(self.compile(w)?);
                } else if let Some(chars) = trim_characters.as_ref().and_then(|c| c.first()) {
                    args.push(self.compile(chars)?);
                }
                Scalar::Func(func, args)
            }
            Expr::Function(f) => compile_function(self, f)?,
            other => return Err(unsupported(format!("expression {other}"))),
        })
    }

    /// `x op ANY|ALL (subquery)`.
    fn quantified(&mut self, left: &Expr, op: &BinaryOperator, right: &Expr, all: bool) -> Result<Scalar, SqlError> {
        let op = match comparison(op) {
            Some(op) => op,
            None => return Err(unsupported(format!("operator {op} with ANY/ALL"))),
        };
        let Expr::Subquery(q) = right else {
            return Err(unsupported("ANY/ALL over an array (only subqueries)"));
        };
        let x = self.compile(left)?;
        self.subqueries.push(((**q).clone(), SubqKind::In));
        Ok(Scalar::AnySubquery(Box::new(x), op, all, self.subqueries.len() - 1))
    }

    /// A column reference: a position in this compiler's scope, or an outer value found in an
    /// enclosing query's scope (innermost level first).
    fn name_ref(&self, table: Option<&str>, name: &str) -> Result<Scalar, SqlError> {
        if let Some(i) = find_in_scope(&self.scope, table, name)? {
            return Ok(Scalar::Col(i));
        }
        if let Some(env) = self.env
            && let Some((k, ty)) = env.resolve(table, name)?
        {
            return Ok(Scalar::Outer(k, ty));
        }
        Err(match table {
            Some(t) => SqlError::user(codes::UNDEFINED_TABLE, format!("missing FROM-clause entry for table \"{t}\"")),
            None => SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{name}\" does not exist")),
        })
    }

    /// Resolves a (possibly qualified) column name to its position in this compiler's scope.
    pub fn column(&self, table: Option<&str>, name: &str) -> Result<usize, SqlError> {
        match self.name_ref(table, name)? {
            Scalar::Col(i) => Ok(i),
            _ => Err(SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{name}\" does not exist"))),
        }
    }

    pub fn literal(&self, v: &Value) -> Result<Datum, SqlError> {
        Ok(match v {
            Value::Number(s, _) => match s.parse::<i64>() {
                Ok(i) => Datum::Int(i),
                Err(_) => match parse_decimal(s) {
                    Some(d) => Datum::Decimal(d),
                    None => Datum::Float(s.parse::<f64>().map_err(|_| SqlError::user(codes::INVALID_TEXT, format!("invalid number {s}")))?),
                },
            },
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::UnicodeStringLiteral(s)
            | Value::NationalStringLiteral(s)
            | Value::TripleSingleQuotedString(s) => Datum::String(s.clone()),
            Value::DollarQuotedString(d) => Datum::String(d.value.clone()),
            Value::HexStringLiteral(h) => Datum::String(format!("\\x{h}")).cast(SqlType::Bytes)?,
            Value::Boolean(b) => Datum::Bool(*b),
            Value::Null => Datum::Null,
            Value::Placeholder(p) => {
                let n = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).filter(|n| *n >= 1);
                let n = n.ok_or_else(|| SqlError::user(codes::SYNTAX, format!("unsupported placeholder {p}")))?;
                self.args.get(n - 1).cloned().ok_or_else(|| {
                    SqlError::user(codes::PROTOCOL, format!("wrong number of arguments: statement uses ${n}, got {}", self.args.len()))
                })?
            }
            other => return Err(unsupported(format!("literal {other}"))),
        })
    }

    /// The static type of an expression, if known (None for NULL literals).
    pub fn ty(&self, s: &Scalar) -> Option<SqlType> {
        use SqlType as T;
        match s {
            Scalar::Lit(d) => d.ty(),
            Scalar::Col(i) => self.scope.get(*i).and_then(|c| c.ty),
            Scalar::Agg(i) => {
                let spec = self.aggs.as_ref()?.get(*i)?;
                match spec.func {
                    AggFunc::CountStar | AggFunc::Count => Some(T::Int),
                    AggFunc::BoolAnd | AggFunc::BoolOr => Some(T::Bool),
                    AggFunc::StringAgg => Some(T::String),
                    AggFunc::Avg => match self.ty(spec.arg.as_ref()?) {
                        Some(T::Decimal) => Some(T::Decimal),
                        _ => Some(T::Float),
                    },
                    AggFunc::Sum => match self.ty(spec.arg.as_ref()?)? {
                        T::Int2 | T::Int4 | T::Int => Some(T::Int),
                        T::Float4 => Some(T::Float),
                        t => Some(t),
                    },
                    _ => self.ty(spec.arg.as_ref()?),
                }
            }
            Scalar::Neg(e) => self.ty(e),
            Scalar::Bin(op, l, r) => {
                let (lt, rt) = (self.ty(l).map(T::base), self.ty(r).map(T::base));
                match op {
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow => match (lt, rt) {
                        (Some(T::Date), Some(T::Date)) => Some(T::Int),
                        (Some(T::Date), Some(T::Int)) => Some(T::Date),
                        (Some(T::Date), Some(T::Interval)) | (Some(T::Interval), Some(T::Date)) => Some(T::Timestamp),
                        (Some(a @ (T::Timestamp | T::TimestampTz)), Some(b)) if a == b => Some(T::Interval),
                        (Some(a @ (T::Timestamp | T::TimestampTz)), _) => Some(a),
                        (_, Some(b @ (T::Timestamp | T::TimestampTz))) => Some(b),
                        (Some(T::Interval), _) | (_, Some(T::Interval)) => Some(T::Interval),
                        (Some(T::Float), _) | (_, Some(T::Float)) => Some(T::Float),
                        (Some(T::Decimal), _) | (_, Some(T::Decimal)) => Some(T::Decimal),
                        (Some(T::Int), Some(T::Int)) if *op == BinOp::Pow => Some(T::Float),
                        (a, b) => a.or(b),
                    },
                    BinOp::Concat => match (lt, rt) {
                        (Some(T::Bytes), Some(T::Bytes)) => Some(T::Bytes),
                        (Some(T::Jsonb), Some(T::Jsonb)) => Some(T::Jsonb),
                        _ => Some(T::String),
                    },
                    BinOp::JsonGet => Some(T::Jsonb),
                    BinOp::JsonGetText => Some(T::String),
                    _ => Some(T::Bool),
                }
            }
            Scalar::Not(_)
            | Scalar::IsNull(..)
            | Scalar::IsBool(..)
            | Scalar::IsDistinct(..)
            | Scalar::InList(..)
            | Scalar::InSubquery(..)
            | Scalar::AnySubquery(..)
            | Scalar::AnyList(..)
            | Scalar::Exists(..)
            | Scalar::Between(..)
            | Scalar::Like { .. } => Some(T::Bool),
            Scalar::Cast(_, t) => Some(t.ty),
            Scalar::Func(f, args) => crate::func::result_type(self, *f, args),
            Scalar::Case { whens, otherwise, .. } => {
                whens.iter().map(|(_, t)| t).chain(otherwise.iter().map(|b| &**b)).find_map(|s| self.ty(s))
            }
            Scalar::Subquery(_) => None,
            Scalar::Outer(_, ty) => *ty,
            Scalar::Correlated(c) => c.ty(),
        }
    }
}

fn field_name(f: &DateTimeField) -> String {
    match f {
        DateTimeField::Custom(id) => ident_name(id),
        other => other.to_string().to_lowercase(),
    }
}

/// PostgreSQL's common type for the numeric branches of COALESCE/GREATEST/LEAST/CASE: when the
/// values mix integers, decimals and floats, every one is cast to the widest (FLOAT8 over DECIMAL
/// over integers), so the column's type and its values agree (`greatest(1, 2.5)` is 2.5 DECIMAL,
/// `coalesce(i, 0.5)` is DECIMAL for every row).
pub fn unify_numeric(c: &Compiler, args: &mut [&mut Scalar]) -> Result<(), SqlError> {
    let tys: Vec<Option<SqlType>> = args.iter().map(|a| c.ty(a).map(SqlType::base)).collect();
    let numeric = |t: &Option<SqlType>| matches!(t, Some(SqlType::Int | SqlType::Decimal | SqlType::Float));
    if !tys.iter().any(numeric) || !tys.iter().all(|t| t.is_none() || numeric(t)) {
        return Ok(());
    }
    let to = if tys.contains(&Some(SqlType::Float)) {
        SqlType::Float
    } else if tys.contains(&Some(SqlType::Decimal)) {
        SqlType::Decimal
    } else {
        return Ok(());
    };
    for (a, t) in args.iter_mut().zip(&tys) {
        if t.is_some_and(|t| t != to) {
            let inner = std::mem::replace(&mut **a, Scalar::Lit(Datum::Null));
            **a = match inner {
                Scalar::Lit(d) => Scalar::Lit(d.cast(to)?),
                other => Scalar::Cast(Box::new(other), TypeSpec::of(to)),
            };
        }
    }
    Ok(())
}

/// Casts a literal compared with a value of type `to`: strings parse as that type, integers
/// widen to floats/decimals, decimals to floats. Other literals are left for evaluation.
pub fn coerce_lit(s: &mut Scalar, to: Option<SqlType>) -> Result<(), SqlError> {
    if let (Scalar::Lit(d), Some(to)) = (&*s, to) {
        let to = to.base();
        let new = match (d, to) {
            (Datum::String(_), t) if t != SqlType::String => d.cast(t)?,
            (Datum::Int(_), SqlType::Float | SqlType::Decimal) | (Datum::Decimal(_), SqlType::Float) => d.cast(to)?,
            _ => return Ok(()),
        };
        *s = Scalar::Lit(new);
    }
    Ok(())
}

/// The comparison operator `op` is, if it is one (`=`, `<>`, `<`, `<=`, `>`, `>=`).
fn comparison(op: &BinaryOperator) -> Option<BinOp> {
    Some(match op {
        BinaryOperator::Eq => BinOp::Eq,
        BinaryOperator::NotEq => BinOp::NotEq,
        BinaryOperator::Lt => BinOp::Lt,
        BinaryOperator::LtEq => BinOp::LtEq,
        BinaryOperator::Gt => BinOp::Gt,
        BinaryOperator::GtEq => BinOp::GtEq,
        _ => return None,
    })
}
