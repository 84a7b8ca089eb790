//! SELECT: one table (or none), WHERE, aggregates (count/sum/min/max/avg), GROUP BY, HAVING,
//! DISTINCT, ORDER BY (expressions, output aliases, positions; NULLs last ascending), LIMIT and
//! OFFSET. Output values are JSON (see `datum`); output types are inferred statically.
//!
//! Invariants: reads follow the span plan of the WHERE clause; LIMIT is pushed into the scan only
//! when nothing (filter, grouping, sort, DISTINCT) can drop or reorder rows. In an aggregate query
//! a column outside an aggregate must be a GROUP BY expression (42803).
//! Not handled: joins, subqueries, set operations, window functions, CTEs, DISTINCT ON.

use crate::catalog::TableDesc;
use crate::datum::Datum;
use crate::encoding::encode_key_datum;
use crate::error::{SqlError, codes};
use crate::exec::{Column, Ctx, QueryResult, load_table, passes, read_rows};
use crate::expr::{AggFunc, AggSpec, Compiler, Scalar, eval, ident_name, truth};
use crate::plan::{ScanPlan, plan_scan};
use crate::txn::TxnClient;
use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, LimitClause, OrderByKind, OrderBySort, Query, Select, SelectItem, SetExpr, TableFactor, Value,
};
use std::cmp::Ordering;
use std::collections::HashMap;

fn unsupported(what: &str) -> SqlError {
    SqlError::user(codes::UNSUPPORTED, format!("unsupported: {what}"))
}

struct SortKey {
    expr: Scalar,
    desc: bool,
    nulls_first: bool,
}

/// Column name PostgreSQL would give an unaliased select expression.
fn output_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(id) => ident_name(id),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident_name).unwrap_or_default(),
        Expr::Function(f) => f.name.0.last().and_then(|p| p.as_ident()).map(ident_name).unwrap_or_default(),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => output_name(expr),
        _ => "?column?".into(),
    }
}

/// A byte encoding of datums that is equal iff the datums are (used for GROUP BY / DISTINCT).
fn datums_key(ds: &[Datum]) -> Result<Vec<u8>, SqlError> {
    let mut k = Vec::new();
    for d in ds {
        match d {
            Datum::Null => k.push(0),
            other => {
                k.push(match other {
                    Datum::Int(_) => 1,
                    Datum::Float(_) => 2,
                    Datum::String(_) => 3,
                    Datum::Bool(_) => 4,
                    Datum::Bytes(_) => 5,
                    _ => 6,
                });
                encode_key_datum(&mut k, other)?;
            }
        }
    }
    Ok(k)
}

/// Rejects column references outside aggregates that are not GROUP BY expressions.
fn check_grouped(s: &Scalar, group: &[Scalar], table: Option<&TableDesc>) -> Result<(), SqlError> {
    if group.contains(s) {
        return Ok(());
    }
    let rec = |x: &Scalar| check_grouped(x, group, table);
    match s {
        Scalar::Col(i) => {
            let name = table.and_then(|t| t.columns.get(*i)).map(|c| c.name.as_str()).unwrap_or("?");
            Err(SqlError::user(
                codes::GROUPING,
                format!("column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"),
            ))
        }
        Scalar::Lit(_) | Scalar::Agg(_) => Ok(()),
        Scalar::Neg(e) | Scalar::Not(e) | Scalar::IsNull(e, _) | Scalar::Cast(e, _) => rec(e),
        Scalar::Bin(_, l, r) => rec(l).and(rec(r)),
        Scalar::Like { expr, pattern, .. } => rec(expr).and(rec(pattern)),
        Scalar::Between(a, b, c, _) => rec(a).and(rec(b)).and(rec(c)),
        Scalar::InList(x, list, _) => list.iter().try_for_each(rec).and(rec(x)),
        Scalar::Func(_, args) => args.iter().try_for_each(rec),
    }
}

enum Acc {
    Count(i64),
    Sum(Datum),
    Min(Datum),
    Max(Datum),
    Avg(f64, i64),
}

impl Acc {
    fn new(f: AggFunc) -> Acc {
        match f {
            AggFunc::CountStar | AggFunc::Count => Acc::Count(0),
            AggFunc::Sum => Acc::Sum(Datum::Null),
            AggFunc::Min => Acc::Min(Datum::Null),
            AggFunc::Max => Acc::Max(Datum::Null),
            AggFunc::Avg => Acc::Avg(0.0, 0),
        }
    }

    fn add(&mut self, func: AggFunc, v: Datum) -> Result<(), SqlError> {
        if func == AggFunc::CountStar {
            if let Acc::Count(n) = self {
                *n += 1;
            }
            return Ok(());
        }
        if v.is_null() {
            return Ok(());
        }
        let bad = |name: &str, v: &Datum| {
            SqlError::user(
                codes::UNDEFINED_FUNCTION,
                format!("function {name}({}) does not exist", v.ty().map(|t| t.name()).unwrap_or("NULL")),
            )
        };
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Sum(s) => {
                *s = match (&*s, &v) {
                    (Datum::Null, Datum::Int(_) | Datum::Float(_)) => v,
                    (Datum::Int(a), Datum::Int(b)) => {
                        Datum::Int(a.checked_add(*b).ok_or_else(|| SqlError::user(codes::OUT_OF_RANGE, "integer out of range"))?)
                    }
                    (Datum::Float(a), Datum::Float(b)) => Datum::Float(a + b),
                    (Datum::Int(a), Datum::Float(b)) | (Datum::Float(b), Datum::Int(a)) => Datum::Float(*a as f64 + b),
                    _ => return Err(bad("sum", &v)),
                }
            }
            Acc::Min(m) | Acc::Max(m) => {
                let is_min = matches!(func, AggFunc::Min);
                let replace = match m.is_null() {
                    true => true,
                    false => match v.compare(m) {
                        Some(o) => (o == Ordering::Less) == is_min && o != Ordering::Equal,
                        None => return Err(bad(if is_min { "min" } else { "max" }, &v)),
                    },
                };
                if replace {
                    *m = v;
                }
            }
            Acc::Avg(s, n) => match v {
                Datum::Int(i) => {
                    *s += i as f64;
                    *n += 1;
                }
                Datum::Float(f) => {
                    *s += f;
                    *n += 1;
                }
                other => return Err(bad("avg", &other)),
            },
        }
        Ok(())
    }

    fn finish(self) -> Datum {
        match self {
            Acc::Count(n) => Datum::Int(n),
            Acc::Sum(d) | Acc::Min(d) | Acc::Max(d) => d,
            Acc::Avg(_, 0) => Datum::Null,
            Acc::Avg(s, n) => Datum::Float(s / n as f64),
        }
    }
}

fn const_count(e: &Expr, ctx: &Ctx<'_>, what: &str) -> Result<Option<usize>, SqlError> {
    let s = Compiler::new(&[], ctx.args, ctx.now).compile(e)?;
    match eval(&s, &[], &[])? {
        Datum::Null => Ok(None),
        Datum::Int(n) if n >= 0 => Ok(Some(n as usize)),
        Datum::Int(_) => Err(SqlError::user("2201W", format!("{what} must not be negative"))),
        _ => Err(SqlError::user(codes::DATATYPE_MISMATCH, format!("argument of {what} must be type INT8"))),
    }
}

pub(crate) async fn select<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, q: &Query) -> Result<QueryResult, SqlError> {
    if q.with.is_some() || q.fetch.is_some() || !q.pipe_operators.is_empty() {
        return Err(unsupported("WITH / FETCH / pipe operators"));
    }
    let SetExpr::Select(sel) = &*q.body else {
        return Err(unsupported("set operations and VALUES queries"));
    };
    let sel: &Select = sel;
    if matches!(sel.distinct, Some(Distinct::On(_))) || sel.top.is_some() || sel.into.is_some() {
        return Err(unsupported("DISTINCT ON / TOP / INTO"));
    }
    if sel.qualify.is_some() || !sel.named_window.is_empty() || !sel.lateral_views.is_empty() {
        return Err(unsupported("QUALIFY / WINDOW / LATERAL VIEW"));
    }
    let table = match sel.from.as_slice() {
        [] => None,
        [twj] => {
            if !twj.joins.is_empty() {
                return Err(unsupported("joins"));
            }
            let TableFactor::Table { name, alias, args: None, .. } = &twj.relation else {
                return Err(unsupported("subqueries and table functions in FROM"));
            };
            Some((load_table(txn, ctx, name).await?, alias.as_ref().map(|a| ident_name(&a.name))))
        }
        _ => return Err(unsupported("joins")),
    };
    let columns = table.as_ref().map(|(t, _)| t.columns.as_slice()).unwrap_or(&[]);
    let mut c = Compiler::new(columns, ctx.args, ctx.now);
    if let Some((t, alias)) = &table {
        c.table_names.push(t.name.clone());
        c.table_names.extend(alias.clone());
    }
    let filter = sel.selection.as_ref().map(|e| c.compile(e)).transpose()?;
    let group: Vec<Scalar> = match &sel.group_by {
        GroupByExpr::Expressions(exprs, mods) if mods.is_empty() => exprs.iter().map(|e| c.compile(e)).collect::<Result<_, _>>()?,
        _ => return Err(unsupported("GROUP BY ALL / modifiers")),
    };
    c.aggs = Some(Vec::new());
    // Projection.
    let mut proj: Vec<(String, Scalar)> = Vec::new();
    for item in &sel.projection {
        match item {
            SelectItem::UnnamedExpr(e) => proj.push((output_name(e), c.compile(e)?)),
            SelectItem::ExprWithAlias { expr, alias } => proj.push((ident_name(alias), c.compile(expr)?)),
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                if table.is_none() {
                    return Err(SqlError::user(codes::SYNTAX, "SELECT * with no tables specified is not valid"));
                }
                for (i, col) in columns.iter().enumerate() {
                    proj.push((col.name.clone(), Scalar::Col(i)));
                }
            }
            SelectItem::ExprWithAliases { .. } => return Err(unsupported("multiple aliases")),
        }
    }
    let having = sel.having.as_ref().map(|e| c.compile(e)).transpose()?;
    // ORDER BY: output positions, output aliases, or expressions.
    let mut sort = Vec::new();
    if let Some(ob) = &q.order_by {
        let OrderByKind::Expressions(exprs) = &ob.kind else {
            return Err(unsupported("ORDER BY ALL"));
        };
        for o in exprs {
            let expr = match &o.expr {
                Expr::Value(v) if matches!(v.value, Value::Number(..)) => {
                    let n = match &v.value {
                        Value::Number(n, _) => n.parse::<usize>().ok(),
                        _ => None,
                    };
                    match n.and_then(|n| n.checked_sub(1)).and_then(|i| proj.get(i)) {
                        Some((_, s)) => s.clone(),
                        None => {
                            return Err(SqlError::user("42P10", format!("ORDER BY position {} is not in select list", o.expr)));
                        }
                    }
                }
                Expr::Identifier(id)
                    if columns.iter().all(|col| col.name != ident_name(id)) && proj.iter().any(|(n, _)| *n == ident_name(id)) =>
                {
                    let name = ident_name(id);
                    proj.iter().find(|(n, _)| *n == name).map(|(_, s)| s.clone()).unwrap_or(Scalar::Lit(Datum::Null))
                }
                e => c.compile(e)?,
            };
            let desc = matches!(o.options.sort, Some(OrderBySort::Desc));
            if matches!(o.options.sort, Some(OrderBySort::Using(_))) {
                return Err(unsupported("ORDER BY USING"));
            }
            sort.push(SortKey { expr, desc, nulls_first: o.options.nulls_first.unwrap_or(desc) });
        }
    }
    let (limit, offset) = match &q.limit_clause {
        None => (None, 0),
        Some(LimitClause::LimitOffset { limit, offset, limit_by }) => {
            if !limit_by.is_empty() {
                return Err(unsupported("LIMIT BY"));
            }
            let l = limit.as_ref().map(|e| const_count(e, ctx, "LIMIT")).transpose()?.flatten();
            let o = offset.as_ref().map(|o| const_count(&o.value, ctx, "OFFSET")).transpose()?.flatten();
            (l, o.unwrap_or(0))
        }
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
            (const_count(limit, ctx, "LIMIT")?, const_count(offset, ctx, "OFFSET")?.unwrap_or(0))
        }
    };
    let aggs: Vec<AggSpec> = c.aggs.clone().unwrap_or_default();
    let grouped = !aggs.is_empty() || !group.is_empty() || having.is_some();
    let distinct = matches!(sel.distinct, Some(Distinct::Distinct));
    if grouped {
        let t = table.as_ref().map(|(t, _)| t);
        for s in proj.iter().map(|(_, s)| s).chain(sort.iter().map(|k| &k.expr)).chain(having.iter()) {
            check_grouped(s, &group, t)?;
        }
    }
    let out_columns: Vec<Column> =
        proj.iter().map(|(n, s)| Column { name: n.clone(), ty: c.ty(s).map(|t| t.name()).unwrap_or("STRING").to_string() }).collect();

    // Input rows.
    let rows: Vec<Vec<Datum>> = match &table {
        None => {
            if passes(filter.as_ref(), &[])? {
                vec![Vec::new()]
            } else {
                Vec::new()
            }
        }
        Some((t, _)) => {
            let plan = plan_scan(t, filter.as_ref())?;
            let pushdown = !grouped && sort.is_empty() && filter.is_none() && !distinct;
            let scan_limit = match (pushdown, limit, &plan) {
                (true, Some(l), ScanPlan::Span { .. } | ScanPlan::Full { .. }) => l.saturating_add(offset).max(1),
                _ => 0,
            };
            let mut out = Vec::new();
            for (_, row) in read_rows(txn, t, &plan, scan_limit).await? {
                if passes(filter.as_ref(), &row)? {
                    out.push(row);
                }
            }
            out
        }
    };

    // (sort keys, output row) per result row.
    let mut results: Vec<(Vec<Datum>, Vec<Datum>)> = Vec::new();
    let mut emit = |row: &[Datum], agg_vals: &[Datum]| -> Result<(), SqlError> {
        if let Some(h) = &having
            && truth(&eval(h, row, agg_vals)?, "HAVING")? != Some(true)
        {
            return Ok(());
        }
        let keys = sort.iter().map(|k| eval(&k.expr, row, agg_vals)).collect::<Result<Vec<_>, _>>()?;
        let out = proj.iter().map(|(_, s)| eval(s, row, agg_vals)).collect::<Result<Vec<_>, _>>()?;
        results.push((keys, out));
        Ok(())
    };
    if grouped {
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut groups: Vec<(Vec<Datum>, Vec<Acc>)> = Vec::new();
        if group.is_empty() {
            groups.push((vec![Datum::Null; columns.len()], aggs.iter().map(|a| Acc::new(a.func)).collect()));
            index.insert(Vec::new(), 0);
        }
        for row in rows {
            let gk = datums_key(&group.iter().map(|g| eval(g, &row, &[])).collect::<Result<Vec<_>, _>>()?)?;
            let gi = match index.get(&gk) {
                Some(i) => *i,
                None => {
                    groups.push((row.clone(), aggs.iter().map(|a| Acc::new(a.func)).collect()));
                    index.insert(gk, groups.len() - 1);
                    groups.len() - 1
                }
            };
            for (acc, spec) in groups[gi].1.iter_mut().zip(&aggs) {
                let v = match &spec.arg {
                    Some(a) => eval(a, &row, &[])?,
                    None => Datum::Null,
                };
                acc.add(spec.func, v)?;
            }
        }
        for (rep, accs) in groups {
            let vals: Vec<Datum> = accs.into_iter().map(Acc::finish).collect();
            emit(&rep, &vals)?;
        }
    } else {
        for row in &rows {
            emit(row, &[])?;
        }
    }
    if !sort.is_empty() {
        results.sort_by(|(a, _), (b, _)| {
            for (k, (x, y)) in sort.iter().zip(a.iter().zip(b)) {
                let o = match (x.is_null(), y.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if k.nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if k.nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (false, false) => {
                        let o = x.sort_cmp(y);
                        if k.desc { o.reverse() } else { o }
                    }
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    let mut out_rows: Vec<Vec<Datum>> = results.into_iter().map(|(_, r)| r).collect();
    if distinct {
        let mut seen = std::collections::HashSet::new();
        let mut kept = Vec::with_capacity(out_rows.len());
        for r in out_rows {
            if seen.insert(datums_key(&r)?) {
                kept.push(r);
            }
        }
        out_rows = kept;
    }
    let rows_json: Vec<Vec<serde_json::Value>> =
        out_rows.into_iter().skip(offset).take(limit.unwrap_or(usize::MAX)).map(|r| r.iter().map(Datum::to_json).collect()).collect();
    Ok(QueryResult { columns: out_columns, rows_affected: rows_json.len() as u64, rows: rows_json, tag: "SELECT".into() })
}
