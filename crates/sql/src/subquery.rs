//! Subqueries in expressions: scalar `(SELECT ...)`, `[NOT] EXISTS`, `[NOT] IN`, and
//! `op ANY|SOME|ALL (SELECT ...)`, uncorrelated or correlated.
//!
//! Planning ([`resolve_subqueries`]): each subquery recorded by the expression compiler is
//! planned with an [`Env`] holding the enclosing query's scope. A name the subquery cannot
//! resolve in its own FROM scope is looked up outward (innermost level first, as PostgreSQL
//! does) and becomes a parameter of the subquery ([`Scalar::Outer`]); a reference two or more
//! levels out also becomes a parameter of every level in between. Then:
//! - without parameters (uncorrelated) the subquery runs once, right away, and its result
//!   replaces it as literals (so `k = (SELECT max(k) ...)` still plans a point get);
//! - with parameters it becomes a [`Scalar::Correlated`] node: the planned operator tree is kept
//!   as a template, and each time an operator evaluates the node for a row, the parameter values
//!   are computed from that row, looked up in the subquery's cache, and on a miss the template is
//!   cloned, its `Outer` references replaced by the values, its scans re-planned (so a
//!   correlation on the primary key is a point get) and run. Results are cached per distinct
//!   parameter values, so repeated values cost nothing.
//!
//! Evaluation stays synchronous ([`crate::eval::eval`]): a cache miss records the missing
//! parameters in the subquery ([`SubPlan`]) and fails the evaluation; [`eval_row`], used by every
//! operator that may hold a correlated subquery (filter, projection, sort, aggregation, VALUES,
//! UPDATE's SET), runs the subquery and evaluates again. So subqueries are only run when the
//! evaluation reaches them (`AND`, `OR`, `CASE` and `COALESCE` short-circuit as before), and
//! errors such as 21000 appear only for rows where PostgreSQL would raise them.
//!
//! Invariants: a correlated subquery is never pushed into a scan filter or a join condition
//! (those are evaluated without a transaction); each run's result is bounded by the statement's
//! [`Budget`] (54000), and a subquery's cache is emptied before it would exceed the budget.
//! Semantics follow PostgreSQL: a scalar subquery of zero rows is NULL and of more than one row
//! 21000; `x IN (empty)` is false and `x NOT IN (empty)` true even for NULL `x`; otherwise a NULL
//! `x` or a NULL among the values (without a match) makes IN/NOT IN NULL; ANY/ALL likewise.
//! Not handled: aggregates whose arguments only reference outer columns (they belong to the outer
//! query in PostgreSQL; 0A000 here), row-valued IN, decorrelation into joins.

use crate::catalog::SqlType;
use crate::datum::Datum;
use crate::error::{SqlError, codes};
use crate::eval::{any_all, eval};
use crate::exec::Ctx;
use crate::expr::{BinOp, Compiler, Scalar, ScopeCol, SubqKind, coerce_lit, find_in_scope};
use crate::query::{Cte, plan_query};
use crate::rel::{Budget, Meter, Rel};
use crate::txn::TxnClient;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One outer value a subquery uses: an expression over the enclosing query's row (a column, or
/// an outer value of the enclosing query itself) and its name for EXPLAIN.
#[derive(Debug)]
struct Param {
    expr: Scalar,
    name: String,
}

/// The enclosing query's scope while a subquery is planned, and the outer values the subquery
/// turned out to use.
#[derive(Debug)]
pub struct Env<'a> {
    scope: Vec<ScopeCol>,
    parent: Option<&'a Env<'a>>,
    params: Mutex<Vec<Param>>,
}

impl<'a> Env<'a> {
    pub fn new(scope: Vec<ScopeCol>, parent: Option<&'a Env<'a>>) -> Self {
        Env { scope, parent, params: Mutex::new(Vec::new()) }
    }

    /// Resolves a name the subquery did not find in its own scope: `Some((k, type))` when an
    /// enclosing level has it (registered as the subquery's k-th outer value), `None` when none
    /// does. Errors as [`find_in_scope`] (ambiguous; `t.c` with table `t` but no column `c`).
    pub fn resolve(&self, table: Option<&str>, name: &str) -> Result<Option<(usize, Option<SqlType>)>, SqlError> {
        let (expr, ty) = match find_in_scope(&self.scope, table, name)? {
            Some(i) => (Scalar::Col(i), self.scope.get(i).and_then(|c| c.ty)),
            None => match self.parent.map(|p| p.resolve(table, name)).transpose()?.flatten() {
                Some((k, ty)) => (Scalar::Outer(k, ty), ty),
                None => return Ok(None),
            },
        };
        let mut params = lock(&self.params);
        if let Some(k) = params.iter().position(|p| p.expr == expr) {
            return Ok(Some((k, ty)));
        }
        let name = match table {
            Some(t) => format!("{t}.{name}"),
            None => name.to_string(),
        };
        params.push(Param { expr, name });
        Ok(Some((params.len() - 1, ty)))
    }

    fn into_params(self) -> Vec<Param> {
        self.params.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How an expression uses a correlated subquery's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorrUse {
    Scalar,
    /// `EXISTS`, or `NOT EXISTS` when true.
    Exists(bool),
    /// `lhs IN`, or `NOT IN` when true.
    In(bool),
    /// `lhs op ANY` (false) or `lhs op ALL` (true).
    Quantified(BinOp, bool),
}

/// A correlated subquery inside an expression ([`Scalar::Correlated`]).
#[derive(Clone, Debug)]
pub struct Corr {
    pub usage: CorrUse,
    /// IN/ANY/ALL's left operand.
    pub lhs: Option<Box<Scalar>>,
    /// The outer values, as expressions over the row the node is evaluated on.
    pub params: Vec<Scalar>,
    pub plan: Arc<SubPlan>,
}

/// Two uses of the same subquery text with the same outer values are equal (so `GROUP BY
/// (SELECT ...)` matches the same subquery in the select list).
impl PartialEq for Corr {
    fn eq(&self, other: &Corr) -> bool {
        self.usage == other.usage
            && self.lhs == other.lhs
            && self.params == other.params
            && (Arc::ptr_eq(&self.plan, &other.plan) || self.plan.sql == other.plan.sql)
    }
}

impl Corr {
    /// The static type of the node's value.
    pub fn ty(&self) -> Option<SqlType> {
        match self.usage {
            CorrUse::Scalar => self.plan.ty,
            _ => Some(SqlType::Bool),
        }
    }
}

/// Results per distinct parameter values (keyed by their exact debug rendering, so `1` and
/// `1.0` are different keys), with their total size.
#[derive(Debug, Default)]
struct Cache {
    map: HashMap<String, Arc<Vec<Datum>>>,
    rows: usize,
    bytes: usize,
}

/// A correlated subquery's plan (with [`Scalar::Outer`] references), shared by every copy of
/// its expression, with its result cache.
pub struct SubPlan {
    /// The subquery's text.
    sql: String,
    template: Rel,
    kind: SubqKind,
    ty: Option<SqlType>,
    param_names: Vec<String>,
    cache: Mutex<Cache>,
    /// The parameters of the last cache miss, for [`eval_row`] to run.
    pending: Mutex<Option<Vec<Datum>>>,
}

impl std::fmt::Debug for SubPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubPlan").field("kind", &self.kind).field("params", &self.param_names).finish_non_exhaustive()
    }
}

fn cache_key(params: &[Datum]) -> String {
    format!("{params:?}")
}

impl SubPlan {
    fn store(&self, params: &[Datum], vals: Vec<Datum>, b: &Budget) {
        let key = cache_key(params);
        let bytes = key.len() + vals.iter().map(Datum::size).sum::<usize>() + 64;
        let mut cache = lock(&self.cache);
        if cache.rows + vals.len() + 1 > b.max_rows || cache.bytes + bytes > b.max_bytes {
            *cache = Cache::default();
        }
        cache.rows += vals.len() + 1;
        cache.bytes += bytes;
        cache.map.insert(key, Arc::new(vals));
    }

    /// Runs the subquery for one set of outer values and caches its rows (first column only;
    /// EXISTS stops at one row, a scalar subquery at two).
    async fn fill<T: TxnClient>(&self, txn: &mut T, b: &Budget, params: Vec<Datum>) -> Result<(), SqlError> {
        let mut rel = self.template.clone();
        rel.walk_scalars_mut(&mut |s| {
            s.walk_mut(&mut |n| {
                if let Scalar::Outer(k, _) = n {
                    *n = Scalar::Lit(params.get(*k).cloned().unwrap_or(Datum::Null));
                }
            })
        });
        rel.replan()?;
        let vals = collect(&mut rel, txn, b, self.kind).await?;
        self.store(&params, vals, b);
        Ok(())
    }
}

/// Runs a subquery plan, returning its first column (bounded by the budget).
async fn collect<T: TxnClient>(rel: &mut Rel, txn: &mut T, b: &Budget, kind: SubqKind) -> Result<Vec<Datum>, SqlError> {
    let enough = match kind {
        SubqKind::Exists => 1,
        SubqKind::Scalar => 2,
        SubqKind::In => usize::MAX,
    };
    let mut vals = Vec::new();
    let mut meter = Meter::default();
    while let Some(rows) = rel.next(txn, b).await? {
        for r in rows {
            let v = r.into_iter().next().unwrap_or(Datum::Null);
            meter.add(std::slice::from_ref(&v), b, "subquery result")?;
            vals.push(v);
            if vals.len() >= enough {
                return Ok(vals);
            }
        }
    }
    Ok(vals)
}

/// A planned subquery: its rows (uncorrelated, already run) or its correlated plan.
enum Resolved {
    Rows(Vec<Datum>, Option<SqlType>),
    Corr(Arc<SubPlan>, Vec<Scalar>),
}

/// Plans the compiler's pending subqueries (running the uncorrelated ones) and substitutes them
/// into `targets`.
pub(crate) async fn resolve_subqueries<T: TxnClient>(
    txn: &mut T,
    ctx: &Ctx<'_>,
    c: &mut Compiler<'_>,
    targets: &mut [&mut Scalar],
    ctes: &[Cte],
) -> Result<(), SqlError> {
    if c.subqueries.is_empty() {
        return Ok(());
    }
    let mut resolved = Vec::new();
    for (q, kind) in std::mem::take(&mut c.subqueries) {
        let env = Env::new(c.scope.clone(), c.env);
        let sub = Ctx { db: ctx.db, args: ctx.args, now: ctx.now, budget: ctx.budget.clone(), outer: Some(&env) };
        let (mut rel, scope) = plan_query(txn, &sub, &q, ctes).await?;
        if kind != SubqKind::Exists && scope.len() != 1 {
            return Err(SqlError::user(codes::SYNTAX, "subquery has too many columns"));
        }
        let ty = scope.first().and_then(|s| s.ty);
        let params = env.into_params();
        resolved.push(if params.is_empty() {
            Resolved::Rows(collect(&mut rel, txn, &ctx.budget, kind).await?, ty)
        } else {
            let plan = SubPlan {
                sql: q.to_string(),
                template: rel,
                kind,
                ty,
                param_names: params.iter().map(|p| p.name.clone()).collect(),
                cache: Mutex::default(),
                pending: Mutex::default(),
            };
            Resolved::Corr(Arc::new(plan), params.into_iter().map(|p| p.expr).collect())
        });
    }
    for t in targets.iter_mut() {
        subst(t, &resolved)?;
    }
    Ok(())
}

/// Replaces pending subquery placeholders by their results or correlated nodes.
fn subst(s: &mut Scalar, resolved: &[Resolved]) -> Result<(), SqlError> {
    let mut err = None;
    s.walk_mut(&mut |n| {
        let (i, usage, lhs) = match n {
            Scalar::Subquery(i) => (*i, CorrUse::Scalar, None),
            Scalar::Exists(i, negated) => (*i, CorrUse::Exists(*negated), None),
            Scalar::InSubquery(x, i, negated) => (*i, CorrUse::In(*negated), Some(x.clone())),
            Scalar::AnySubquery(x, op, all, i) => (*i, CorrUse::Quantified(*op, *all), Some(x.clone())),
            _ => return,
        };
        let Some(r) = resolved.get(i) else { return };
        let ty = match r {
            Resolved::Rows(_, ty) => *ty,
            Resolved::Corr(plan, _) => plan.ty,
        };
        // A string literal compared with the subquery's values is read as their type.
        let lhs = lhs.map(|mut x| match coerce_lit(&mut x, ty) {
            Ok(()) => x,
            Err(e) => {
                err = Some(e);
                x
            }
        });
        *n = match (r, usage, lhs) {
            (Resolved::Corr(plan, params), usage, lhs) => {
                Scalar::Correlated(Box::new(Corr { usage, lhs, params: params.clone(), plan: plan.clone() }))
            }
            (Resolved::Rows(rows, _), CorrUse::Scalar, _) => {
                if rows.len() > 1 {
                    err = Some(SqlError::user(codes::CARDINALITY, "more than one row returned by a subquery used as an expression"));
                }
                Scalar::Lit(rows.first().cloned().unwrap_or(Datum::Null))
            }
            (Resolved::Rows(rows, _), CorrUse::Exists(negated), _) => Scalar::Lit(Datum::Bool(rows.is_empty() == negated)),
            (Resolved::Rows(rows, _), CorrUse::In(negated), Some(x)) => {
                Scalar::InList(x, rows.iter().cloned().map(Scalar::Lit).collect(), negated)
            }
            (Resolved::Rows(rows, _), CorrUse::Quantified(op, all), Some(x)) => Scalar::AnyList(x, op, all, rows.clone()),
            (Resolved::Rows(..), _, None) => return,
        };
    });
    err.map_or(Ok(()), Err)
}

/// Evaluates a correlated subquery node for one row from its cache; on a miss, records the
/// parameters (for [`eval_row`]) and fails.
pub(crate) fn eval_corr(c: &Corr, row: &[Datum], aggs: &[Datum]) -> Result<Datum, SqlError> {
    let params = c.params.iter().map(|p| eval(p, row, aggs)).collect::<Result<Vec<_>, _>>()?;
    let hit = lock(&c.plan.cache).map.get(&cache_key(&params)).cloned();
    let Some(vals) = hit else {
        *lock(&c.plan.pending) = Some(params);
        return Err(SqlError::user("XX000", "internal error: correlated subquery evaluated where it cannot run"));
    };
    let lhs = |vals: &[Datum]| -> Result<Datum, SqlError> {
        // With no rows the left operand is never evaluated (as in PostgreSQL).
        if vals.is_empty() { Ok(Datum::Null) } else { c.lhs.as_deref().map(|x| eval(x, row, aggs)).unwrap_or(Ok(Datum::Null)) }
    };
    Ok(match c.usage {
        CorrUse::Scalar => {
            if vals.len() > 1 {
                return Err(SqlError::user(codes::CARDINALITY, "more than one row returned by a subquery used as an expression"));
            }
            vals.first().cloned().unwrap_or(Datum::Null)
        }
        CorrUse::Exists(negated) => Datum::Bool(vals.is_empty() == negated),
        CorrUse::In(negated) => match any_all(BinOp::Eq, false, &lhs(&vals)?, &vals)? {
            Datum::Bool(b) => Datum::Bool(b != negated),
            other => other,
        },
        CorrUse::Quantified(op, all) => any_all(op, all, &lhs(&vals)?, &vals)?,
    })
}

/// The first correlated subquery in `e` with a recorded cache miss.
fn take_pending(e: &Scalar) -> Option<(Arc<SubPlan>, Vec<Datum>)> {
    if let Scalar::Correlated(c) = e
        && let Some(p) = lock(&c.plan.pending).take()
    {
        return Some((c.plan.clone(), p));
    }
    e.children().into_iter().find_map(take_pending)
}

/// Evaluates `e` over `row`, running the correlated subqueries the evaluation reaches.
pub(crate) async fn eval_row<T: TxnClient>(txn: &mut T, b: &Budget, e: &Scalar, row: &[Datum]) -> Result<Datum, SqlError> {
    loop {
        match eval(e, row, &[]) {
            Ok(d) => return Ok(d),
            Err(err) => match take_pending(e) {
                Some((plan, params)) => plan.fill(txn, b, params).await?,
                None => return Err(err),
            },
        }
    }
}

/// Whether `row` passes the predicate (as a WHERE clause), running correlated subqueries.
pub(crate) async fn passes_row<T: TxnClient>(txn: &mut T, b: &Budget, pred: &Scalar, row: &[Datum]) -> Result<bool, SqlError> {
    Ok(crate::eval::truth(&eval_row(txn, b, pred, row).await?, "WHERE")? == Some(true))
}

/// Whether a correlated subquery held by an operator of `rel`, or by `exprs`, reads table `id`
/// (uncorrelated ones ran while planning).
pub(crate) fn subqueries_read(rel: &Rel, exprs: &[&Scalar], id: u64) -> bool {
    exprs.iter().chain(&rel.node_scalars()).any(|e| reads_table(e, id)) || rel.children().into_iter().any(|c| subqueries_read(c, &[], id))
}

/// Whether a correlated subquery in `e` (at any depth) reads table `id`.
pub(crate) fn reads_table(e: &Scalar, id: u64) -> bool {
    e.any(&|n| matches!(n, Scalar::Correlated(c) if rel_reads_table(&c.plan.template, id)))
}

fn rel_reads_table(rel: &Rel, id: u64) -> bool {
    matches!(rel, Rel::Scan(s) if s.table.id == id)
        || rel.node_scalars().into_iter().any(|s| reads_table(s, id))
        || rel.children().into_iter().any(|c| rel_reads_table(c, id))
}

/// EXPLAIN lines for the correlated subqueries held by one operator's expressions.
pub(crate) fn describe_subplans(rel: &Rel, depth: usize, out: &mut Vec<String>) {
    let mut found: Vec<Corr> = Vec::new();
    for s in rel.node_scalars() {
        let mut copy = s.clone();
        copy.walk_mut(&mut |n| {
            if let Scalar::Correlated(c) = n {
                found.push((**c).clone());
            }
        });
    }
    for c in found {
        let what = match c.usage {
            CorrUse::Scalar => "scalar".to_string(),
            CorrUse::Exists(false) => "exists".into(),
            CorrUse::Exists(true) => "not exists".into(),
            CorrUse::In(false) => "in".into(),
            CorrUse::In(true) => "not in".into(),
            CorrUse::Quantified(op, all) => format!("{} {}", op_text(op), if all { "all" } else { "any" }),
        };
        out.push(format!(
            "{}correlated subquery ({what}): run per distinct ({}), cached",
            "  ".repeat(depth),
            c.plan.param_names.join(", ")
        ));
        crate::explain::describe(&c.plan.template, depth + 1, out);
    }
}

fn op_text(op: BinOp) -> &'static str {
    match op {
        BinOp::Eq => "=",
        BinOp::NotEq => "<>",
        BinOp::Lt => "<",
        BinOp::LtEq => "<=",
        BinOp::Gt => ">",
        _ => ">=",
    }
}

/// How a scan inside a correlated subquery reads once its outer values are known: its filter is
/// planned with a sample value of each outer value's type.
pub(crate) fn per_row_access(s: &crate::rel::ScanNode) -> String {
    let mut f = s.filter.clone();
    let mut typed = true;
    if let Some(f) = f.as_mut() {
        f.walk_mut(&mut |n| {
            if let Scalar::Outer(_, ty) = n {
                let sample = ty.map(sample).unwrap_or(Datum::Null);
                typed &= !sample.is_null();
                *n = Scalar::Lit(sample);
            }
        });
    }
    match crate::plan::plan_scan(&s.table, f.as_ref()) {
        Ok(crate::plan::ScanPlan::Point(_)) if typed => "point get per outer row".into(),
        Ok(crate::plan::ScanPlan::Points(_)) if typed => "point gets per outer row".into(),
        Ok(crate::plan::ScanPlan::Span { .. }) if typed => "span scan per outer row".into(),
        Ok(crate::plan::ScanPlan::Full { .. }) => format!("full scan /Table/{} per outer row", s.table.id),
        _ => "scan planned per outer row".into(),
    }
}

/// Some value of a type (only its type matters).
fn sample(ty: SqlType) -> Datum {
    match ty.base() {
        SqlType::Int => Datum::Int(0),
        SqlType::Float => Datum::Float(0.0),
        SqlType::Decimal => Datum::Decimal(Default::default()),
        SqlType::String => Datum::String(String::new()),
        SqlType::Bool => Datum::Bool(false),
        SqlType::Bytes => Datum::Bytes(Vec::new()),
        SqlType::Date => Datum::Date(0),
        SqlType::Timestamp => Datum::Timestamp(0),
        SqlType::TimestampTz => Datum::TimestampTz(0),
        SqlType::Interval => Datum::Interval(Default::default()),
        SqlType::Uuid => Datum::Uuid([0; 16]),
        _ => Datum::Null,
    }
}
