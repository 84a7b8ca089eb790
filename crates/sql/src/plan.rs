//! Span planning: which keys a statement over one table must read, derived from its WHERE clause.
//!
//! The filter is split into AND-ed conjuncts. Walking the primary-key columns in order,
//! equality with a literal (`pk = v`, `v = pk`) extends a key prefix; at the first PK column
//! without an equality, range conjuncts on it (`<`, `<=`, `>`, `>=`, non-negated `BETWEEN`)
//! bound the span. Equality on every PK column is a point read ([`ScanPlan::Point`], one `get`);
//! a prefix and/or range is a [`ScanPlan::Span`]; nothing usable is a [`ScanPlan::Full`] table
//! scan. A comparison with NULL, or an empty range, reads nothing ([`ScanPlan::Empty`]).
//! A PK column may also be bound by a list of literals (`pk IN (...)`, or `pk = a OR pk = b`):
//! when every PK column is bound by equalities and lists, the cross product of the values (at
//! most [`MAX_POINTS`] keys) is read by one batched multi-key read ([`ScanPlan::Points`]).
//!
//! Secondary indexes are considered on top of this plan by [`crate::index_plan`], which reuses
//! the conjunct helpers here.
//!
//! Invariant: the plan is a superset of the matching rows; callers still apply the whole filter
//! to every row read, so planning can only narrow reads, never change results.
//! Not handled: lists on a PK prefix that leave later PK columns unbound (full scan), ORs of
//! anything but equalities of one PK column, expressions on PK columns.

use crate::catalog::TableDesc;
use crate::datum::Datum;
use crate::encoding::{encode_key_datum, rows_prefix};
use crate::error::SqlError;
use crate::expr::{BinOp, Scalar};
use meridian_types::keys;
use std::cmp::Ordering;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanPlan {
    /// No row can match.
    Empty,
    /// Exactly one key.
    Point(Vec<u8>),
    /// Several keys, sorted and distinct (at most [`MAX_POINTS`]).
    Points(Vec<Vec<u8>>),
    /// Keys in [start, end), narrowed by the primary key.
    Span { start: Vec<u8>, end: Vec<u8> },
    /// Every row of the table: [start, end).
    Full { start: Vec<u8>, end: Vec<u8> },
    /// Through a secondary index ([`crate::index_plan`]).
    Index(Box<crate::index_plan::IndexPlan>),
}

pub(crate) fn conjuncts<'a>(s: &'a Scalar, out: &mut Vec<&'a Scalar>) {
    match s {
        Scalar::Bin(BinOp::And, l, r) => {
            conjuncts(l, out);
            conjuncts(r, out);
        }
        other => out.push(other),
    }
}

/// `col op lit` as seen from the column's side.
pub(crate) fn col_cmp(s: &Scalar, col: usize) -> Option<(BinOp, &Datum)> {
    let Scalar::Bin(op, l, r) = s else {
        return None;
    };
    let flipped = match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::LtEq => BinOp::GtEq,
        BinOp::Gt => BinOp::Lt,
        BinOp::GtEq => BinOp::LtEq,
        BinOp::Eq => BinOp::Eq,
        _ => return None,
    };
    match (&**l, &**r) {
        (Scalar::Col(c), Scalar::Lit(d)) if *c == col => Some((*op, d)),
        (Scalar::Lit(d), Scalar::Col(c)) if *c == col => Some((flipped, d)),
        _ => None,
    }
}

/// Most keys a [`ScanPlan::Points`] reads (more values plan as a scan).
pub const MAX_POINTS: usize = 1000;

/// The literals column `col` must equal under `s`: `col IN (lits)` (not negated) or an OR of
/// `col = lit` equalities. None when `s` is anything else.
fn col_list(s: &Scalar, col: usize) -> Option<Vec<&Datum>> {
    match s {
        Scalar::InList(x, items, false) if matches!(&**x, Scalar::Col(c) if *c == col) => {
            items.iter().map(|i| if let Scalar::Lit(d) = i { Some(d) } else { None }).collect()
        }
        Scalar::Bin(BinOp::Or, l, r) => {
            let mut out = col_list(l, col)?;
            out.extend(col_list(r, col)?);
            Some(out)
        }
        other => match col_cmp(other, col) {
            Some((BinOp::Eq, d)) => Some(vec![d]),
            _ => None,
        },
    }
}

pub(crate) type Bound = Option<(Datum, bool)>;

/// Keeps the tighter of two bounds (`lower` selects which direction is tighter).
pub(crate) fn tighten(cur: Bound, new: (Datum, bool), lower: bool) -> Bound {
    match cur {
        None => Some(new),
        Some(c) => match new.0.compare(&c.0) {
            Some(Ordering::Greater) if lower => Some(new),
            Some(Ordering::Less) if !lower => Some(new),
            Some(Ordering::Equal) if !new.1 => Some(new),
            _ => Some(c),
        },
    }
}

pub fn plan_scan(table: &TableDesc, filter: Option<&Scalar>) -> Result<ScanPlan, SqlError> {
    let prefix = rows_prefix(table);
    let full = ScanPlan::Full { start: prefix.clone(), end: keys::prefix_end(&prefix) };
    let Some(filter) = filter else {
        return Ok(full);
    };
    let mut cs = Vec::new();
    conjuncts(filter, &mut cs);
    let mut key = prefix.clone();
    let mut lower: Bound = None;
    let mut upper: Bound = None;
    let mut eq_count = 0;
    // Keys bound so far by lists (only while every column so far was bound).
    let mut points: Option<Vec<Vec<u8>>> = None;
    for &col in &table.primary_key {
        let Some(col_ty) = table.columns.get(col).map(|c| c.ty) else {
            break;
        };
        let usable = |d: &Datum| d.is_null() || d.ty() == Some(col_ty.base());
        if let Some((_, d)) = cs.iter().filter_map(|c| col_cmp(c, col)).find(|(op, d)| *op == BinOp::Eq && usable(d)) {
            if d.is_null() {
                return Ok(ScanPlan::Empty);
            }
            encode_key_datum(&mut key, d)?;
            for k in points.iter_mut().flatten() {
                encode_key_datum(k, d)?;
            }
            eq_count += 1;
            continue;
        }
        let list = cs.iter().filter_map(|c| col_list(c, col)).find(|l| l.iter().all(|d| usable(d)));
        if let Some(list) = list {
            // NULL never equals: those items match nothing.
            let values: Vec<&Datum> = list.into_iter().filter(|d| !d.is_null()).collect();
            if values.is_empty() {
                return Ok(ScanPlan::Empty);
            }
            let bases = points.take().unwrap_or_else(|| vec![key.clone()]);
            if bases.len() * values.len() <= MAX_POINTS {
                let mut next = Vec::with_capacity(bases.len() * values.len());
                for b in &bases {
                    for d in &values {
                        let mut k = b.clone();
                        encode_key_datum(&mut k, d)?;
                        next.push(k);
                    }
                }
                points = Some(next);
                eq_count += 1;
                continue;
            }
            points = Some(bases);
        }
        if points.is_some() {
            // A list bound an earlier column but this one is not bound: scan (module docs).
            return Ok(full);
        }
        for c in &cs {
            if let Some((op, d)) = col_cmp(c, col) {
                if !usable(d) {
                    continue;
                }
                if d.is_null() {
                    return Ok(ScanPlan::Empty);
                }
                match op {
                    BinOp::Gt => lower = tighten(lower, (d.clone(), false), true),
                    BinOp::GtEq => lower = tighten(lower, (d.clone(), true), true),
                    BinOp::Lt => upper = tighten(upper, (d.clone(), false), false),
                    BinOp::LtEq => upper = tighten(upper, (d.clone(), true), false),
                    _ => {}
                }
            } else if let Scalar::Between(x, lo, hi, false) = c
                && let (Scalar::Col(x), Scalar::Lit(lo), Scalar::Lit(hi)) = (&**x, &**lo, &**hi)
                && *x == col
                && usable(lo)
                && usable(hi)
            {
                if lo.is_null() || hi.is_null() {
                    return Ok(ScanPlan::Empty);
                }
                lower = tighten(lower, (lo.clone(), true), true);
                upper = tighten(upper, (hi.clone(), true), false);
            }
        }
        break;
    }
    if let Some(mut keys) = points {
        if eq_count < table.primary_key.len() {
            return Ok(full);
        }
        keys.sort();
        keys.dedup();
        return Ok(if keys.len() == 1 { ScanPlan::Point(keys.remove(0)) } else { ScanPlan::Points(keys) });
    }
    if eq_count == table.primary_key.len() && eq_count > 0 {
        return Ok(ScanPlan::Point(key));
    }
    if eq_count == 0 && lower.is_none() && upper.is_none() {
        return Ok(full);
    }
    let start = match lower {
        None => key.clone(),
        Some((d, inclusive)) => {
            let mut k = key.clone();
            encode_key_datum(&mut k, &d)?;
            if inclusive { k } else { keys::prefix_end(&k) }
        }
    };
    let end = match upper {
        None => keys::prefix_end(&key),
        Some((d, inclusive)) => {
            let mut k = key.clone();
            encode_key_datum(&mut k, &d)?;
            if inclusive { keys::prefix_end(&k) } else { k }
        }
    };
    if start >= end {
        return Ok(ScanPlan::Empty);
    }
    Ok(ScanPlan::Span { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnDesc, SqlType};
    use crate::expr::Compiler;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn table(pk: Vec<usize>) -> TableDesc {
        let col = |id: u32, name: &str| ColumnDesc::new(id, name, SqlType::Int);
        let mut t = TableDesc::new("d", "t", vec![col(1, "a"), col(2, "b"), col(3, "v")], pk);
        t.id = 3;
        t
    }

    fn plan(t: &TableDesc, filter: &str) -> ScanPlan {
        let e = Parser::new(&PostgreSqlDialect {}).try_with_sql(filter).unwrap().parse_expr().unwrap();
        let s = Compiler::for_table(t, None, &[], 0).compile(&e).unwrap();
        plan_scan(t, Some(&s)).unwrap()
    }

    fn key(t: &TableDesc, vals: &[i64]) -> Vec<u8> {
        let mut k = rows_prefix(t);
        for v in vals {
            keys::encode_i64(&mut k, *v);
        }
        k
    }

    #[test]
    fn equality_on_whole_pk_is_a_point() {
        let t = table(vec![0]);
        assert_eq!(plan(&t, "a = 5"), ScanPlan::Point(key(&t, &[5])));
        assert_eq!(plan(&t, "5 = a AND v > 2"), ScanPlan::Point(key(&t, &[5])));
        let t2 = table(vec![0, 1]);
        assert_eq!(plan(&t2, "b = 2 AND a = 1"), ScanPlan::Point(key(&t2, &[1, 2])));
        assert_eq!(plan(&t, "a = NULL"), ScanPlan::Empty);
        // A string literal compared with an INT column is cast at compile time.
        assert_eq!(plan(&t, "a = '7'"), ScanPlan::Point(key(&t, &[7])));
    }

    #[test]
    fn prefix_and_ranges_are_spans() {
        let t = table(vec![0, 1]);
        let p = key(&t, &[1]);
        assert_eq!(plan(&t, "a = 1 AND b > 3"), ScanPlan::Span { start: keys::prefix_end(&key(&t, &[1, 3])), end: keys::prefix_end(&p) });
        assert_eq!(plan(&t, "a = 1"), ScanPlan::Span { start: p.clone(), end: keys::prefix_end(&p) });
        assert_eq!(plan(&t, "a >= 2 AND a < 9 AND a < 20"), ScanPlan::Span { start: key(&t, &[2]), end: key(&t, &[9]) });
        assert_eq!(plan(&t, "a BETWEEN 2 AND 4"), ScanPlan::Span { start: key(&t, &[2]), end: keys::prefix_end(&key(&t, &[4])) });
        assert_eq!(plan(&t, "a > 5 AND a < 3"), ScanPlan::Empty);
    }

    #[test]
    fn other_predicates_are_full_scans() {
        let t = table(vec![0, 1]);
        let full = plan_scan(&t, None).unwrap();
        assert!(matches!(full, ScanPlan::Full { .. }));
        assert_eq!(plan(&t, "v = 1"), full);
        assert_eq!(plan(&t, "b = 1"), full);
        assert_eq!(plan(&t, "a = 1 OR a = 2"), full, "b is not bound");
        assert_eq!(plan(&t, "a IN (1, 2)"), full, "b is not bound");
        assert_eq!(plan(&t, "a = 1 OR b = 2"), full);
        assert_eq!(plan(&t, "a + 0 = 1"), full);
        assert_eq!(plan(&t, "a NOT IN (1, 2) AND b = 1"), full);
    }

    #[test]
    fn lists_binding_the_whole_pk_are_points() {
        let t = table(vec![0]);
        let k = |v: &[i64]| key(&t, v);
        assert_eq!(plan(&t, "a IN (3, 1, 2, 1)"), ScanPlan::Points(vec![k(&[1]), k(&[2]), k(&[3])]), "sorted, distinct");
        assert_eq!(plan(&t, "a = 4 OR a = 2"), ScanPlan::Points(vec![k(&[2]), k(&[4])]));
        assert_eq!(plan(&t, "(a = 4 OR a IN (5, 6)) AND v = 1"), ScanPlan::Points(vec![k(&[4]), k(&[5]), k(&[6])]));
        assert_eq!(plan(&t, "a IN (7, NULL)"), ScanPlan::Point(k(&[7])));
        assert_eq!(plan(&t, "a IN (NULL)"), ScanPlan::Empty);
        let t2 = table(vec![0, 1]);
        let k2 = |v: &[i64]| key(&t2, v);
        assert_eq!(plan(&t2, "a IN (1, 2) AND b IN (8, 9)"), ScanPlan::Points(vec![k2(&[1, 8]), k2(&[1, 9]), k2(&[2, 8]), k2(&[2, 9])]));
        assert_eq!(plan(&t2, "b = 5 AND a IN (2, 1)"), ScanPlan::Points(vec![k2(&[1, 5]), k2(&[2, 5])]));
        // Too many keys: a scan instead.
        let many: Vec<String> = (0..=MAX_POINTS as i64).map(|i| i.to_string()).collect();
        assert!(matches!(plan(&t, &format!("a IN ({})", many.join(","))), ScanPlan::Full { .. }));
    }
}
