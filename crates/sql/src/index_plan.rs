//! Choosing a secondary index for a table scan, for an ORDER BY, and index-only reads.
//!
//! For each public index the filter's conjuncts are matched against its columns in order: an
//! equality with a literal, an `IN (literals)` list (all combinations at most [`MAX_SPANS`]) or,
//! for a non-unique index, `IS NULL` binds a column and moves on to the next; at the first
//! column without one, range conjuncts (`<`, `<=`, `>`, `>=`, `BETWEEN`) bound it and matching
//! stops. The index's spans are the key ranges those bounds allow ([`IndexPlan::spans`]).
//!
//! The rule ([`plan_table_scan`]): a primary-key point read or empty plan always wins. Otherwise
//! each index scores (bound columns, whether a range follows); the best index (ties: a unique
//! index with every column bound, then fewer columns, then the older index) is used if its score
//! beats the primary key's own (equality prefix, range) score, else the primary-key plan stays.
//! A unique index holds no entry for a row with a NULL indexed value, so it is only used when
//! every one of its columns is NOT NULL or constrained by a conjunct that rejects NULLs.
//!
//! ORDER BY ([`order_by_index`]): when the scan's index returns rows in the requested order
//! (after the columns fixed by single-value equalities; ascending index columns give `ASC NULLS
//! LAST`, descending ones `DESC NULLS FIRST`, as PostgreSQL's defaults; a non-unique index then
//! orders by primary key) the sort is dropped. With a LIMIT, an index that gives the order and
//! binds at least as many leading columns as the current plan replaces it, and its first read
//! fetches only as many entries as the limit needs. Indexes are read forwards only.
//!
//! Index-only reads ([`mark_covering`]): when every column the query uses from the table is an
//! indexed or primary-key column (of a type whose key encoding is lossless), rows are decoded
//! from the entries; otherwise the rows are fetched by primary key, one batch per page.
//!
//! Invariant: like the primary-key plan, an index plan only narrows what is read; the scan's
//! whole filter is still applied to every row.

use crate::catalog::{IndexDesc, TableDesc};
use crate::datum::Datum;
use crate::error::SqlError;
use crate::expr::{BinOp, Scalar};
use crate::index::{VALUE, column_positions, encode_column, lossless};
use crate::plan::{Bound, ScanPlan, col_cmp, conjuncts, plan_scan, tighten};
use crate::rel::{Rel, SortKey};
use meridian_types::keys;
use std::cmp::Reverse;

/// Most spans one index read may have (products of IN lists beyond it bind fewer columns).
pub const MAX_SPANS: usize = 100;

/// A key span [start, end).
pub type KeySpan = (Vec<u8>, Vec<u8>);

/// A candidate index: its rank (greater is better), the index and what binds it.
type Candidate<'a, R> = Option<(R, &'a IndexDesc, Bounds)>;
/// Rank of an index for a filter: bound columns, range after them, every column of a unique
/// index bound, fewer columns, older index.
type FilterRank = (usize, bool, bool, Reverse<usize>, Reverse<u32>);

/// A read through a secondary index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPlan {
    pub index: IndexDesc,
    /// Disjoint key spans [start, end), in key order.
    pub spans: Vec<KeySpan>,
    /// Rows are decoded from the entries: no row lookups.
    pub covering: bool,
    /// How many rows a LIMIT above needs (the size of the first read).
    pub limit_hint: Option<usize>,
}

/// What the conjuncts bind on a sequence of columns.
#[derive(Debug, Default)]
struct Bounds {
    /// Per leading column, the values it may take (one for `=`, several for IN, NULL for IS NULL).
    prefix: Vec<Vec<Datum>>,
    /// Range on the column after the prefix.
    lower: Bound,
    upper: Bound,
    /// No row can match.
    empty: bool,
}

impl Bounds {
    fn score(&self) -> (usize, bool) {
        (self.prefix.len(), self.lower.is_some() || self.upper.is_some())
    }

    /// Whether column `c` (a position in the table) is fixed to one value.
    fn constant(&self, cols: &[usize], c: usize) -> bool {
        self.prefix.iter().zip(cols).any(|(vals, col)| *col == c && vals.len() == 1)
    }
}

fn is_col(s: &Scalar, col: usize) -> bool {
    matches!(s, Scalar::Col(c) if *c == col)
}

/// Matches conjuncts against `cols` in order. `allow_lists` admits IN lists and IS NULL (index
/// spans support them; the primary-key plan does not).
fn analyze(table: &TableDesc, cols: &[usize], cs: &[&Scalar], allow_lists: bool, allow_null: bool) -> Bounds {
    let mut b = Bounds::default();
    let mut combos = 1usize;
    for &col in cols {
        let Some(ty) = table.columns.get(col).map(|c| c.ty.base()) else { break };
        let usable = |d: &Datum| d.is_null() || d.ty() == Some(ty);
        if let Some((_, d)) = cs.iter().filter_map(|c| col_cmp(c, col)).find(|(op, d)| *op == BinOp::Eq && usable(d)) {
            if d.is_null() {
                b.empty = true;
                return b;
            }
            b.prefix.push(vec![d.clone()]);
            continue;
        }
        if allow_lists {
            let list = cs.iter().find_map(|c| match c {
                Scalar::InList(x, items, false) if is_col(x, col) => {
                    let vals: Option<Vec<Datum>> = items
                        .iter()
                        .map(|i| match i {
                            Scalar::Lit(d) if usable(d) => Some(d.clone()),
                            _ => None,
                        })
                        .collect();
                    vals
                }
                _ => None,
            });
            if let Some(vals) = list {
                let mut vals: Vec<Datum> = vals.into_iter().filter(|d| !d.is_null()).collect();
                vals.sort_by(|a, b| a.sort_cmp(b));
                vals.dedup_by(|a, b| a.compare(b) == Some(std::cmp::Ordering::Equal));
                if vals.is_empty() {
                    b.empty = true;
                    return b;
                }
                if combos * vals.len() <= MAX_SPANS {
                    combos *= vals.len();
                    b.prefix.push(vals);
                    continue;
                }
                break;
            }
            if allow_null && cs.iter().any(|c| matches!(c, Scalar::IsNull(x, false) if is_col(x, col))) {
                b.prefix.push(vec![Datum::Null]);
                continue;
            }
        }
        for c in cs {
            if let Some((op, d)) = col_cmp(c, col) {
                if !usable(d) {
                    continue;
                }
                if d.is_null() {
                    b.empty = true;
                    return b;
                }
                match op {
                    BinOp::Gt => b.lower = tighten(b.lower.take(), (d.clone(), false), true),
                    BinOp::GtEq => b.lower = tighten(b.lower.take(), (d.clone(), true), true),
                    BinOp::Lt => b.upper = tighten(b.upper.take(), (d.clone(), false), false),
                    BinOp::LtEq => b.upper = tighten(b.upper.take(), (d.clone(), true), false),
                    _ => {}
                }
            } else if let Scalar::Between(x, lo, hi, false) = c
                && let (Scalar::Lit(lo), Scalar::Lit(hi)) = (&**lo, &**hi)
                && is_col(x, col)
                && usable(lo)
                && usable(hi)
            {
                if lo.is_null() || hi.is_null() {
                    b.empty = true;
                    return b;
                }
                b.lower = tighten(b.lower.take(), (lo.clone(), true), true);
                b.upper = tighten(b.upper.take(), (hi.clone(), true), false);
            }
        }
        break;
    }
    b
}

/// Whether some conjunct makes column `col` non-NULL in every matching row (or it is NOT NULL).
fn null_rejected(table: &TableDesc, col: usize, cs: &[&Scalar]) -> bool {
    if table.columns.get(col).is_some_and(|c| !c.nullable) {
        return true;
    }
    cs.iter().any(|c| {
        col_cmp(c, col).is_some()
            || matches!(c, Scalar::Between(x, _, _, false) | Scalar::InList(x, _, false) | Scalar::IsNull(x, true) if is_col(x, col))
            || matches!(c, Scalar::Like { expr, negated: false, .. } if is_col(expr, col))
    })
}

/// Whether a unique index holds an entry for every row the conjuncts allow.
fn complete(table: &TableDesc, index: &IndexDesc, cols: &[usize], cs: &[&Scalar]) -> bool {
    !index.unique || cols.iter().all(|c| null_rejected(table, *c, cs))
}

/// The key spans of `index` that `b` allows, sorted and disjoint.
fn spans(table: &TableDesc, index: &IndexDesc, b: &Bounds) -> Result<Vec<KeySpan>, SqlError> {
    let mut prefixes = vec![keys::index_prefix(table.id, index.id)];
    for (i, vals) in b.prefix.iter().enumerate() {
        let mut next = Vec::with_capacity(prefixes.len() * vals.len());
        for p in &prefixes {
            for v in vals {
                let mut k = p.clone();
                encode_column(&mut k, v, index.unique, index.desc(i))?;
                next.push(k);
            }
        }
        prefixes = next;
    }
    let i = b.prefix.len();
    let desc = index.desc(i);
    let has_range = b.lower.is_some() || b.upper.is_some();
    let mut out = Vec::with_capacity(prefixes.len());
    for p in prefixes {
        if !has_range {
            let end = keys::prefix_end(&p);
            out.push((p, end));
            continue;
        }
        // The keys holding values of column i (not NULLs) start with `vs`.
        let mut vs = p.clone();
        if !index.unique {
            vs.push(if desc { !VALUE } else { VALUE });
        }
        let enc = |d: &Datum| -> Result<Vec<u8>, SqlError> {
            let mut k = p.clone();
            encode_column(&mut k, d, index.unique, desc)?;
            Ok(k)
        };
        // In key order the first bound is the lower one ascending, the upper one descending.
        let (first, last) = if desc { (&b.upper, &b.lower) } else { (&b.lower, &b.upper) };
        let start = match first {
            None => vs.clone(),
            Some((d, true)) => enc(d)?,
            Some((d, false)) => keys::prefix_end(&enc(d)?),
        };
        let end = match last {
            None => keys::prefix_end(&vs),
            Some((d, true)) => keys::prefix_end(&enc(d)?),
            Some((d, false)) => enc(d)?,
        };
        if start < end {
            out.push((start, end));
        }
    }
    out.sort();
    let mut merged: Vec<KeySpan> = Vec::with_capacity(out.len());
    for (s, e) in out {
        match merged.last_mut() {
            Some((_, pe)) if s <= *pe => {
                if e > *pe {
                    *pe = e;
                }
            }
            _ => merged.push((s, e)),
        }
    }
    Ok(merged)
}

fn index_plan(table: &TableDesc, index: &IndexDesc, b: &Bounds) -> Result<ScanPlan, SqlError> {
    let spans = spans(table, index, b)?;
    if b.empty || spans.is_empty() {
        return Ok(ScanPlan::Empty);
    }
    Ok(ScanPlan::Index(Box::new(IndexPlan { index: index.clone(), spans, covering: false, limit_hint: None })))
}

/// Plans a scan of `table` under `filter`: the primary-key plan of [`plan_scan`] or, when one
/// binds more, a secondary index (see the module docs for the rule).
pub fn plan_table_scan(table: &TableDesc, filter: Option<&Scalar>) -> Result<ScanPlan, SqlError> {
    let pk_plan = plan_scan(table, filter)?;
    let Some(filter) = filter else { return Ok(pk_plan) };
    if matches!(pk_plan, ScanPlan::Point(_) | ScanPlan::Points(_) | ScanPlan::Empty) || table.indexes.is_empty() {
        return Ok(pk_plan);
    }
    let mut cs = Vec::new();
    conjuncts(filter, &mut cs);
    let pk_score = analyze(table, &table.primary_key, &cs, false, false).score();
    let mut best: Candidate<'_, FilterRank> = None;
    for idx in table.indexes.iter().filter(|i| i.is_public()) {
        let cols = column_positions(table, idx)?;
        let b = analyze(table, &cols, &cs, true, !idx.unique);
        let (n, range) = b.score();
        if (n == 0 && !range && !b.empty) || !complete(table, idx, &cols, &cs) {
            continue;
        }
        let rank = (n, range, idx.unique && n == cols.len(), Reverse(cols.len()), Reverse(idx.id));
        if best.as_ref().is_none_or(|(r, ..)| rank > *r) {
            best = Some((rank, idx, b));
        }
    }
    match best {
        Some((_, idx, b)) if b.empty => index_plan(table, idx, &b),
        Some((rank, idx, b)) if (rank.0, rank.1) > pk_score => index_plan(table, idx, &b),
        _ => Ok(pk_plan),
    }
}

/// Whether reading `index` under bounds `b` yields rows ordered by `keys` (columns of the table
/// with direction and NULLs placement).
fn gives_order(table: &TableDesc, index: &IndexDesc, cols: &[usize], b: &Bounds, cs: &[&Scalar], keys: &[(usize, bool, bool)]) -> bool {
    let mut ord: Vec<(usize, bool)> = cols.iter().enumerate().map(|(i, c)| (*c, index.desc(i))).collect();
    if !index.unique {
        ord.extend(table.primary_key.iter().map(|c| (*c, false)));
    }
    let mut i = 0;
    for &(c, desc, nulls_first) in keys {
        if b.constant(cols, c) {
            continue;
        }
        while i < ord.len() && b.constant(cols, ord[i].0) {
            i += 1;
        }
        // Past the last ordering column rows are totally ordered (unique values, or the pk).
        let Some(&(oc, odesc)) = ord.get(i) else { return true };
        if oc != c || odesc != desc {
            return false;
        }
        let may_be_null = !index.unique && !null_rejected(table, c, cs);
        if may_be_null && nulls_first != desc {
            return false;
        }
        i += 1;
    }
    true
}

/// Makes the scan under `rel` (a scan, possibly under a filter) deliver rows in `sort` order
/// through an index, if one can (see the module docs). Returns whether the sort is now redundant.
/// `limit` is LIMIT + OFFSET, if any.
pub(crate) fn order_by_index(rel: &mut Rel, sort: &[SortKey], limit: Option<usize>) -> Result<bool, SqlError> {
    let scan = match rel {
        Rel::Scan(s) => s,
        Rel::Filter { input, .. } => match &mut **input {
            Rel::Scan(s) => s,
            _ => return Ok(false),
        },
        _ => return Ok(false),
    };
    let Some(keys) = sort
        .iter()
        .map(|k| match k.expr {
            Scalar::Col(c) => Some((c, k.desc, k.nulls_first)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(false);
    };
    let table = &scan.table;
    let mut cs = Vec::new();
    if let Some(f) = &scan.filter {
        conjuncts(f, &mut cs);
    }
    let current = match &mut scan.plan {
        ScanPlan::Point(_) | ScanPlan::Points(_) | ScanPlan::Empty => return Ok(false),
        ScanPlan::Index(p) => {
            let cols = column_positions(table, &p.index)?;
            let b = analyze(table, &cols, &cs, true, !p.index.unique);
            if gives_order(table, &p.index, &cols, &b, &cs, &keys) {
                p.limit_hint = limit;
                return Ok(true);
            }
            b.prefix.len()
        }
        ScanPlan::Span { .. } | ScanPlan::Full { .. } => analyze(table, &table.primary_key, &cs, false, false).prefix.len(),
    };
    if limit.is_none() {
        return Ok(false);
    }
    let mut best: Candidate<'_, (usize, bool, Reverse<u32>)> = None;
    for idx in table.indexes.iter().filter(|i| i.is_public()) {
        let cols = column_positions(table, idx)?;
        let b = analyze(table, &cols, &cs, true, !idx.unique);
        if b.prefix.len() < current || !complete(table, idx, &cols, &cs) || !gives_order(table, idx, &cols, &b, &cs, &keys) {
            continue;
        }
        let (n, range) = b.score();
        let rank = (n, range, Reverse(idx.id));
        if best.as_ref().is_none_or(|(r, ..)| rank > *r) {
            best = Some((rank, idx, b));
        }
    }
    let Some((_, idx, b)) = best else { return Ok(false) };
    let mut plan = index_plan(table, idx, &b)?;
    if let ScanPlan::Index(p) = &mut plan {
        p.limit_hint = limit;
    }
    scan.plan = plan;
    Ok(true)
}

/// Whether any scan in `rel` reads through a secondary index.
pub(crate) fn uses_secondary_index(rel: &Rel) -> bool {
    match rel {
        Rel::Scan(s) => matches!(s.plan, ScanPlan::Index(_)),
        Rel::Filter { input, .. }
        | Rel::Project { input, .. }
        | Rel::Sort { input, .. }
        | Rel::Distinct { input, .. }
        | Rel::Limit { input, .. } => uses_secondary_index(input),
        Rel::Agg(a) => uses_secondary_index(&a.input),
        Rel::Join(j) => uses_secondary_index(&j.left) || uses_secondary_index(&j.right),
        Rel::SetOp(s) => uses_secondary_index(&s.left) || uses_secondary_index(&s.right),
        Rel::Unit { .. } | Rel::Values { .. } | Rel::Series { .. } | Rel::LazySeries { .. } | Rel::Rows { .. } => false,
    }
}

/// Adds the columns `s` reads. Subquery nodes that were not replaced by their results (a
/// correlated subquery reads outer columns in ways `columns()` may not show) count as reading
/// every column, which no index covers.
fn add_cols(needed: &mut Vec<usize>, s: &Scalar) {
    if s.any(&|n| matches!(n, Scalar::Subquery(_) | Scalar::Exists(..) | Scalar::InSubquery(..))) {
        needed.push(usize::MAX);
    }
    needed.extend(s.columns());
}

/// Marks index reads whose rows the query can take from the entries alone. `needed` is which of
/// `rel`'s output columns are used above it (None: all). Call once on a finished plan.
pub(crate) fn mark_covering(rel: &mut Rel, needed: Option<&[usize]>) {
    match rel {
        Rel::Scan(s) => {
            let mut filter_cols = Vec::new();
            if let Some(f) = &s.filter {
                add_cols(&mut filter_cols, f);
            }
            if let ScanPlan::Index(p) = &mut s.plan {
                let Some(needed) = needed else {
                    p.covering = false;
                    return;
                };
                let Ok(cols) = column_positions(&s.table, &p.index) else { return };
                let have = |c: &usize| {
                    (cols.contains(c) || s.table.primary_key.contains(c)) && s.table.columns.get(*c).is_some_and(|col| lossless(col.ty))
                };
                p.covering = needed.iter().chain(&filter_cols).all(have);
            }
        }
        Rel::Filter { input, pred } => {
            let mut n = needed.map(<[usize]>::to_vec);
            if let Some(n) = n.as_mut() {
                add_cols(n, pred);
            }
            mark_covering(input, n.as_deref());
        }
        Rel::Project { input, exprs } => {
            let mut n = Vec::new();
            exprs.iter().for_each(|e| add_cols(&mut n, e));
            mark_covering(input, Some(&n));
        }
        Rel::Sort { input, keys, .. } => {
            let mut n = needed.map(<[usize]>::to_vec);
            if let Some(n) = n.as_mut() {
                keys.iter().for_each(|k| add_cols(n, &k.expr));
            }
            mark_covering(input, n.as_deref());
        }
        Rel::Limit { input, .. } => mark_covering(input, needed),
        Rel::Distinct { input, width, .. } => {
            let mut n: Vec<usize> = (0..*width).collect();
            n.extend(needed.unwrap_or_default());
            mark_covering(input, if needed.is_some() { Some(&n) } else { None });
        }
        Rel::Agg(a) => {
            let Some(needed) = needed else {
                return mark_covering(&mut a.input, None);
            };
            let mut n: Vec<usize> = needed.iter().copied().filter(|c| *c < a.width || *c == usize::MAX).collect();
            a.group.iter().for_each(|g| add_cols(&mut n, g));
            for spec in &a.aggs {
                spec.arg.iter().chain(&spec.sep).for_each(|e| add_cols(&mut n, e));
            }
            mark_covering(&mut a.input, Some(&n));
        }
        Rel::Join(j) => {
            mark_covering(&mut j.left, None);
            mark_covering(&mut j.right, None);
        }
        Rel::SetOp(s) => {
            mark_covering(&mut s.left, None);
            mark_covering(&mut s.right, None);
        }
        Rel::Unit { .. } | Rel::Values { .. } | Rel::Series { .. } | Rel::LazySeries { .. } | Rel::Rows { .. } => {}
    }
}
