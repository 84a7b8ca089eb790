//! Scalar expressions: compilation of sqlparser's `Expr` into a resolved [`Scalar`] tree (column
//! references become positions, `$n` placeholders and `now()` become literals, string literals
//! compared with typed values are cast up front), type inference, and evaluation.
//!
//! Invariants: evaluation follows SQL three-valued logic (NULL propagates through operators;
//! AND/OR/NOT/IN use Kleene logic); integer arithmetic is checked (22003 on overflow, 22012 on
//! division by zero); every error is a coded `SqlError`, never a panic.
//! Not handled: subqueries, CASE, window functions, aggregate DISTINCT/FILTER, LIKE ESCAPE.

use crate::catalog::{ColumnDesc, SqlType};
use crate::datum::Datum;
use crate::error::{SqlError, codes};
use crate::eval::overflow;
pub use crate::eval::{eval, truth};
use sqlparser::ast::{
    BinaryOperator, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, UnaryOperator, Value,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Lower,
    Upper,
    Length,
    Abs,
    Coalesce,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFunc {
    CountStar,
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AggSpec {
    pub func: AggFunc,
    pub arg: Option<Scalar>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Lit(Datum),
    /// A column of the row, by position in the table descriptor.
    Col(usize),
    /// The result of the n-th aggregate of the query.
    Agg(usize),
    Neg(Box<Scalar>),
    Not(Box<Scalar>),
    Bin(BinOp, Box<Scalar>, Box<Scalar>),
    IsNull(Box<Scalar>, bool),
    InList(Box<Scalar>, Vec<Scalar>, bool),
    Between(Box<Scalar>, Box<Scalar>, Box<Scalar>, bool),
    Like {
        expr: Box<Scalar>,
        pattern: Box<Scalar>,
        negated: bool,
        ci: bool,
    },
    Cast(Box<Scalar>, SqlType),
    Func(Func, Vec<Scalar>),
}

/// Normalizes an identifier as PostgreSQL does: unquoted names fold to lower case.
pub fn ident_name(id: &Ident) -> String {
    if id.quote_style.is_some() { id.value.clone() } else { id.value.to_lowercase() }
}

/// Compiles expressions against one table (or none), with bound arguments.
pub struct Compiler<'a> {
    /// The table's name and alias (either may qualify a column), and its columns.
    pub table_names: Vec<String>,
    pub columns: &'a [ColumnDesc],
    pub args: &'a [Datum],
    /// Statement time, microseconds since the epoch, for `now()`.
    pub now: i64,
    /// `Some` while aggregates are allowed (SELECT list, HAVING, ORDER BY of a SELECT).
    pub aggs: Option<Vec<AggSpec>>,
}

fn unsupported(what: impl std::fmt::Display) -> SqlError {
    SqlError::user(codes::UNSUPPORTED, format!("unsupported: {what}"))
}

impl<'a> Compiler<'a> {
    pub fn new(columns: &'a [ColumnDesc], args: &'a [Datum], now: i64) -> Self {
        Compiler { table_names: Vec::new(), columns, args, now, aggs: None }
    }

    pub fn compile(&mut self, e: &Expr) -> Result<Scalar, SqlError> {
        Ok(match e {
            Expr::Nested(inner) => self.compile(inner)?,
            Expr::Value(v) => Scalar::Lit(self.literal(&v.value)?),
            Expr::Identifier(id) => Scalar::Col(self.column(&ident_name(id))?),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [t, c] => {
                    let t = ident_name(t);
                    if !self.table_names.contains(&t) {
                        return Err(SqlError::user(codes::UNDEFINED_TABLE, format!("missing FROM-clause entry for table \"{t}\"")));
                    }
                    Scalar::Col(self.column(&ident_name(c))?)
                }
                _ => return Err(unsupported(format!("qualified name {e}"))),
            },
            Expr::UnaryOp { op, expr } => {
                let inner = self.compile(expr)?;
                match op {
                    UnaryOperator::Plus => inner,
                    UnaryOperator::Minus => match inner {
                        Scalar::Lit(Datum::Int(i)) => Scalar::Lit(Datum::Int(i.checked_neg().ok_or_else(overflow)?)),
                        Scalar::Lit(Datum::Float(f)) => Scalar::Lit(Datum::Float(-f)),
                        other => Scalar::Neg(Box::new(other)),
                    },
                    UnaryOperator::Not => Scalar::Not(Box::new(inner)),
                    other => return Err(unsupported(format!("operator {other}"))),
                }
            }
            Expr::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Plus => BinOp::Add,
                    BinaryOperator::Minus => BinOp::Sub,
                    BinaryOperator::Multiply => BinOp::Mul,
                    BinaryOperator::Divide => BinOp::Div,
                    BinaryOperator::Modulo => BinOp::Mod,
                    BinaryOperator::StringConcat => BinOp::Concat,
                    BinaryOperator::Eq => BinOp::Eq,
                    BinaryOperator::NotEq => BinOp::NotEq,
                    BinaryOperator::Lt => BinOp::Lt,
                    BinaryOperator::LtEq => BinOp::LtEq,
                    BinaryOperator::Gt => BinOp::Gt,
                    BinaryOperator::GtEq => BinOp::GtEq,
                    BinaryOperator::And => BinOp::And,
                    BinaryOperator::Or => BinOp::Or,
                    other => return Err(unsupported(format!("operator {other}"))),
                };
                let mut l = self.compile(left)?;
                let mut r = self.compile(right)?;
                if matches!(op, BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq) {
                    let (lt, rt) = (self.ty(&l), self.ty(&r));
                    coerce_lit(&mut l, rt)?;
                    coerce_lit(&mut r, lt)?;
                }
                Scalar::Bin(op, Box::new(l), Box::new(r))
            }
            Expr::IsNull(e) => Scalar::IsNull(Box::new(self.compile(e)?), false),
            Expr::IsNotNull(e) => Scalar::IsNull(Box::new(self.compile(e)?), true),
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
            Expr::Between { expr, negated, low, high } => {
                let x = self.compile(expr)?;
                let t = self.ty(&x);
                let (mut lo, mut hi) = (self.compile(low)?, self.compile(high)?);
                coerce_lit(&mut lo, t)?;
                coerce_lit(&mut hi, t)?;
                Scalar::Between(Box::new(x), Box::new(lo), Box::new(hi), *negated)
            }
            Expr::Like { negated, any: false, expr, pattern, escape_char: None } => Scalar::Like {
                expr: Box::new(self.compile(expr)?),
                pattern: Box::new(self.compile(pattern)?),
                negated: *negated,
                ci: false,
            },
            Expr::ILike { negated, any: false, expr, pattern, escape_char: None } => {
                Scalar::Like { expr: Box::new(self.compile(expr)?), pattern: Box::new(self.compile(pattern)?), negated: *negated, ci: true }
            }
            Expr::Cast { expr, data_type, .. } => {
                let ty = SqlType::from_sql_name(&data_type.to_string())?;
                match self.compile(expr)? {
                    Scalar::Lit(d) => Scalar::Lit(d.cast(ty)?),
                    inner => Scalar::Cast(Box::new(inner), ty),
                }
            }
            Expr::TypedString(ts) => {
                let ty = SqlType::from_sql_name(&ts.data_type.to_string())?;
                Scalar::Lit(self.literal(&ts.value.value)?.cast(ty)?)
            }
            Expr::Function(f) => self.function(f)?,
            other => return Err(unsupported(format!("expression {other}"))),
        })
    }

    fn column(&self, name: &str) -> Result<usize, SqlError> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{name}\" does not exist")))
    }

    fn literal(&self, v: &Value) -> Result<Datum, SqlError> {
        Ok(match v {
            Value::Number(s, _) => match s.parse::<i64>() {
                Ok(i) => Datum::Int(i),
                Err(_) => Datum::Float(s.parse::<f64>().map_err(|_| SqlError::user(codes::INVALID_TEXT, format!("invalid number {s}")))?),
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

    fn function(&mut self, f: &sqlparser::ast::Function) -> Result<Scalar, SqlError> {
        let name = f.name.0.last().and_then(|p| p.as_ident()).map(ident_name).unwrap_or_default();
        if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
            return Err(unsupported(format!("function syntax {f}")));
        }
        let mut star = false;
        let mut arg_exprs = Vec::new();
        match &f.args {
            FunctionArguments::None => {}
            FunctionArguments::Subquery(_) => return Err(unsupported("subqueries")),
            FunctionArguments::List(list) => {
                if matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct)) || !list.clauses.is_empty() {
                    return Err(unsupported(format!("function syntax {f}")));
                }
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => arg_exprs.push(e),
                        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                        _ => return Err(unsupported(format!("function argument {a}"))),
                    }
                }
            }
        }
        let agg = match name.as_str() {
            "count" if star && arg_exprs.is_empty() => Some(AggFunc::CountStar),
            "count" => Some(AggFunc::Count),
            "sum" => Some(AggFunc::Sum),
            "min" => Some(AggFunc::Min),
            "max" => Some(AggFunc::Max),
            "avg" => Some(AggFunc::Avg),
            _ => None,
        };
        let wrong_args = || SqlError::user(codes::UNDEFINED_FUNCTION, format!("function {f} does not exist"));
        if star && agg != Some(AggFunc::CountStar) {
            return Err(wrong_args());
        }
        if let Some(func) = agg {
            let Some(mut specs) = self.aggs.take() else {
                return Err(SqlError::user(codes::GROUPING, format!("aggregate function {name} is not allowed here")));
            };
            let arg = match (func, arg_exprs.as_slice()) {
                (AggFunc::CountStar, []) => None,
                (_, [e]) => Some(self.compile(e)),
                _ => {
                    self.aggs = Some(specs);
                    return Err(wrong_args());
                }
            };
            let arg = match arg {
                None => None,
                Some(Ok(a)) => Some(a),
                Some(Err(e)) => {
                    self.aggs = Some(specs);
                    return Err(e);
                }
            };
            let spec = AggSpec { func, arg };
            let idx = match specs.iter().position(|s| *s == spec) {
                Some(i) => i,
                None => {
                    specs.push(spec);
                    specs.len() - 1
                }
            };
            self.aggs = Some(specs);
            return Ok(Scalar::Agg(idx));
        }
        let mut args = Vec::with_capacity(arg_exprs.len());
        for e in &arg_exprs {
            args.push(self.compile(e)?);
        }
        let (func, arity) = match name.as_str() {
            "now" | "current_timestamp" | "transaction_timestamp" | "statement_timestamp" => {
                if !args.is_empty() {
                    return Err(wrong_args());
                }
                return Ok(Scalar::Lit(Datum::TimestampTz(self.now)));
            }
            "lower" => (Func::Lower, Some(1)),
            "upper" => (Func::Upper, Some(1)),
            "length" | "char_length" | "character_length" => (Func::Length, Some(1)),
            "abs" => (Func::Abs, Some(1)),
            "coalesce" => (Func::Coalesce, None),
            _ => {
                return Err(SqlError::user(codes::UNDEFINED_FUNCTION, format!("unknown function: {name}()")));
            }
        };
        if arity.is_some_and(|n| n != args.len()) || args.is_empty() {
            return Err(wrong_args());
        }
        Ok(Scalar::Func(func, args))
    }

    /// The static type of an expression, if known (None for NULL literals).
    pub fn ty(&self, s: &Scalar) -> Option<SqlType> {
        match s {
            Scalar::Lit(d) => d.ty(),
            Scalar::Col(i) => self.columns.get(*i).map(|c| c.ty),
            Scalar::Agg(i) => {
                let spec = self.aggs.as_ref()?.get(*i)?;
                match spec.func {
                    AggFunc::CountStar | AggFunc::Count => Some(SqlType::Int),
                    AggFunc::Avg => Some(SqlType::Float),
                    _ => self.ty(spec.arg.as_ref()?),
                }
            }
            Scalar::Neg(e) => self.ty(e),
            Scalar::Bin(op, l, r) => match op {
                BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => match (self.ty(l), self.ty(r)) {
                    (Some(SqlType::Float), _) | (_, Some(SqlType::Float)) => Some(SqlType::Float),
                    (a, b) => a.or(b),
                },
                BinOp::Concat => match (self.ty(l), self.ty(r)) {
                    (Some(SqlType::Bytes), Some(SqlType::Bytes)) => Some(SqlType::Bytes),
                    _ => Some(SqlType::String),
                },
                _ => Some(SqlType::Bool),
            },
            Scalar::Not(_) | Scalar::IsNull(..) | Scalar::InList(..) | Scalar::Between(..) | Scalar::Like { .. } => Some(SqlType::Bool),
            Scalar::Cast(_, t) => Some(*t),
            Scalar::Func(f, args) => match f {
                Func::Lower | Func::Upper => Some(SqlType::String),
                Func::Length => Some(SqlType::Int),
                Func::Abs => args.first().and_then(|a| self.ty(a)),
                Func::Coalesce => args.iter().find_map(|a| self.ty(a)),
            },
        }
    }
}

/// Casts a literal compared with a value of type `to`: strings parse as that type, integers
/// widen to floats. Other literals are left for evaluation to reject.
fn coerce_lit(s: &mut Scalar, to: Option<SqlType>) -> Result<(), SqlError> {
    if let (Scalar::Lit(d), Some(to)) = (&*s, to) {
        let new = match (d, to) {
            (Datum::String(_), t) if t != SqlType::String => d.cast(t)?,
            (Datum::Int(i), SqlType::Float) => Datum::Float(*i as f64),
            _ => return Ok(()),
        };
        *s = Scalar::Lit(new);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn run(sql: &str) -> Result<Datum, SqlError> {
        let e = Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).unwrap().parse_expr().unwrap();
        let args = [Datum::Int(10), Datum::String("x".into())];
        let s = Compiler::new(&[], &args, 0).compile(&e)?;
        eval(&s, &[], &[])
    }

    #[test]
    fn arithmetic_and_errors() {
        assert_eq!(run("1 + 2 * 3").unwrap(), Datum::Int(7));
        assert_eq!(run("7 / 2").unwrap(), Datum::Int(3));
        assert_eq!(run("7.0 / 2").unwrap(), Datum::Float(3.5));
        assert_eq!(run("$1 % 3").unwrap(), Datum::Int(1));
        assert_eq!(run("1 / 0").unwrap_err().code(), "22012");
        assert_eq!(run("9223372036854775807 + 1").unwrap_err().code(), "22003");
        assert_eq!(run("-(-9223372036854775807 - 1)").unwrap_err().code(), "22003");
        assert_eq!(run("$3").unwrap_err().code(), "08P01");
        assert_eq!(run("'a' || 1 || $2").unwrap(), Datum::String("a1x".into()));
        assert_eq!(run("abs(-3) + length('héé')").unwrap(), Datum::Int(6));
        assert_eq!(run("upper('ab') = 'AB'").unwrap(), Datum::Bool(true));
        assert_eq!(run("coalesce(NULL, 2)").unwrap(), Datum::Int(2));
        assert_eq!(run("CAST('12' AS INT) + '3'::int8").unwrap(), Datum::Int(15));
        assert_eq!(run("nosuch(1)").unwrap_err().code(), "42883");
        assert_eq!(run("count(*)").unwrap_err().code(), "42803");
    }

    #[test]
    fn three_valued_logic() {
        assert_eq!(run("NULL AND false").unwrap(), Datum::Bool(false));
        assert_eq!(run("NULL AND true").unwrap(), Datum::Null);
        assert_eq!(run("NULL OR true").unwrap(), Datum::Bool(true));
        assert_eq!(run("NOT (NULL = 1)").unwrap(), Datum::Null);
        assert_eq!(run("1 IN (2, NULL)").unwrap(), Datum::Null);
        assert_eq!(run("1 NOT IN (2, 3)").unwrap(), Datum::Bool(true));
        assert_eq!(run("NULL IS NULL").unwrap(), Datum::Bool(true));
        assert_eq!(run("5 BETWEEN 1 AND 5").unwrap(), Datum::Bool(true));
        assert_eq!(run("1 + NULL").unwrap(), Datum::Null);
        assert_eq!(run("1 AND true").unwrap_err().code(), "42804");
    }

    #[test]
    fn like_patterns() {
        assert_eq!(run("'hello' LIKE 'h%o'").unwrap(), Datum::Bool(true));
        assert_eq!(run("'hello' LIKE 'h_llo'").unwrap(), Datum::Bool(true));
        assert_eq!(run("'hello' LIKE 'h%x'").unwrap(), Datum::Bool(false));
        assert_eq!(run("'a%b' LIKE 'a\\%b'").unwrap(), Datum::Bool(true));
        assert_eq!(run("'axb' LIKE 'a\\%b'").unwrap(), Datum::Bool(false));
        assert_eq!(run("'HeLLo' ILIKE '%ll%'").unwrap(), Datum::Bool(true));
        assert_eq!(run("'' LIKE '%'").unwrap(), Datum::Bool(true));
        assert_eq!(run("'abc' NOT LIKE 'ab'").unwrap(), Datum::Bool(true));
    }
}
