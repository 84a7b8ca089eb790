//! FROM-clause planning: tables, CTE references, derived tables, VALUES, generate_series and
//! joins become a [`Rel`] tree plus the [`ScopeCol`] list of its output columns; WHERE and ON
//! conjuncts are pushed down to the scans they constrain (so they plan point gets and spans),
//! and each join picks its method ([`finalize`]): lookup join when the right side is a table
//! whose whole primary key is bound by equalities with same-typed left expressions, hash join
//! on any other equi-join keys, nested loop otherwise.
//!
//! Invariants: a join's output is left columns then right columns; conjuncts are only pushed
//! where that cannot change results (never into the NULL-extended side of an outer join), and
//! never when they hold a correlated subquery (those stay in filters, which can run them).
//! Not handled: LATERAL, NATURAL joins, table functions other than generate_series.

use crate::catalog::SqlType;
use crate::datum::Datum;
use crate::error::{SqlError, codes};
use crate::exec::{Ctx, load_table};
use crate::expr::{BinOp, Compiler, Scalar, ScopeCol, ident_name, table_scope, unsupported};
use crate::join::{JoinKind, JoinNode, Method};
use crate::query::{Cte, compile_full, plan_query};
use crate::rel::{BoxFut, Rel, ScanNode};
use crate::txn::TxnClient;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, JoinConstraint, JoinOperator, ObjectName, TableAlias, TableFactor, TableWithJoins,
};

pub(crate) fn conjuncts(s: Scalar, out: &mut Vec<Scalar>) {
    match s {
        Scalar::Bin(BinOp::And, l, r) => {
            conjuncts(*l, out);
            conjuncts(*r, out);
        }
        other => out.push(other),
    }
}

pub(crate) fn and(a: Option<Scalar>, b: Scalar) -> Scalar {
    match a {
        None => b,
        Some(a) => Scalar::Bin(BinOp::And, Box::new(a), Box::new(b)),
    }
}

/// Splits `filter` into conjuncts, pushes each as deep into `rel` as it can go, and keeps what
/// must stay above `rel` in a filter node on top.
pub(crate) fn apply_filter(rel: Rel, filter: Scalar) -> Rel {
    let mut rel = rel;
    let mut cs = Vec::new();
    conjuncts(filter, &mut cs);
    let mut rest = None;
    for p in cs {
        if let Some(r) = push(&mut rel, p) {
            rest = Some(and(rest, r));
        }
    }
    match rest {
        Some(pred) => Rel::Filter { input: Box::new(rel), pred },
        None => rel,
    }
}

/// Pushes a predicate (over `rel`'s columns) as deep as possible; returns it if it must stay
/// above `rel`.
pub(crate) fn push(rel: &mut Rel, pred: Scalar) -> Option<Scalar> {
    let cols = pred.columns();
    // Scans and joins evaluate without running subqueries: correlated ones stay in a filter.
    if cols.is_empty() || pred.has_correlated() {
        return Some(pred);
    }
    match rel {
        Rel::Scan(s) => {
            s.filter = Some(and(s.filter.take(), pred));
            None
        }
        Rel::Join(j) => {
            let lw = j.lw;
            let in_left = cols.iter().all(|c| *c < lw);
            let in_right = cols.iter().all(|c| *c >= lw);
            let inner = matches!(j.kind, JoinKind::Inner | JoinKind::Cross);
            if in_left && (inner || j.kind == JoinKind::Left) {
                if let Some(rest) = push(&mut j.left, pred) {
                    if !inner {
                        return Some(rest);
                    }
                    j.on = Some(and(j.on.take(), rest));
                }
                return None;
            }
            if in_right && (inner || j.kind == JoinKind::Right) {
                let mut p = pred.clone();
                p.map_cols(&|c| c - lw);
                if let Some(_rest) = push(&mut j.right, p) {
                    if !inner {
                        return Some(pred);
                    }
                    j.on = Some(and(j.on.take(), pred));
                }
                return None;
            }
            if inner {
                j.on = Some(and(j.on.take(), pred));
                j.kind = JoinKind::Inner;
                return None;
            }
            Some(pred)
        }
        _ => Some(pred),
    }
}

/// Plans scans and picks join methods, bottom-up. `types` are the static types of `rel`'s columns.
pub(crate) fn finalize(rel: &mut Rel, types: &[Option<SqlType>]) -> Result<(), SqlError> {
    match rel {
        Rel::Scan(s) => s.finalize(),
        Rel::Filter { input, .. } => finalize(input, types),
        Rel::Join(j) => {
            let lw = j.lw.min(types.len());
            finalize(&mut j.left, &types[..lw])?;
            finalize(&mut j.right, &types[lw..])?;
            let mut pairs: Vec<(Scalar, Scalar)> = Vec::new();
            let mut cs = Vec::new();
            if let Some(on) = &j.on {
                conjuncts(on.clone(), &mut cs);
            }
            for c in cs {
                if let Scalar::Bin(BinOp::Eq, a, b) = c {
                    let (ac, bc) = (a.columns(), b.columns());
                    let left = |v: &[usize]| !v.is_empty() && v.iter().all(|x| *x < lw);
                    let right = |v: &[usize]| !v.is_empty() && v.iter().all(|x| *x >= lw);
                    let (l, mut r) = if left(&ac) && right(&bc) {
                        (*a, *b)
                    } else if left(&bc) && right(&ac) {
                        (*b, *a)
                    } else {
                        continue;
                    };
                    r.map_cols(&|x| x - lw);
                    pairs.push((l, r));
                }
            }
            if pairs.is_empty() {
                j.method = Method::Nested;
                return Ok(());
            }
            if matches!(j.kind, JoinKind::Inner | JoinKind::Left)
                && let Rel::Scan(s) = &j.right
            {
                let ty_of = |e: &Scalar, base: &[Option<SqlType>]| match e {
                    Scalar::Col(i) => base.get(*i).copied().flatten(),
                    Scalar::Lit(d) => d.ty(),
                    _ => None,
                };
                let mut key = Vec::new();
                for &pk in &s.table.primary_key {
                    let want = s.table.columns.get(pk).map(|c| c.ty.base());
                    let found = pairs.iter().find(|(l, r)| *r == Scalar::Col(pk) && ty_of(l, types).map(SqlType::base) == want);
                    match found {
                        Some((l, _)) => key.push(l.clone()),
                        None => break,
                    }
                }
                if key.len() == s.table.primary_key.len() && !key.is_empty() {
                    j.method = Method::Lookup { key };
                    return Ok(());
                }
            }
            let (lkeys, rkeys) = pairs.into_iter().unzip();
            j.method = Method::Hash { lkeys, rkeys };
            Ok(())
        }
        _ => Ok(()),
    }
}

fn renamed(scope: Vec<ScopeCol>, alias: Option<&TableAlias>) -> Result<Vec<ScopeCol>, SqlError> {
    let Some(a) = alias else {
        return Ok(scope);
    };
    let t = ident_name(&a.name);
    if a.columns.len() > scope.len() {
        return Err(SqlError::user(
            codes::INVALID_TABLE_DEF,
            format!("table \"{t}\" has {} columns available but {} columns specified", scope.len(), a.columns.len()),
        ));
    }
    Ok(scope
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.table = Some(t.clone());
            if let Some(n) = a.columns.get(i) {
                c.name = ident_name(&n.name);
            }
            c
        })
        .collect())
}

fn single_ident(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [p] => p.as_ident().map(ident_name),
        _ => None,
    }
}

fn plan_factor<'a, T: TxnClient>(
    txn: &'a mut T,
    ctx: &'a Ctx<'a>,
    f: &'a TableFactor,
    ctes: &'a [Cte],
) -> BoxFut<'a, Result<(Rel, Vec<ScopeCol>), SqlError>> {
    Box::pin(async move {
        match f {
            TableFactor::Table { name, alias, args: None, .. } => {
                if let Some(n) = single_ident(name)
                    && let Some(pos) = ctes.iter().rposition(|c| c.name == n)
                {
                    let cte = &ctes[pos];
                    let (rel, mut scope) = plan_query(txn, ctx, &cte.query, &ctes[..pos]).await?;
                    for (i, c) in scope.iter_mut().enumerate() {
                        c.table = Some(n.clone());
                        if let Some(alias) = cte.columns.get(i) {
                            c.name = alias.clone();
                        }
                    }
                    return Ok((rel, renamed(scope, alias.as_ref())?));
                }
                let table = load_table(txn, ctx, name).await?;
                let a = alias.as_ref().map(|a| ident_name(&a.name)).unwrap_or_else(|| table.name.clone());
                let mut scope = table_scope(&table, Some(&a));
                if let Some(al) = alias {
                    for (i, n) in al.columns.iter().enumerate() {
                        if let Some(c) = scope.get_mut(i) {
                            c.name = ident_name(&n.name);
                        }
                    }
                }
                Ok((Rel::Scan(Box::new(ScanNode::new(table, a))), scope))
            }
            TableFactor::Table { name, alias, args: Some(args), .. } => {
                let fname = single_ident(name).unwrap_or_default();
                if fname != "generate_series" {
                    return Err(SqlError::user(codes::UNDEFINED_FUNCTION, format!("function {name} does not exist")));
                }
                let mut exprs = Vec::new();
                let mut c = Compiler::from_ctx(Vec::new(), ctx);
                for a in &args.args {
                    let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = a else {
                        return Err(unsupported(format!("argument {a}")));
                    };
                    let s = compile_full(txn, ctx, &mut c, e, ctes).await?;
                    if s.has_correlated() {
                        return Err(unsupported("correlated subquery as a generate_series argument"));
                    }
                    exprs.push(s);
                }
                if !(2..=3).contains(&exprs.len()) {
                    return Err(SqlError::user(codes::UNDEFINED_FUNCTION, "function generate_series() does not exist"));
                }
                // Arguments using a correlated subquery's outer values are bound per run.
                let rel = if exprs.iter().any(Scalar::has_outer) {
                    Rel::LazySeries { args: exprs }
                } else {
                    series(&exprs.iter().map(|s| crate::eval::eval(s, &[], &[])).collect::<Result<Vec<_>, _>>()?)?
                };
                // A bare alias names the column too, as in PostgreSQL.
                let col = alias
                    .as_ref()
                    .filter(|a| a.columns.is_empty())
                    .map(|a| ident_name(&a.name))
                    .unwrap_or_else(|| "generate_series".into());
                let scope = vec![ScopeCol::new(Some("generate_series"), &col, Some(SqlType::Int))];
                Ok((rel, renamed(scope, alias.as_ref())?))
            }
            TableFactor::Derived { lateral: false, subquery, alias, sample: None } => {
                let (rel, scope) = plan_query(txn, ctx, subquery, ctes).await?;
                Ok((rel, renamed(scope, alias.as_ref())?))
            }
            TableFactor::NestedJoin { table_with_joins, alias: None } => {
                plan_from(txn, ctx, std::slice::from_ref(&**table_with_joins), ctes).await
            }
            other => Err(unsupported(format!("FROM item {other}"))),
        }
    })
}

/// generate_series over evaluated arguments (start, stop[, step]).
pub(crate) fn series(vals: &[Datum]) -> Result<Rel, SqlError> {
    let int = |d: Option<&Datum>| match d {
        Some(Datum::Int(i)) => Ok(Some(*i)),
        Some(Datum::Null) => Ok(None),
        None => Ok(Some(1)),
        Some(other) => Err(unsupported(format!("generate_series over {}", other.type_name()))),
    };
    let (start, stop, step) = (int(vals.first())?, int(vals.get(1))?, int(vals.get(2))?);
    if step == Some(0) {
        return Err(SqlError::user(codes::INVALID_PARAM, "step size cannot equal zero"));
    }
    Ok(match (start, stop, step) {
        (Some(cur), Some(stop), Some(step)) => Rel::Series { cur, stop, step, done: false },
        _ => Rel::Rows { rows: Vec::new(), done: false },
    })
}

/// Plans a FROM list (comma-separated items are cross joins).
pub(crate) fn plan_from<'a, T: TxnClient>(
    txn: &'a mut T,
    ctx: &'a Ctx<'a>,
    from: &'a [TableWithJoins],
    ctes: &'a [Cte],
) -> BoxFut<'a, Result<(Rel, Vec<ScopeCol>), SqlError>> {
    Box::pin(async move {
        let mut acc: Option<(Rel, Vec<ScopeCol>)> = None;
        for twj in from {
            let mut cur = plan_factor(txn, ctx, &twj.relation, ctes).await?;
            for j in &twj.joins {
                let right = plan_factor(txn, ctx, &j.relation, ctes).await?;
                cur = join(txn, ctx, cur, right, &j.join_operator, ctes).await?;
            }
            acc = Some(match acc {
                None => cur,
                Some(prev) => join(txn, ctx, prev, cur, &JoinOperator::CrossJoin(JoinConstraint::None), ctes).await?,
            });
        }
        acc.ok_or_else(|| SqlError::user(codes::SYNTAX, "empty FROM"))
    })
}

async fn join<T: TxnClient>(
    txn: &mut T,
    ctx: &Ctx<'_>,
    (left, lscope): (Rel, Vec<ScopeCol>),
    (right, rscope): (Rel, Vec<ScopeCol>),
    op: &JoinOperator,
    ctes: &[Cte],
) -> Result<(Rel, Vec<ScopeCol>), SqlError> {
    let (kind, constraint) = match op {
        JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, c),
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, c),
        JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (JoinKind::Right, c),
        JoinOperator::FullOuter(c) => (JoinKind::Full, c),
        JoinOperator::CrossJoin(c) => (JoinKind::Cross, c),
        other => return Err(unsupported(format!("join {other:?}").chars().take(60).collect::<String>())),
    };
    for r in &rscope {
        if r.table.is_some() && lscope.iter().any(|l| l.table == r.table) {
            let t = r.table.clone().unwrap_or_default();
            return Err(SqlError::user(codes::DUPLICATE_ALIAS, format!("table name \"{t}\" specified more than once")));
        }
    }
    let (lw, rw) = (lscope.len(), rscope.len());
    let mut scope = lscope;
    scope.extend(rscope);
    let on = match constraint {
        JoinConstraint::On(e) => {
            let mut c = Compiler::from_ctx(scope.clone(), ctx);
            Some(compile_full(txn, ctx, &mut c, e, ctes).await?)
        }
        JoinConstraint::Using(cols) => {
            let mut cond = None;
            for name in cols {
                let n = single_ident(name).ok_or_else(|| unsupported(format!("USING {name}")))?;
                let find = |range: std::ops::Range<usize>| {
                    scope[range.clone()].iter().position(|c| c.name == n && !c.hidden).map(|p| p + range.start).ok_or_else(|| {
                        SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{n}\" specified in USING clause does not exist"))
                    })
                };
                let (l, r) = (find(0..lw)?, find(lw..lw + rw)?);
                cond = Some(and(cond, Scalar::Bin(BinOp::Eq, Box::new(Scalar::Col(l)), Box::new(Scalar::Col(r)))));
                if let Some(c) = scope.get_mut(if kind == JoinKind::Right { l } else { r }) {
                    c.hidden = true;
                }
            }
            cond
        }
        JoinConstraint::None => None,
        JoinConstraint::Natural => return Err(unsupported("NATURAL JOIN")),
    };
    if on.is_none() && !matches!(kind, JoinKind::Cross | JoinKind::Inner) {
        return Err(SqlError::user(codes::SYNTAX, "syntax error: join requires a condition"));
    }
    let mut node = JoinNode::new(kind, left, right, None, lw, rw);
    let mut rel_on = None;
    // Conjuncts with correlated subqueries filter an inner join's output (joins evaluate their
    // condition without running subqueries).
    let mut above = None;
    if let Some(on) = on {
        let mut cs = Vec::new();
        conjuncts(on, &mut cs);
        for c in cs {
            if c.has_correlated() {
                if !matches!(kind, JoinKind::Inner | JoinKind::Cross) {
                    return Err(unsupported("correlated subquery in the ON condition of an outer join"));
                }
                above = Some(and(above, c));
                continue;
            }
            let cols = c.columns();
            let right_only = !cols.is_empty() && cols.iter().all(|x| *x >= lw);
            let left_only = !cols.is_empty() && cols.iter().all(|x| *x < lw);
            let pushable = match kind {
                JoinKind::Inner | JoinKind::Cross => left_only || right_only,
                JoinKind::Left => right_only,
                JoinKind::Right => left_only,
                JoinKind::Full => false,
            };
            if pushable {
                let mut tmp = Rel::Join(Box::new(JoinNode::new(JoinKind::Inner, node.left, node.right, None, lw, rw)));
                let rest = push(&mut tmp, c);
                let t = match tmp {
                    Rel::Join(t) => t,
                    _ => return Err(SqlError::user("XX000", "internal error: join rewrite")),
                };
                node.left = t.left;
                node.right = t.right;
                if let Some(on) = t.on {
                    rel_on = Some(and(rel_on, on));
                }
                if let Some(r) = rest {
                    rel_on = Some(and(rel_on, r));
                }
            } else {
                rel_on = Some(and(rel_on, c));
            }
        }
    }
    node.on = rel_on;
    if node.kind == JoinKind::Cross && node.on.is_some() {
        node.kind = JoinKind::Inner;
    }
    let rel = Rel::Join(Box::new(node));
    Ok((
        match above {
            Some(pred) => Rel::Filter { input: Box::new(rel), pred },
            None => rel,
        },
        scope,
    ))
}

/// Whether an expression is a bare `DEFAULT` keyword.
pub(crate) fn is_default(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
}
