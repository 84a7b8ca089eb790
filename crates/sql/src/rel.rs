//! The relational operator tree ([`Rel`]) and its streaming, pull-based execution.
//!
//! Every operator produces rows in batches through [`Rel::next`] (`None` = exhausted). Table
//! reads go through a paged cursor ([`PAGE`] rows per `txn.scan`, resuming after the last key),
//! so filters, projections, LIMIT (which stops pulling once satisfied) and aggregation consume
//! rows as they arrive. Only Sort, Distinct, set operations, aggregation groups and join build
//! sides hold state, and each counts its rows and bytes against [`Budget`] (54000 when over).
//!
//! Invariants: a `Rel` is planned once and executed once (its runtime state lives in it; the
//! template of a correlated subquery is cloned for each run); row widths are fixed per operator;
//! expressions have had their subqueries substituted, and operators that may hold correlated
//! subqueries (Values, Filter, Project, Sort, aggregation) evaluate through
//! `subquery::eval_row`.
//! Not handled: spilling to disk, parallel execution.

use crate::aggregate::AggNode;
use crate::catalog::TableDesc;
use crate::datum::Datum;
use crate::encoding::{decode_row, group_key};
use crate::error::{SqlError, codes};
use crate::eval::{eval, truth};
use crate::expr::Scalar;
use crate::func::Func;
use crate::join::JoinNode;
use crate::plan::ScanPlan;
use crate::subquery::{eval_row, passes_row};
use crate::txn::TxnClient;
use meridian_types::keys;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

pub type Row = Vec<Datum>;
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Rows per `txn.scan` call.
pub const PAGE: usize = 1000;

/// Memory limits for results and buffered operator state.
#[derive(Clone, Debug)]
pub struct Budget {
    pub max_rows: usize,
    pub max_bytes: usize,
}

/// Counts rows/bytes buffered by one operator.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    rows: usize,
    bytes: usize,
}

impl Meter {
    pub fn add(&mut self, row: &[Datum], b: &Budget, what: &str) -> Result<(), SqlError> {
        self.rows += 1;
        self.bytes += row.iter().map(Datum::size).sum::<usize>() + 24;
        if self.rows > b.max_rows {
            return Err(SqlError::user(codes::LIMIT, format!("{what} exceeds max_result_rows ({})", b.max_rows)));
        }
        if self.bytes > b.max_bytes {
            return Err(SqlError::user(codes::LIMIT, format!("{what} exceeds max_result_bytes ({})", b.max_bytes)));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct SortKey {
    pub expr: Scalar,
    pub desc: bool,
    pub nulls_first: bool,
}

/// Orders two rows' evaluated sort keys.
pub fn cmp_keys(keys: &[SortKey], a: &[Datum], b: &[Datum]) -> Ordering {
    for (k, (x, y)) in keys.iter().zip(a.iter().zip(b)) {
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
}

/// A read of one table through its primary index or a secondary index.
#[derive(Clone, Debug)]
pub struct ScanNode {
    pub table: TableDesc,
    pub alias: String,
    /// Conjuncts over this table's columns; planned into `plan` and applied to every row.
    pub filter: Option<Scalar>,
    pub plan: ScanPlan,
    pub resume: Option<Vec<u8>>,
    pub done: bool,
}

impl ScanNode {
    pub fn new(table: TableDesc, alias: String) -> ScanNode {
        ScanNode { table, alias, filter: None, plan: ScanPlan::Empty, resume: None, done: false }
    }

    /// Plans the span from the filter (call once the filter is final).
    pub fn finalize(&mut self) -> Result<(), SqlError> {
        self.plan = crate::index_plan::plan_table_scan(&self.table, self.filter.as_ref())?;
        Ok(())
    }

    /// The next page of (key, row) pairs, unfiltered; None when exhausted.
    pub async fn next_page<T: TxnClient>(&mut self, txn: &mut T) -> Result<Option<Vec<(Vec<u8>, Row)>>, SqlError> {
        if self.done {
            return Ok(None);
        }
        let kvs = match &self.plan {
            ScanPlan::Index(p) => return crate::index_scan::next_page(txn, &self.table, p, &mut self.resume, &mut self.done).await,
            ScanPlan::Empty => Vec::new(),
            ScanPlan::Point(k) => match txn.get(k).await? {
                Some(v) => vec![(k.clone(), v)],
                None => Vec::new(),
            },
            ScanPlan::Points(keys) => {
                let vals = txn.get_many(keys).await?;
                keys.iter().zip(vals).filter_map(|(k, v)| v.map(|v| (k.clone(), v))).collect()
            }
            ScanPlan::Span { start, end } | ScanPlan::Full { start, end } => {
                let from = self.resume.clone().unwrap_or_else(|| start.clone());
                let page = txn.scan(&from, end, PAGE).await?;
                if page.len() == PAGE
                    && let Some((k, _)) = page.last()
                {
                    self.resume = Some(keys::key_next(k));
                    let out = page.into_iter().map(|(k, v)| Ok((k, decode_row(&self.table, &v)?))).collect::<Result<Vec<_>, SqlError>>()?;
                    return Ok(Some(out));
                }
                page
            }
        };
        self.done = true;
        Ok(Some(kvs.into_iter().map(|(k, v)| Ok((k, decode_row(&self.table, &v)?))).collect::<Result<Vec<_>, SqlError>>()?))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetKind {
    Union,
    Intersect,
    Except,
}

#[derive(Clone, Debug)]
pub struct SetNode {
    pub kind: SetKind,
    pub all: bool,
    pub left: Rel,
    pub right: Rel,
    pub right_done: bool,
    /// Right side's rows by key with their multiplicity (INTERSECT/EXCEPT).
    pub counts: Option<HashMap<Vec<u8>, usize>>,
    pub seen: HashSet<Vec<u8>>,
    pub meter: Meter,
    pub left_done: bool,
}

/// Clone is for correlated subqueries: their plan is a template copied for each run.
#[derive(Clone, Debug)]
pub enum Rel {
    /// One empty row (SELECT without FROM).
    Unit {
        done: bool,
    },
    /// Rows of expressions (VALUES).
    Values {
        rows: Vec<Vec<Scalar>>,
        done: bool,
    },
    /// generate_series whose arguments use outer values of a correlated subquery: becomes a
    /// `Series` when the values are bound ([`Rel::replan`]).
    LazySeries {
        args: Vec<Scalar>,
    },
    /// generate_series(start, stop, step) over integers.
    Series {
        cur: i64,
        stop: i64,
        step: i64,
        done: bool,
    },
    /// Rows computed up front.
    Rows {
        rows: Vec<Row>,
        done: bool,
    },
    Scan(Box<ScanNode>),
    Filter {
        input: Box<Rel>,
        pred: Scalar,
    },
    Project {
        input: Box<Rel>,
        exprs: Vec<Scalar>,
    },
    Join(Box<JoinNode>),
    Agg(Box<AggNode>),
    Sort {
        input: Box<Rel>,
        keys: Vec<SortKey>,
        out: Option<std::vec::IntoIter<Row>>,
    },
    /// Drops rows whose first `width` columns repeat.
    Distinct {
        input: Box<Rel>,
        width: usize,
        seen: HashSet<Vec<u8>>,
        meter: Meter,
    },
    Limit {
        input: Box<Rel>,
        limit: Option<usize>,
        offset: usize,
        seen: usize,
    },
    SetOp(Box<SetNode>),
}

pub fn passes(pred: &Scalar, row: &[Datum]) -> Result<bool, SqlError> {
    Ok(truth(&eval(pred, row, &[])?, "WHERE")? == Some(true))
}

/// A copy of `s` with every `unique_rowid()` replaced by a fresh id.
pub fn bind_rowids<T: TxnClient>(s: &Scalar, txn: &mut T) -> Scalar {
    let mut c = s.clone();
    c.walk_mut(&mut |n| {
        if matches!(n, Scalar::Func(Func::UniqueRowid, _)) {
            *n = Scalar::Lit(Datum::Int(txn.unique_rowid()));
        }
    });
    c
}

pub fn has_rowid(s: &Scalar) -> bool {
    s.any(&|n| matches!(n, Scalar::Func(Func::UniqueRowid, _)))
}

impl Rel {
    /// The next batch of rows, or None when exhausted. Batches may be empty.
    pub fn next<'a, T: TxnClient>(&'a mut self, txn: &'a mut T, b: &'a Budget) -> BoxFut<'a, Result<Option<Vec<Row>>, SqlError>> {
        Box::pin(async move {
            match self {
                Rel::Unit { done } => Ok(if std::mem::replace(done, true) { None } else { Some(vec![Vec::new()]) }),
                Rel::Values { rows, done } => {
                    if std::mem::replace(done, true) {
                        return Ok(None);
                    }
                    let mut out = Vec::with_capacity(rows.len());
                    for r in rows.iter() {
                        let mut vals = Vec::with_capacity(r.len());
                        for e in r {
                            let e = bind_rowids(e, txn);
                            vals.push(eval_row(txn, b, &e, &[]).await?);
                        }
                        out.push(vals);
                    }
                    Ok(Some(out))
                }
                Rel::Series { cur, stop, step, done } => {
                    if *done {
                        return Ok(None);
                    }
                    let mut out = Vec::new();
                    while out.len() < PAGE {
                        if (*step > 0 && *cur > *stop) || (*step < 0 && *cur < *stop) {
                            *done = true;
                            break;
                        }
                        out.push(vec![Datum::Int(*cur)]);
                        match cur.checked_add(*step) {
                            Some(n) => *cur = n,
                            None => {
                                *done = true;
                                break;
                            }
                        }
                    }
                    Ok(Some(out))
                }
                Rel::LazySeries { .. } => Err(SqlError::user("XX000", "internal error: generate_series with unbound outer values")),
                Rel::Rows { rows, done } => Ok(if std::mem::replace(done, true) { None } else { Some(std::mem::take(rows)) }),
                Rel::Scan(s) => match s.next_page(txn).await? {
                    None => Ok(None),
                    Some(page) => {
                        let mut out = Vec::with_capacity(page.len());
                        for (_, row) in page {
                            if s.filter.as_ref().map(|f| passes(f, &row)).transpose()?.unwrap_or(true) {
                                out.push(row);
                            }
                        }
                        Ok(Some(out))
                    }
                },
                Rel::Filter { input, pred } => match input.next(txn, b).await? {
                    None => Ok(None),
                    Some(rows) => {
                        let mut out = Vec::with_capacity(rows.len());
                        for r in rows {
                            if passes_row(txn, b, pred, &r).await? {
                                out.push(r);
                            }
                        }
                        Ok(Some(out))
                    }
                },
                Rel::Project { input, exprs } => match input.next(txn, b).await? {
                    None => Ok(None),
                    Some(rows) => {
                        let volatile = exprs.iter().any(has_rowid);
                        let mut out = Vec::with_capacity(rows.len());
                        for r in rows {
                            let mut vals = Vec::with_capacity(exprs.len());
                            for e in exprs.iter() {
                                vals.push(if volatile {
                                    let e = bind_rowids(e, txn);
                                    eval_row(txn, b, &e, &r).await?
                                } else {
                                    eval_row(txn, b, e, &r).await?
                                });
                            }
                            out.push(vals);
                        }
                        Ok(Some(out))
                    }
                },
                Rel::Join(j) => j.next(txn, b).await,
                Rel::Agg(a) => a.next(txn, b).await,
                Rel::Sort { input, keys, out } => {
                    if out.is_none() {
                        let mut meter = Meter::default();
                        let mut buf: Vec<(Row, Row)> = Vec::new();
                        while let Some(rows) = input.next(txn, b).await? {
                            for r in rows {
                                meter.add(&r, b, "sort buffer")?;
                                let mut k = Vec::with_capacity(keys.len());
                                for key in keys.iter() {
                                    k.push(eval_row(txn, b, &key.expr, &r).await?);
                                }
                                buf.push((k, r));
                            }
                        }
                        buf.sort_by(|(x, _), (y, _)| cmp_keys(keys, x, y));
                        *out = Some(buf.into_iter().map(|(_, r)| r).collect::<Vec<_>>().into_iter());
                    }
                    let it = out.as_mut().map(|it| it.by_ref().take(PAGE).collect::<Vec<_>>()).unwrap_or_default();
                    Ok(if it.is_empty() { None } else { Some(it) })
                }
                Rel::Distinct { input, width, seen, meter } => match input.next(txn, b).await? {
                    None => Ok(None),
                    Some(rows) => {
                        let mut out = Vec::new();
                        for r in rows {
                            let k = group_key(&r[..(*width).min(r.len())]);
                            if !seen.contains(&k) {
                                meter.add(&r, b, "DISTINCT state")?;
                                seen.insert(k);
                                out.push(r);
                            }
                        }
                        Ok(Some(out))
                    }
                },
                Rel::Limit { input, limit, offset, seen } => {
                    if limit.is_some_and(|l| *seen >= l.saturating_add(*offset)) {
                        return Ok(None);
                    }
                    let Some(rows) = input.next(txn, b).await? else {
                        return Ok(None);
                    };
                    let mut out = Vec::new();
                    for r in rows {
                        let i = *seen;
                        *seen += 1;
                        if i < *offset {
                            continue;
                        }
                        if limit.is_some_and(|l| i >= l.saturating_add(*offset)) {
                            break;
                        }
                        out.push(r);
                    }
                    Ok(Some(out))
                }
                Rel::SetOp(s) => s.next(txn, b).await,
            }
        })
    }

    /// The operator's own expressions (not its inputs').
    pub fn node_scalars(&self) -> Vec<&Scalar> {
        match self {
            Rel::Unit { .. } | Rel::Series { .. } | Rel::Rows { .. } | Rel::Distinct { .. } | Rel::Limit { .. } | Rel::SetOp(_) => {
                Vec::new()
            }
            Rel::LazySeries { args } => args.iter().collect(),
            Rel::Values { rows, .. } => rows.iter().flatten().collect(),
            Rel::Scan(s) => s.filter.iter().collect(),
            Rel::Filter { pred, .. } => vec![pred],
            Rel::Project { exprs, .. } => exprs.iter().collect(),
            Rel::Join(j) => {
                let mut v: Vec<&Scalar> = j.on.iter().collect();
                match &j.method {
                    crate::join::Method::Hash { lkeys, rkeys } => v.extend(lkeys.iter().chain(rkeys)),
                    crate::join::Method::Lookup { key } => v.extend(key),
                    crate::join::Method::Nested => {}
                }
                v
            }
            Rel::Agg(a) => a.group.iter().chain(a.aggs.iter().flat_map(|s| s.arg.iter().chain(s.sep.iter()))).collect(),
            Rel::Sort { keys, .. } => keys.iter().map(|k| &k.expr).collect(),
        }
    }

    /// Calls `f` on each of the operator's own expressions (not its inputs').
    fn node_scalars_mut(&mut self, f: &mut dyn FnMut(&mut Scalar)) {
        match self {
            Rel::Unit { .. } | Rel::Series { .. } | Rel::Rows { .. } | Rel::Distinct { .. } | Rel::Limit { .. } | Rel::SetOp(_) => {}
            Rel::LazySeries { args } => args.iter_mut().for_each(f),
            Rel::Values { rows, .. } => rows.iter_mut().flatten().for_each(f),
            Rel::Scan(s) => s.filter.iter_mut().for_each(f),
            Rel::Filter { pred, .. } => f(pred),
            Rel::Project { exprs, .. } => exprs.iter_mut().for_each(f),
            Rel::Join(j) => {
                j.on.iter_mut().for_each(&mut *f);
                match &mut j.method {
                    crate::join::Method::Hash { lkeys, rkeys } => lkeys.iter_mut().chain(rkeys).for_each(f),
                    crate::join::Method::Lookup { key } => key.iter_mut().for_each(f),
                    crate::join::Method::Nested => {}
                }
            }
            Rel::Agg(a) => {
                a.group.iter_mut().for_each(&mut *f);
                a.aggs.iter_mut().flat_map(|s| s.arg.iter_mut().chain(s.sep.iter_mut())).for_each(f);
            }
            Rel::Sort { keys, .. } => keys.iter_mut().for_each(|k| f(&mut k.expr)),
        }
    }

    /// The operator's inputs.
    pub fn children(&self) -> Vec<&Rel> {
        match self {
            Rel::Filter { input, .. }
            | Rel::Project { input, .. }
            | Rel::Sort { input, .. }
            | Rel::Distinct { input, .. }
            | Rel::Limit { input, .. } => vec![input],
            Rel::Join(j) => vec![&j.left, &j.right],
            Rel::Agg(a) => vec![&a.input],
            Rel::SetOp(s) => vec![&s.left, &s.right],
            _ => Vec::new(),
        }
    }

    fn children_mut(&mut self) -> Vec<&mut Rel> {
        match self {
            Rel::Filter { input, .. }
            | Rel::Project { input, .. }
            | Rel::Sort { input, .. }
            | Rel::Distinct { input, .. }
            | Rel::Limit { input, .. } => vec![input],
            Rel::Join(j) => vec![&mut j.left, &mut j.right],
            Rel::Agg(a) => vec![&mut a.input],
            Rel::SetOp(s) => vec![&mut s.left, &mut s.right],
            _ => Vec::new(),
        }
    }

    /// Calls `f` on every expression of the tree (each operator's own, then its inputs').
    pub fn walk_scalars_mut(&mut self, f: &mut dyn FnMut(&mut Scalar)) {
        self.node_scalars_mut(f);
        for c in self.children_mut() {
            c.walk_scalars_mut(f);
        }
    }

    /// Re-plans every scan from its (now bound) filter and builds series whose arguments were
    /// outer values: run on a correlated subquery's copy once its outer values are literals.
    pub fn replan(&mut self) -> Result<(), SqlError> {
        match self {
            Rel::Scan(s) => s.finalize()?,
            Rel::LazySeries { args } => {
                let vals = args.iter().map(|a| eval(a, &[], &[])).collect::<Result<Vec<_>, _>>()?;
                *self = crate::from::series(&vals)?;
            }
            _ => {}
        }
        self.children_mut().into_iter().try_for_each(Rel::replan)
    }

    /// Runs to completion, collecting every row (bounded by the budget).
    pub async fn collect<T: TxnClient>(&mut self, txn: &mut T, b: &Budget, what: &str) -> Result<Vec<Row>, SqlError> {
        let mut meter = Meter::default();
        let mut out = Vec::new();
        while let Some(rows) = self.next(txn, b).await? {
            for r in rows {
                meter.add(&r, b, what)?;
                out.push(r);
            }
        }
        Ok(out)
    }
}

impl SetNode {
    async fn next<T: TxnClient>(&mut self, txn: &mut T, b: &Budget) -> Result<Option<Vec<Row>>, SqlError> {
        if self.kind != SetKind::Union && self.counts.is_none() {
            let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
            while let Some(rows) = self.right.next(txn, b).await? {
                for r in rows {
                    self.meter.add(&r, b, "set operation state")?;
                    *counts.entry(group_key(&r)).or_default() += 1;
                }
            }
            self.counts = Some(counts);
        }
        let batch = if !self.left_done {
            match self.left.next(txn, b).await? {
                Some(rows) => rows,
                None => {
                    self.left_done = true;
                    Vec::new()
                }
            }
        } else if self.kind == SetKind::Union && !self.right_done {
            match self.right.next(txn, b).await? {
                Some(rows) => rows,
                None => {
                    self.right_done = true;
                    return Ok(None);
                }
            }
        } else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for r in batch {
            let k = group_key(&r);
            let keep = match self.kind {
                SetKind::Union => self.all || self.seen.insert(k.clone()),
                SetKind::Intersect | SetKind::Except => {
                    let counts = self.counts.get_or_insert_with(HashMap::new);
                    let in_right = counts.get(&k).copied().unwrap_or(0);
                    let first = self.all || !self.seen.contains(&k);
                    let keep = match self.kind {
                        SetKind::Intersect => in_right > 0 && first,
                        _ => in_right == 0 && first,
                    };
                    if self.all && in_right > 0 {
                        counts.insert(k.clone(), in_right - 1);
                    }
                    if !self.all {
                        self.seen.insert(k.clone());
                    }
                    keep
                }
            };
            if keep {
                if !self.all {
                    self.meter.add(&r, b, "set operation state")?;
                }
                out.push(r);
            }
        }
        Ok(Some(out))
    }
}
