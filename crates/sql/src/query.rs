//! Query planning: SELECT (expressions, aliases, WHERE, GROUP BY/HAVING with aggregates,
//! DISTINCT, ORDER BY, LIMIT/OFFSET), VALUES, set operations (UNION/INTERSECT/EXCEPT [ALL]),
//! non-recursive CTEs and subqueries (correlated or not), all into a [`Rel`] tree; and [`select`],
//! which runs one and bounds its result by the statement's [`Budget`].
//!
//! Invariants: subqueries are planned when the expression holding them is compiled
//! (`subquery`: uncorrelated ones run at once and become literals, correlated ones run per
//! distinct outer values); in an aggregate query a column outside an aggregate must be a GROUP BY
//! expression (42803), also when a subquery uses it; output column types are inferred statically.
//! Not handled: window functions, DISTINCT ON, recursive CTEs, FETCH.

use crate::aggregate::AggNode;
use crate::catalog::SqlType;
use crate::datum::Datum;
use crate::error::{SqlError, codes};
use crate::exec::{Column, Ctx, QueryResult};
use crate::expr::{AggSpec, Compiler, Scalar, ScopeCol, ident_name, unsupported};
use crate::from::{apply_filter, finalize, plan_from};
use crate::rel::{BoxFut, Meter, Rel, SetKind, SetNode, SortKey};
pub(crate) use crate::subquery::resolve_subqueries;
use crate::txn::TxnClient;
use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, LimitClause, OrderBy, OrderByKind, OrderBySort, Query, Select, SelectItem, SetExpr, SetOperator,
    SetQuantifier, Value,
};

/// A CTE visible to a query.
#[derive(Clone, Debug)]
pub struct Cte {
    pub name: String,
    pub columns: Vec<String>,
    pub query: Query,
}

/// Compiles an expression and runs the subqueries it contains, substituting their results.
pub(crate) async fn compile_full<T: TxnClient>(
    txn: &mut T,
    ctx: &Ctx<'_>,
    c: &mut Compiler<'_>,
    e: &Expr,
    ctes: &[Cte],
) -> Result<Scalar, SqlError> {
    let mut s = c.compile(e)?;
    resolve_subqueries(txn, ctx, c, &mut [&mut s], ctes).await?;
    Ok(s)
}

/// Plans a query; returns the operator tree and its output columns.
pub(crate) fn plan_query<'a, T: TxnClient>(
    txn: &'a mut T,
    ctx: &'a Ctx<'a>,
    q: &'a Query,
    outer: &'a [Cte],
) -> BoxFut<'a, Result<(Rel, Vec<ScopeCol>), SqlError>> {
    Box::pin(async move {
        if q.fetch.is_some() || !q.pipe_operators.is_empty() || !q.locks.is_empty() {
            return Err(unsupported("FETCH / FOR UPDATE / pipe operators"));
        }
        let mut ctes: Vec<Cte> = outer.to_vec();
        if let Some(w) = &q.with {
            if w.recursive {
                return Err(unsupported("WITH RECURSIVE"));
            }
            for c in &w.cte_tables {
                ctes.push(Cte {
                    name: ident_name(&c.alias.name),
                    columns: c.alias.columns.iter().map(|c| ident_name(&c.name)).collect(),
                    query: (*c.query).clone(),
                });
            }
        }
        let (limit, offset) = limits(ctx, q)?;
        if let SetExpr::Select(sel) = &*q.body {
            return plan_select(txn, ctx, sel, q.order_by.as_ref(), limit, offset, &ctes).await;
        }
        let (mut rel, scope) = plan_set_expr(txn, ctx, &q.body, &ctes).await?;
        if let Some(ob) = &q.order_by {
            let mut c = Compiler::from_ctx(scope.clone(), ctx);
            let proj: Vec<(String, Scalar)> = scope.iter().enumerate().map(|(i, s)| (s.name.clone(), Scalar::Col(i))).collect();
            let keys = order_keys(&mut c, ob, &proj, &[])?;
            rel = Rel::Sort { input: Box::new(rel), keys, out: None };
        }
        if limit.is_some() || offset > 0 {
            rel = Rel::Limit { input: Box::new(rel), limit, offset, seen: 0 };
        }
        Ok((rel, scope))
    })
}

fn plan_set_expr<'a, T: TxnClient>(
    txn: &'a mut T,
    ctx: &'a Ctx<'a>,
    body: &'a SetExpr,
    ctes: &'a [Cte],
) -> BoxFut<'a, Result<(Rel, Vec<ScopeCol>), SqlError>> {
    Box::pin(async move {
        match body {
            SetExpr::Select(sel) => plan_select(txn, ctx, sel, None, None, 0, ctes).await,
            SetExpr::Query(q) => plan_query(txn, ctx, q, ctes).await,
            SetExpr::Values(v) => {
                let mut c = Compiler::from_ctx(Vec::new(), ctx);
                let mut rows = Vec::with_capacity(v.rows.len());
                let width = v.rows.first().map(|r| r.len()).unwrap_or(0);
                for r in &v.rows {
                    if r.len() != width {
                        return Err(SqlError::user(codes::SYNTAX, "VALUES lists must all be the same length"));
                    }
                    let mut vals = Vec::with_capacity(width);
                    for e in r.iter() {
                        vals.push(compile_full(txn, ctx, &mut c, e, ctes).await?);
                    }
                    rows.push(vals);
                }
                let scope = (0..width)
                    .map(|i| {
                        let ty = rows.iter().find_map(|r: &Vec<Scalar>| r.get(i).and_then(|s| c.ty(s)));
                        ScopeCol::new(None, &format!("column{}", i + 1), ty)
                    })
                    .collect();
                Ok((Rel::Values { rows, done: false }, scope))
            }
            SetExpr::SetOperation { op, set_quantifier, left, right } => {
                let kind = match op {
                    SetOperator::Union => SetKind::Union,
                    SetOperator::Intersect => SetKind::Intersect,
                    SetOperator::Except | SetOperator::Minus => SetKind::Except,
                };
                let all = match set_quantifier {
                    SetQuantifier::All => true,
                    SetQuantifier::Distinct | SetQuantifier::None => false,
                    other => return Err(unsupported(format!("set quantifier {other}"))),
                };
                let (l, mut lscope) = plan_set_expr(txn, ctx, left, ctes).await?;
                let (r, rscope) = plan_set_expr(txn, ctx, right, ctes).await?;
                if lscope.len() != rscope.len() {
                    return Err(SqlError::user(codes::SYNTAX, format!("each {op} query must have the same number of columns")));
                }
                for (l, r) in lscope.iter_mut().zip(&rscope) {
                    l.table = None;
                    if l.ty.is_none() {
                        l.ty = r.ty;
                    }
                }
                let node = SetNode {
                    kind,
                    all,
                    left: l,
                    right: r,
                    right_done: false,
                    counts: None,
                    seen: Default::default(),
                    meter: Meter::default(),
                    left_done: false,
                };
                Ok((Rel::SetOp(Box::new(node)), lscope))
            }
            other => Err(unsupported(format!("query {other}").chars().take(80).collect::<String>())),
        }
    })
}

fn const_count(e: &Expr, ctx: &Ctx<'_>, what: &str) -> Result<Option<usize>, SqlError> {
    let s = Compiler::new(Vec::new(), ctx.args, ctx.now).compile(e)?;
    match crate::eval::eval(&s, &[], &[])? {
        Datum::Null => Ok(None),
        Datum::Int(n) if n >= 0 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        Datum::Int(_) => Err(SqlError::user("2201W", format!("{what} must not be negative"))),
        _ => Err(SqlError::user(codes::DATATYPE_MISMATCH, format!("argument of {what} must be type bigint"))),
    }
}

fn limits(ctx: &Ctx<'_>, q: &Query) -> Result<(Option<usize>, usize), SqlError> {
    Ok(match &q.limit_clause {
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
    })
}

/// Column name PostgreSQL would give an unaliased select expression.
fn output_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(id) => ident_name(id),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident_name).unwrap_or_default(),
        Expr::Function(f) => f.name.0.last().and_then(|p| p.as_ident()).map(ident_name).unwrap_or_default(),
        Expr::Cast { expr, data_type, .. } => match &**expr {
            Expr::Value(_) => data_type.to_string().to_lowercase().split('(').next().unwrap_or("").to_string(),
            inner => output_name(inner),
        },
        Expr::Nested(expr) => output_name(expr),
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Substring { .. } => "substring".into(),
        Expr::Trim { .. } => "btrim".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        _ => "?column?".into(),
    }
}

/// The select-list item a positional reference (`ORDER BY 2`, `GROUP BY 1`) names, or 42P10.
fn select_list_item(e: &Expr, proj: &[(String, Scalar)], clause: &str) -> Result<Scalar, SqlError> {
    let n = match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<usize>().ok(),
            _ => None,
        },
        _ => None,
    };
    match n.and_then(|n| n.checked_sub(1)).and_then(|i| proj.get(i)) {
        Some((_, s)) => Ok(s.clone()),
        None => Err(SqlError::user("42P10", format!("{clause} position {e} is not in select list"))),
    }
}

/// ORDER BY keys: output positions, output aliases, or expressions over the input scope.
fn order_keys(c: &mut Compiler<'_>, ob: &OrderBy, proj: &[(String, Scalar)], input_names: &[String]) -> Result<Vec<SortKey>, SqlError> {
    let OrderByKind::Expressions(exprs) = &ob.kind else {
        return Err(unsupported("ORDER BY ALL"));
    };
    let mut keys = Vec::new();
    for o in exprs {
        let expr = match &o.expr {
            Expr::Value(v) if matches!(v.value, Value::Number(..)) => select_list_item(&o.expr, proj, "ORDER BY")?,
            Expr::Identifier(id) if !input_names.contains(&ident_name(id)) && proj.iter().any(|(n, _)| *n == ident_name(id)) => {
                let name = ident_name(id);
                proj.iter().find(|(n, _)| *n == name).map(|(_, s)| s.clone()).unwrap_or(Scalar::Lit(Datum::Null))
            }
            e => c.compile(e)?,
        };
        if matches!(o.options.sort, Some(OrderBySort::Using(_))) {
            return Err(unsupported("ORDER BY USING"));
        }
        let desc = matches!(o.options.sort, Some(OrderBySort::Desc));
        keys.push(SortKey { expr, desc, nulls_first: o.options.nulls_first.unwrap_or(desc) });
    }
    Ok(keys)
}

/// Rejects column references outside aggregates that are not GROUP BY expressions (also the
/// outer values of correlated subqueries).
fn check_grouped(s: &Scalar, group: &[Scalar], scope: &[ScopeCol]) -> Result<(), SqlError> {
    if group.contains(s) {
        return Ok(());
    }
    if let Scalar::Correlated(c) = s {
        for p in &c.params {
            if let Scalar::Col(i) = p
                && !group.contains(p)
            {
                let name = scope.get(*i).map(|c| format!("{}.{}", c.table.as_deref().unwrap_or("?"), c.name)).unwrap_or_default();
                return Err(SqlError::user(codes::GROUPING, format!("subquery uses ungrouped column \"{name}\" from outer query")));
            }
        }
    }
    if let Scalar::Col(i) = s {
        let name = scope.get(*i).map(|c| c.name.as_str()).unwrap_or("?");
        return Err(SqlError::user(
            codes::GROUPING,
            format!("column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"),
        ));
    }
    s.children().into_iter().try_for_each(|c| check_grouped(c, group, scope))
}

#[allow(clippy::too_many_arguments)]
async fn plan_select<T: TxnClient>(
    txn: &mut T,
    ctx: &Ctx<'_>,
    sel: &Select,
    order_by: Option<&OrderBy>,
    limit: Option<usize>,
    offset: usize,
    ctes: &[Cte],
) -> Result<(Rel, Vec<ScopeCol>), SqlError> {
    if matches!(sel.distinct, Some(Distinct::On(_))) || sel.top.is_some() || sel.into.is_some() {
        return Err(unsupported("DISTINCT ON / TOP / INTO"));
    }
    if sel.qualify.is_some() || !sel.named_window.is_empty() || !sel.lateral_views.is_empty() {
        return Err(unsupported("QUALIFY / WINDOW / LATERAL VIEW"));
    }
    let (mut rel, scope) =
        if sel.from.is_empty() { (Rel::Unit { done: false }, Vec::new()) } else { plan_from(txn, ctx, &sel.from, ctes).await? };
    let width = scope.len();
    let mut c = Compiler::from_ctx(scope.clone(), ctx);
    if let Some(w) = &sel.selection {
        let filter = compile_full(txn, ctx, &mut c, w, ctes).await?;
        rel = apply_filter(rel, filter);
    }
    let types: Vec<Option<SqlType>> = scope.iter().map(|s| s.ty).collect();
    finalize(&mut rel, &types)?;

    c.aggs = Some(Vec::new());
    let mut proj: Vec<(String, Scalar)> = Vec::new();
    for item in &sel.projection {
        match item {
            SelectItem::UnnamedExpr(e) => proj.push((output_name(e), c.compile(e)?)),
            SelectItem::ExprWithAlias { expr, alias } => proj.push((ident_name(alias), c.compile(expr)?)),
            SelectItem::Wildcard(_) => {
                if scope.is_empty() {
                    return Err(SqlError::user(codes::SYNTAX, "SELECT * with no tables specified is not valid"));
                }
                for (i, col) in scope.iter().enumerate().filter(|(_, c)| !c.hidden) {
                    proj.push((col.name.clone(), Scalar::Col(i)));
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                let t = kind.to_string().rsplit('.').next().unwrap_or("").trim_matches('"').to_lowercase();
                let before = proj.len();
                for (i, col) in scope.iter().enumerate().filter(|(_, c)| c.table.as_deref() == Some(t.as_str())) {
                    proj.push((col.name.clone(), Scalar::Col(i)));
                }
                if proj.len() == before {
                    return Err(SqlError::user(codes::UNDEFINED_TABLE, format!("missing FROM-clause entry for table \"{t}\"")));
                }
            }
            SelectItem::ExprWithAliases { .. } => return Err(unsupported("multiple aliases")),
        }
    }
    let aggs_so_far = c.aggs.take();
    let mut group: Vec<Scalar> = Vec::new();
    match &sel.group_by {
        GroupByExpr::Expressions(exprs, mods) if mods.is_empty() => {
            for e in exprs {
                let s = match e {
                    Expr::Value(v) if matches!(v.value, Value::Number(..)) => select_list_item(e, proj.as_slice(), "GROUP BY")?,
                    Expr::Identifier(id)
                        if scope.iter().all(|s| s.name != ident_name(id)) && proj.iter().any(|(n, _)| *n == ident_name(id)) =>
                    {
                        proj.iter().find(|(n, _)| *n == ident_name(id)).map(|(_, s)| s.clone()).unwrap_or(Scalar::Lit(Datum::Null))
                    }
                    e => c.compile(e)?,
                };
                group.push(s);
            }
        }
        _ => return Err(unsupported("GROUP BY ALL / modifiers")),
    }
    c.aggs = aggs_so_far;
    let mut having = sel.having.as_ref().map(|e| c.compile(e)).transpose()?;
    let input_names: Vec<String> = scope.iter().map(|s| s.name.clone()).collect();
    let mut sort = match order_by {
        Some(ob) => order_keys(&mut c, ob, &proj, &input_names)?,
        None => Vec::new(),
    };
    {
        let mut specs = c.aggs.take().unwrap_or_default();
        let mut targets: Vec<&mut Scalar> = proj.iter_mut().map(|(_, s)| s).collect();
        targets.extend(group.iter_mut());
        targets.extend(having.iter_mut());
        targets.extend(sort.iter_mut().map(|k| &mut k.expr));
        targets.extend(specs.iter_mut().flat_map(|a| a.arg.iter_mut().chain(a.sep.iter_mut())));
        resolve_subqueries(txn, ctx, &mut c, &mut targets, ctes).await?;
        c.aggs = Some(specs);
    }
    let aggs: Vec<AggSpec> = c.aggs.clone().unwrap_or_default();
    let aggs_len = aggs.len();
    let grouped = !aggs.is_empty() || !group.is_empty() || having.is_some();
    let distinct = matches!(sel.distinct, Some(Distinct::Distinct));
    let out_scope: Vec<ScopeCol> = proj.iter().map(|(n, s)| ScopeCol::new(None, n, c.ty(s))).collect();
    if grouped {
        for s in proj.iter().map(|(_, s)| s).chain(sort.iter().map(|k| &k.expr)).chain(having.iter()) {
            check_grouped(s, &group, &scope)?;
        }
        let to_col = |s: &mut Scalar| {
            s.walk_mut(&mut |n| {
                if let Scalar::Agg(i) = n {
                    *n = Scalar::Col(width + *i);
                }
            })
        };
        proj.iter_mut().for_each(|(_, s)| to_col(s));
        sort.iter_mut().for_each(|k| to_col(&mut k.expr));
        if let Some(h) = having.as_mut() {
            to_col(h);
        }
        rel = Rel::Agg(Box::new(AggNode { input: rel, width, group, aggs, out: None }));
        if let Some(h) = having {
            rel = Rel::Filter { input: Box::new(rel), pred: h };
        }
    }
    let n = proj.len();
    if distinct {
        for k in &mut sort {
            match proj.iter().position(|(_, s)| *s == k.expr) {
                Some(i) => k.expr = Scalar::Col(i),
                None => return Err(SqlError::user("42P10", "for SELECT DISTINCT, ORDER BY expressions must appear in select list")),
            }
        }
        rel = Rel::Project { input: Box::new(rel), exprs: proj.into_iter().map(|(_, s)| s).collect() };
        rel = Rel::Distinct { input: Box::new(rel), width: n, seen: Default::default(), meter: Meter::default() };
        if !sort.is_empty() {
            rel = Rel::Sort { input: Box::new(rel), keys: sort, out: None };
        }
    } else if sort.is_empty() {
        rel = Rel::Project { input: Box::new(rel), exprs: proj.into_iter().map(|(_, s)| s).collect() };
    } else {
        let ordered = !grouped && crate::index_plan::order_by_index(&mut rel, &sort, limit.map(|l| l.saturating_add(offset)))?;
        // Project the sort keys as hidden trailing columns, sort, then drop them. A select list
        // with correlated subqueries is computed after LIMIT instead (over the sorted input
        // rows), so they run only for the rows returned, as in PostgreSQL.
        let late = proj.iter().any(|(_, s)| s.has_correlated());
        let input_width = if grouped { width + aggs_len } else { width };
        let select: Vec<Scalar> = proj.into_iter().map(|(_, s)| s).collect();
        let (mut exprs, base) = if late { ((0..input_width).map(Scalar::Col).collect(), input_width) } else { (select.clone(), n) };
        for (i, k) in sort.iter_mut().enumerate() {
            exprs.push(std::mem::replace(&mut k.expr, Scalar::Col(base + i)));
        }
        rel = Rel::Project { input: Box::new(rel), exprs };
        if !ordered {
            rel = Rel::Sort { input: Box::new(rel), keys: sort, out: None };
        }
        if limit.is_some() || offset > 0 {
            rel = Rel::Limit { input: Box::new(rel), limit, offset, seen: 0 };
        }
        let exprs = if late { select } else { (0..n).map(Scalar::Col).collect() };
        rel = Rel::Project { input: Box::new(rel), exprs };
        return Ok((rel, out_scope));
    }
    if limit.is_some() || offset > 0 {
        rel = Rel::Limit { input: Box::new(rel), limit, offset, seen: 0 };
    }
    Ok((rel, out_scope))
}

/// Runs a query and returns its rows as JSON, bounded by the statement's budget.
pub(crate) async fn select<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, q: &Query) -> Result<QueryResult, SqlError> {
    let (mut rel, scope) = plan_query(txn, ctx, q, &[]).await?;
    crate::index_plan::mark_covering(&mut rel, None);
    let mut rows = Vec::new();
    let mut meter = Meter::default();
    while let Some(batch) = rel.next(txn, &ctx.budget).await? {
        for r in batch {
            meter.add(&r, &ctx.budget, "query result")?;
            rows.push(r.iter().map(Datum::to_json).collect::<Vec<_>>());
        }
    }
    let columns =
        scope.iter().map(|s| Column { name: s.name.clone(), ty: s.ty.map(|t| t.name()).unwrap_or("STRING").to_string() }).collect();
    Ok(QueryResult { columns, rows_affected: rows.len() as u64, rows, tag: "SELECT".into() })
}
