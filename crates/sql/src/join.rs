//! Join execution: hash join (equi-join keys; the right side is built into a hash table),
//! lookup join (the right side's whole primary key is bound by the left row: one `txn.get`
//! per left row, no scan of the right table), and nested loop (the right side is buffered).
//!
//! Invariants: the left side streams; only the right side is buffered, bounded by [`Budget`];
//! NULL join keys never match; the full ON condition is re-checked on every candidate pair;
//! RIGHT/FULL joins emit unmatched right rows after the left side is exhausted.
//! Not handled: lookup joins for RIGHT/FULL joins, merge joins, choosing the build side by size.

use crate::datum::Datum;
use crate::encoding::{decode_row, encode_key_datum, group_key, rows_prefix};
use crate::error::SqlError;
use crate::eval::eval;
use crate::expr::Scalar;
use crate::rel::{Budget, Meter, Rel, Row, passes};
use crate::txn::TxnClient;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    Cross,
}

#[derive(Clone, Debug)]
pub enum Method {
    /// `lkeys[i]` (over the left row) = `rkeys[i]` (over the right row).
    Hash {
        lkeys: Vec<Scalar>,
        rkeys: Vec<Scalar>,
    },
    /// Expressions over the left row giving the right table's primary key, in PK order.
    Lookup {
        key: Vec<Scalar>,
    },
    Nested,
}

#[derive(Clone, Debug)]
pub struct JoinNode {
    pub kind: JoinKind,
    pub left: Rel,
    pub right: Rel,
    /// Over the combined row (left ++ right).
    pub on: Option<Scalar>,
    pub method: Method,
    pub lw: usize,
    pub rw: usize,
    built: Option<Vec<Row>>,
    index: HashMap<Vec<u8>, Vec<usize>>,
    matched: Vec<bool>,
    left_done: bool,
    finished: bool,
}

impl JoinNode {
    pub fn new(kind: JoinKind, left: Rel, right: Rel, on: Option<Scalar>, lw: usize, rw: usize) -> JoinNode {
        JoinNode {
            kind,
            left,
            right,
            on,
            method: Method::Nested,
            lw,
            rw,
            built: None,
            index: HashMap::new(),
            matched: Vec::new(),
            left_done: false,
            finished: false,
        }
    }

    async fn build<T: TxnClient>(&mut self, txn: &mut T, b: &Budget) -> Result<(), SqlError> {
        let mut meter = Meter::default();
        let mut rows = Vec::new();
        while let Some(batch) = self.right.next(txn, b).await? {
            for r in batch {
                meter.add(&r, b, "join build side")?;
                if let Method::Hash { rkeys, .. } = &self.method {
                    let ks = rkeys.iter().map(|k| eval(k, &r, &[])).collect::<Result<Vec<_>, _>>()?;
                    if !ks.iter().any(Datum::is_null) {
                        self.index.entry(group_key(&ks)).or_default().push(rows.len());
                    }
                }
                rows.push(r);
            }
        }
        self.matched = vec![false; rows.len()];
        self.built = Some(rows);
        Ok(())
    }

    fn accept(&self, combined: &[Datum]) -> Result<bool, SqlError> {
        match &self.on {
            None => Ok(true),
            Some(on) => passes(on, combined),
        }
    }

    pub async fn next<T: TxnClient>(&mut self, txn: &mut T, b: &Budget) -> Result<Option<Vec<Row>>, SqlError> {
        if self.finished {
            return Ok(None);
        }
        let lookup = matches!(self.method, Method::Lookup { .. });
        if !lookup && self.built.is_none() {
            self.build(txn, b).await?;
        }
        if self.left_done {
            // Unmatched right rows of RIGHT/FULL joins.
            self.finished = true;
            if !matches!(self.kind, JoinKind::Right | JoinKind::Full) {
                return Ok(None);
            }
            let rows = self.built.take().unwrap_or_default();
            let out = rows
                .into_iter()
                .zip(&self.matched)
                .filter(|(_, m)| !**m)
                .map(|(r, _)| {
                    let mut c = vec![Datum::Null; self.lw];
                    c.extend(r);
                    c
                })
                .collect();
            return Ok(Some(out));
        }
        let Some(batch) = self.left.next(txn, b).await? else {
            self.left_done = true;
            return Ok(Some(Vec::new()));
        };
        let mut out = Vec::new();
        for l in batch {
            let mut any = false;
            match &self.method {
                Method::Lookup { key } => {
                    if let Some(r) = self.lookup(txn, key, &l).await? {
                        let mut c = l.clone();
                        c.extend(r);
                        if self.accept(&c)? {
                            any = true;
                            out.push(c);
                        }
                    }
                }
                Method::Hash { lkeys, .. } => {
                    let ks = lkeys.iter().map(|k| eval(k, &l, &[])).collect::<Result<Vec<_>, _>>()?;
                    if !ks.iter().any(Datum::is_null)
                        && let Some(cands) = self.index.get(&group_key(&ks))
                    {
                        for &i in cands {
                            any |= probe(&self.on, self.built.as_deref(), &mut self.matched, &l, i, &mut out)?;
                        }
                    }
                }
                Method::Nested => {
                    let n = self.built.as_ref().map(Vec::len).unwrap_or(0);
                    for i in 0..n {
                        any |= probe(&self.on, self.built.as_deref(), &mut self.matched, &l, i, &mut out)?;
                    }
                }
            }
            if !any && matches!(self.kind, JoinKind::Left | JoinKind::Full) {
                let mut c = l;
                c.extend(std::iter::repeat_n(Datum::Null, self.rw));
                out.push(c);
            }
        }
        Ok(Some(out))
    }

    /// The right row whose primary key the left row binds, if present and passing the right
    /// scan's own filter.
    async fn lookup<T: TxnClient>(&self, txn: &mut T, key: &[Scalar], l: &[Datum]) -> Result<Option<Row>, SqlError> {
        let Rel::Scan(scan) = &self.right else {
            return Ok(None);
        };
        let mut k = rows_prefix(&scan.table);
        for (e, &col) in key.iter().zip(&scan.table.primary_key) {
            let v = eval(e, l, &[])?;
            if v.is_null() {
                return Ok(None);
            }
            let spec = scan.table.columns.get(col).map(|c| c.spec());
            let v = match spec {
                Some(spec) => match v.coerce(&spec, "") {
                    Ok(v) => v,
                    Err(_) => return Ok(None),
                },
                None => v,
            };
            encode_key_datum(&mut k, &v)?;
        }
        let Some(value) = txn.get(&k).await? else {
            return Ok(None);
        };
        let row = decode_row(&scan.table, &value)?;
        if let Some(f) = &scan.filter
            && !passes(f, &row)?
        {
            return Ok(None);
        }
        Ok(Some(row))
    }
}

/// Joins left row `l` with built row `i` when the ON condition accepts the pair: pushes the
/// combined row, marks the built row matched (for RIGHT/FULL joins) and says whether it matched.
fn probe(
    on: &Option<Scalar>,
    built: Option<&[Row]>,
    matched: &mut [bool],
    l: &[Datum],
    i: usize,
    out: &mut Vec<Row>,
) -> Result<bool, SqlError> {
    let Some(r) = built.and_then(|rows| rows.get(i)) else { return Ok(false) };
    let mut c = Vec::with_capacity(l.len() + r.len());
    c.extend_from_slice(l);
    c.extend(r.iter().cloned());
    let ok = match on {
        None => true,
        Some(on) => passes(on, &c)?,
    };
    if ok {
        if let Some(m) = matched.get_mut(i) {
            *m = true;
        }
        out.push(c);
    }
    Ok(ok)
}
