//! Aggregation: the accumulators of count/sum/min/max/avg/bool_and/bool_or/string_agg (with
//! DISTINCT) and the [`AggNode`] operator, which consumes its input as it streams and keeps
//! one accumulator set per group.
//!
//! Output rows are the group's first input row followed by the aggregate values, so that
//! post-aggregation expressions (grouping expressions, HAVING, ORDER BY) evaluate over them.
//! Invariants: the number of groups (and DISTINCT sets) is bounded by [`Budget`] (54000); an
//! aggregate without GROUP BY yields exactly one row, even over no input.
//! Not handled: FILTER clauses, ordered-set aggregates, array_agg, json_agg.

use crate::datum::Datum;
use crate::encoding::group_key;
use crate::error::{SqlError, codes};
use crate::eval::binary;
use crate::expr::{AggFunc, AggSpec, BinOp, Scalar};
use crate::rel::{Budget, Meter, PAGE, Rel, Row};
use crate::subquery::eval_row;
use crate::txn::TxnClient;
use rust_decimal::Decimal;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug)]
enum Acc {
    Count(i64),
    Sum(Datum),
    Min(Datum),
    Max(Datum),
    Avg(Datum, i64),
    Bool(Option<bool>),
    Str(Option<String>),
}

#[derive(Clone, Debug)]
struct AccState {
    acc: Acc,
    distinct: Option<HashSet<Vec<u8>>>,
}

fn bad(name: &str, v: &Datum) -> SqlError {
    SqlError::user(codes::UNDEFINED_FUNCTION, format!("function {name}({}) does not exist", v.type_name()))
}

impl AccState {
    fn new(spec: &AggSpec) -> AccState {
        let acc = match spec.func {
            AggFunc::CountStar | AggFunc::Count => Acc::Count(0),
            AggFunc::Sum => Acc::Sum(Datum::Null),
            AggFunc::Min => Acc::Min(Datum::Null),
            AggFunc::Max => Acc::Max(Datum::Null),
            AggFunc::Avg => Acc::Avg(Datum::Null, 0),
            AggFunc::BoolAnd | AggFunc::BoolOr => Acc::Bool(None),
            AggFunc::StringAgg => Acc::Str(None),
        };
        AccState { acc, distinct: spec.distinct.then(HashSet::new) }
    }

    fn add(&mut self, func: AggFunc, v: Datum, sep: Option<Datum>) -> Result<(), SqlError> {
        if func == AggFunc::CountStar {
            if let Acc::Count(n) = &mut self.acc {
                *n += 1;
            }
            return Ok(());
        }
        if v.is_null() {
            return Ok(());
        }
        if let Some(seen) = &mut self.distinct
            && !seen.insert(group_key(std::slice::from_ref(&v)))
        {
            return Ok(());
        }
        match &mut self.acc {
            Acc::Count(n) => *n += 1,
            Acc::Sum(s) => {
                if !matches!(v, Datum::Int(_) | Datum::Float(_) | Datum::Decimal(_) | Datum::Interval(_)) {
                    return Err(bad("sum", &v));
                }
                *s = if s.is_null() { v } else { binary(BinOp::Add, s.clone(), v)? };
            }
            Acc::Min(m) | Acc::Max(m) => {
                let is_min = func == AggFunc::Min;
                let replace = m.is_null()
                    || match v.compare(m) {
                        Some(o) => o != Ordering::Equal && (o == Ordering::Less) == is_min,
                        None => return Err(bad(if is_min { "min" } else { "max" }, &v)),
                    };
                if replace {
                    *m = v;
                }
            }
            Acc::Avg(s, n) => {
                let v = match v {
                    Datum::Int(i) => Datum::Float(i as f64),
                    Datum::Float(_) | Datum::Decimal(_) | Datum::Interval(_) => v,
                    other => return Err(bad("avg", &other)),
                };
                *s = if s.is_null() { v } else { binary(BinOp::Add, s.clone(), v)? };
                *n += 1;
            }
            Acc::Bool(b) => {
                let x = match v {
                    Datum::Bool(x) => x,
                    other => return Err(bad(if func == AggFunc::BoolAnd { "bool_and" } else { "bool_or" }, &other)),
                };
                *b = Some(match (*b, func) {
                    (None, _) => x,
                    (Some(y), AggFunc::BoolAnd) => x && y,
                    (Some(y), _) => x || y,
                });
            }
            Acc::Str(s) => {
                let text = match &v {
                    Datum::String(t) => t.clone(),
                    other => return Err(bad("string_agg", other)),
                };
                match s {
                    None => *s = Some(text),
                    Some(acc) => {
                        if let Some(Datum::String(sep)) = &sep {
                            acc.push_str(sep);
                        }
                        acc.push_str(&text);
                        if acc.len() > 64 << 20 {
                            return Err(SqlError::user(codes::LIMIT, "string_agg result exceeds 64 MiB"));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Datum, SqlError> {
        Ok(match self.acc {
            Acc::Count(n) => Datum::Int(n),
            Acc::Sum(d) | Acc::Min(d) | Acc::Max(d) => d,
            Acc::Avg(_, 0) => Datum::Null,
            Acc::Avg(s, n) => match s {
                Datum::Decimal(d) => binary(BinOp::Div, Datum::Decimal(d), Datum::Decimal(Decimal::from(n)))?,
                other => binary(BinOp::Div, other, Datum::Int(n))?,
            },
            Acc::Bool(b) => b.map(Datum::Bool).unwrap_or(Datum::Null),
            Acc::Str(s) => s.map(Datum::String).unwrap_or(Datum::Null),
        })
    }
}

/// GROUP BY + aggregates over `input` (of width `width`).
#[derive(Clone, Debug)]
pub struct AggNode {
    pub input: Rel,
    pub width: usize,
    pub group: Vec<Scalar>,
    pub aggs: Vec<AggSpec>,
    pub out: Option<std::vec::IntoIter<Row>>,
}

impl AggNode {
    pub async fn next<T: TxnClient>(&mut self, txn: &mut T, b: &Budget) -> Result<Option<Vec<Row>>, SqlError> {
        if self.out.is_none() {
            let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
            let mut groups: Vec<(Row, Vec<AccState>)> = Vec::new();
            let mut meter = Meter::default();
            if self.group.is_empty() {
                groups.push((vec![Datum::Null; self.width], self.aggs.iter().map(AccState::new).collect()));
                index.insert(Vec::new(), 0);
            }
            while let Some(rows) = self.input.next(txn, b).await? {
                for row in rows {
                    let mut gvals = Vec::with_capacity(self.group.len());
                    for g in &self.group {
                        gvals.push(eval_row(txn, b, g, &row).await?);
                    }
                    let gk = group_key(&gvals);
                    let gi = match index.get(&gk) {
                        Some(i) => *i,
                        None => {
                            meter.add(&row, b, "aggregation state")?;
                            groups.push((row.clone(), self.aggs.iter().map(AccState::new).collect()));
                            index.insert(gk, groups.len() - 1);
                            groups.len() - 1
                        }
                    };
                    for (i, spec) in self.aggs.iter().enumerate() {
                        let v = match &spec.arg {
                            Some(a) => eval_row(txn, b, a, &row).await?,
                            None => Datum::Null,
                        };
                        let sep = match &spec.sep {
                            Some(s) => Some(eval_row(txn, b, s, &row).await?),
                            None => None,
                        };
                        let Some(acc) = groups.get_mut(gi).and_then(|(_, accs)| accs.get_mut(i)) else { continue };
                        if acc.distinct.is_some() && !v.is_null() {
                            meter.add(std::slice::from_ref(&v), b, "aggregation state")?;
                        }
                        acc.add(spec.func, v, sep)?;
                    }
                }
            }
            let mut out = Vec::with_capacity(groups.len());
            for (mut rep, accs) in groups {
                for a in accs {
                    rep.push(a.finish()?);
                }
                out.push(rep);
            }
            self.out = Some(out.into_iter());
        }
        let batch: Vec<Row> = self.out.as_mut().map(|it| it.by_ref().take(PAGE).collect()).unwrap_or_default();
        Ok(if batch.is_empty() { None } else { Some(batch) })
    }
}
