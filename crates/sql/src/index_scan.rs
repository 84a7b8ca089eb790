//! Executing an [`IndexPlan`]: pages of index entries, then either rows decoded from the entries
//! (index-only) or the rows themselves, fetched by primary key with one batched read per page.
//!
//! Invariants: spans are read in order, so rows come out in index order; a page holds at most
//! [`PAGE`] entries (the first one at most the plan's limit hint); the scan resumes after the
//! last entry read. An entry whose row is missing is skipped (the row is gone; the caller's
//! filter is applied to the rows returned either way).

use crate::catalog::TableDesc;
use crate::encoding::decode_row;
use crate::error::SqlError;
use crate::index::decode_entry;
use crate::index_plan::IndexPlan;
use crate::rel::{PAGE, Row};
use crate::txn::TxnClient;
use meridian_types::keys;

/// The next page of (row key, row) pairs read through `plan`; None when exhausted. `resume` is
/// the first key not yet read (None before the first page).
pub(crate) async fn next_page<T: TxnClient>(
    txn: &mut T,
    table: &TableDesc,
    plan: &IndexPlan,
    resume: &mut Option<Vec<u8>>,
    done: &mut bool,
) -> Result<Option<Vec<(Vec<u8>, Row)>>, SqlError> {
    if *done {
        return Ok(None);
    }
    let want = match resume {
        None => plan.limit_hint.unwrap_or(PAGE).clamp(1, PAGE),
        Some(_) => PAGE,
    };
    let mut entries = Vec::new();
    let mut more = false;
    for (start, end) in &plan.spans {
        let from = match resume.as_ref() {
            Some(r) if r >= end => continue,
            Some(r) if r > start => r.clone(),
            _ => start.clone(),
        };
        let room = want - entries.len();
        let page = txn.scan(&from, end, room).await?;
        let full = page.len() == room;
        entries.extend(page);
        if full {
            more = true;
            break;
        }
    }
    match entries.last() {
        Some((k, _)) if more => *resume = Some(keys::key_next(k)),
        _ => *done = true,
    }
    let mut out = Vec::with_capacity(entries.len());
    if plan.covering {
        for (k, v) in &entries {
            out.push(decode_entry(table, &plan.index, k, v)?);
        }
        return Ok(Some(out));
    }
    let mut row_keys = Vec::with_capacity(entries.len());
    for (k, v) in &entries {
        row_keys.push(decode_entry(table, &plan.index, k, v)?.0);
    }
    let values = txn.get_many(&row_keys).await?;
    for (k, v) in row_keys.into_iter().zip(values) {
        if let Some(v) = v {
            let row = decode_row(table, &v)?;
            out.push((k, row));
        }
    }
    Ok(Some(out))
}
