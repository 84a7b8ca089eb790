//! Write statements: INSERT (VALUES with DEFAULT, DEFAULT VALUES, SELECT; ON CONFLICT DO
//! NOTHING / DO UPDATE with EXCLUDED; RETURNING), UPSERT (insert or replace by primary key),
//! UPDATE (FROM, RETURNING), DELETE (USING, RETURNING).
//!
//! Invariants: constraints are enforced by `write::Writer`; UPDATE evaluates assignments over
//! the old row; rows whose primary key changes are deleted first and re-inserted after the
//! scan, so `SET k = k + 1` over consecutive keys succeeds; a target row joined to several FROM
//! rows is updated once; an UPDATE whose rows are found through a secondary index reads them
//! all (bounded by the budget) before writing, since updated rows move within that index.
//! INSERT ... SELECT reads its whole source (bounded by the budget) before writing, so it never
//! sees its own rows. Correlated subqueries in UPDATE (WHERE, SET) and DELETE (WHERE) that read
//! the target table see it as it was before the statement: the statement's rows are computed
//! first (bounded by the budget) and written afterwards. RETURNING results are bounded by the
//! budget.
//! Not handled: ON CONFLICT ON CONSTRAINT, ORDER BY/LIMIT on UPDATE/DELETE, writable CTEs.

use crate::datum::Datum;
use crate::encoding::{decode_row, row_key};
use crate::error::{SqlError, codes};
use crate::eval::eval;
use crate::exec::{Column, Ctx, QueryResult, load_table};
use crate::expr::{Compiler, Scalar, ScopeCol, ident_name, table_scope, unsupported};
use crate::from::{apply_filter, finalize, is_default, plan_from};
use crate::query::{compile_full, plan_query};
use crate::rel::{Meter, Rel, Row, bind_rowids};
use crate::subquery::{eval_row, subqueries_read};
use crate::txn::TxnClient;
use crate::write::Writer;
use sqlparser::ast::{
    Assignment, AssignmentTarget, ConflictTarget, Delete, Expr, FromTable, Insert, ObjectName, OnConflictAction, OnInsert, SelectItem,
    SetExpr, TableFactor, TableObject, TableWithJoins, Update, UpdateTableFromKind,
};
use std::collections::HashSet;

fn column_of(w: &Writer, name: &ObjectName) -> Result<usize, SqlError> {
    let n = name.0.last().and_then(|p| p.as_ident()).map(ident_name).unwrap_or_default();
    w.table
        .column_index(&n)
        .ok_or_else(|| SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{n}\" of relation \"{}\" does not exist", w.table.name)))
}

/// RETURNING: compiled projection and its output columns.
struct Returning {
    exprs: Vec<Scalar>,
    columns: Vec<Column>,
    rows: Vec<Vec<serde_json::Value>>,
    meter: Meter,
}

impl Returning {
    fn new(items: Option<&Vec<SelectItem>>, scope: &[ScopeCol], ctx: &Ctx<'_>) -> Result<Option<Returning>, SqlError> {
        let Some(items) = items else {
            return Ok(None);
        };
        let mut c = Compiler::new(scope.to_vec(), ctx.args, ctx.now);
        let mut exprs = Vec::new();
        let mut columns = Vec::new();
        for item in items {
            let (name, s) = match item {
                SelectItem::UnnamedExpr(e) => (
                    match e {
                        Expr::Identifier(id) => ident_name(id),
                        Expr::CompoundIdentifier(p) => p.last().map(ident_name).unwrap_or_default(),
                        _ => "?column?".into(),
                    },
                    c.compile(e)?,
                ),
                SelectItem::ExprWithAlias { expr, alias } => (ident_name(alias), c.compile(expr)?),
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    for (i, col) in scope.iter().enumerate().filter(|(_, c)| !c.hidden) {
                        exprs.push(Scalar::Col(i));
                        columns.push(Column { name: col.name.clone(), ty: col.ty.map(|t| t.name()).unwrap_or("STRING").into() });
                    }
                    continue;
                }
                other => return Err(unsupported(format!("RETURNING item {other}"))),
            };
            if !c.subqueries.is_empty() {
                return Err(unsupported("subqueries in RETURNING"));
            }
            columns.push(Column { name, ty: c.ty(&s).map(|t| t.name()).unwrap_or("STRING").into() });
            exprs.push(s);
        }
        Ok(Some(Returning { exprs, columns, rows: Vec::new(), meter: Meter::default() }))
    }

    fn add(&mut self, row: &[Datum], ctx: &Ctx<'_>) -> Result<(), SqlError> {
        let vals = self.exprs.iter().map(|e| eval(e, row, &[])).collect::<Result<Vec<_>, _>>()?;
        self.meter.add(&vals, &ctx.budget, "RETURNING result")?;
        self.rows.push(vals.iter().map(Datum::to_json).collect());
        Ok(())
    }
}

fn finish(tag: &str, count: u64, ret: Option<Returning>) -> QueryResult {
    match ret {
        None => QueryResult::tag(tag, count),
        Some(r) => QueryResult { columns: r.columns, rows: r.rows, rows_affected: count, tag: tag.into() },
    }
}

/// ON CONFLICT DO UPDATE, compiled over (existing row ++ excluded row).
struct DoUpdate {
    sets: Vec<(usize, Scalar)>,
    filter: Option<Scalar>,
}

fn compile_sets(w: &Writer, c: &mut Compiler<'_>, assignments: &[Assignment]) -> Result<Vec<(usize, Scalar)>, SqlError> {
    let mut sets: Vec<(usize, Scalar)> = Vec::with_capacity(assignments.len());
    for a in assignments {
        let AssignmentTarget::ColumnName(name) = &a.target else {
            return Err(unsupported("tuple assignment"));
        };
        let col = column_of(w, name)?;
        if sets.iter().any(|(c, _)| *c == col) {
            return Err(SqlError::user(codes::SYNTAX, format!("multiple assignments to same column \"{}\"", w.table.columns[col].name)));
        }
        let s = if is_default(&a.value) { Scalar::Lit(Datum::Null) } else { c.compile(&a.value)? };
        sets.push((col, s));
    }
    Ok(sets)
}

pub(crate) async fn insert<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, ins: &Insert, upsert: bool) -> Result<QueryResult, SqlError> {
    if !ins.assignments.is_empty() || ins.overwrite || ins.partitioned.is_some() {
        return Err(unsupported("INSERT ... SET / OVERWRITE"));
    }
    let TableObject::TableName(name) = &ins.table else {
        return Err(unsupported("INSERT target"));
    };
    let w = Writer::new(load_table(txn, ctx, name).await?, ctx)?;
    let ncols = w.table.columns.len();
    let targets: Vec<usize> = if ins.columns.is_empty() {
        (0..ncols).collect()
    } else {
        let mut t = Vec::with_capacity(ins.columns.len());
        for c in &ins.columns {
            let n = c.0.last().and_then(|p| p.as_ident()).map(ident_name).unwrap_or_default();
            let i = w.table.column_index(&n).ok_or_else(|| {
                SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{n}\" of relation \"{}\" does not exist", w.table.name))
            })?;
            if t.contains(&i) {
                return Err(SqlError::user(codes::DUPLICATE_COLUMN, format!("column \"{n}\" specified more than once")));
            }
            t.push(i);
        }
        t
    };
    let alias = ins.table_alias.as_ref().map(|a| ident_name(&a.alias));
    let scope = table_scope(&w.table, alias.as_deref());
    let mut ret = Returning::new(ins.returning.as_ref(), &scope, ctx)?;
    // Conflict handling.
    let mut do_nothing = false;
    let mut do_update: Option<DoUpdate> = None;
    match &ins.on {
        None if upsert => {
            let sets = targets.iter().filter(|i| !w.table.primary_key.contains(i)).map(|&i| (i, Scalar::Col(ncols + i))).collect();
            do_update = Some(DoUpdate { sets, filter: None });
        }
        None => {}
        Some(OnInsert::OnConflict(oc)) => {
            if let Some(ConflictTarget::OnConstraint(_)) = &oc.conflict_target {
                return Err(unsupported("ON CONFLICT ON CONSTRAINT"));
            }
            if let Some(ConflictTarget::Columns(cols)) = &oc.conflict_target {
                let mut ids: Vec<u32> = Vec::new();
                for c in cols {
                    let n = ident_name(c);
                    let i = w
                        .table
                        .column_index(&n)
                        .ok_or_else(|| SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{n}\" does not exist")))?;
                    ids.push(w.table.columns[i].id);
                }
                ids.sort_unstable();
                let mut pk: Vec<u32> = w.table.primary_key.iter().filter_map(|&i| w.table.columns.get(i).map(|c| c.id)).collect();
                pk.sort_unstable();
                let matches_unique = w.table.indexes.iter().any(|ix| {
                    let mut c = ix.columns.clone();
                    c.sort_unstable();
                    ix.unique && ix.is_public() && c == ids
                });
                if ids != pk && !matches_unique {
                    return Err(SqlError::user(
                        "42P10",
                        "there is no unique or exclusion constraint matching the ON CONFLICT specification",
                    ));
                }
            }
            match &oc.action {
                OnConflictAction::DoNothing => do_nothing = true,
                OnConflictAction::DoUpdate(du) => {
                    if oc.conflict_target.is_none() {
                        return Err(SqlError::user("42601", "ON CONFLICT DO UPDATE requires inference specification or constraint name"));
                    }
                    let mut s2 = scope.clone();
                    s2.extend(table_scope(&w.table, Some("excluded")));
                    let mut c = Compiler::new(s2, ctx.args, ctx.now);
                    let sets = compile_sets(&w, &mut c, &du.assignments)?;
                    let filter = du.selection.as_ref().map(|e| c.compile(e)).transpose()?;
                    if !c.subqueries.is_empty() {
                        return Err(unsupported("subqueries in ON CONFLICT"));
                    }
                    do_update = Some(DoUpdate { sets, filter });
                }
            }
        }
        Some(other) => return Err(unsupported(format!("{other}"))),
    }
    // Source rows: per target column, Some(value) or None for DEFAULT.
    let mut source: Vec<Vec<Option<Datum>>> = Vec::new();
    match &ins.source {
        None => source.push(Vec::new()),
        Some(q) => match &*q.body {
            SetExpr::Values(values) if q.order_by.is_none() && q.limit_clause.is_none() && q.with.is_none() => {
                let mut c = Compiler::new(Vec::new(), ctx.args, ctx.now);
                for values_row in &values.rows {
                    let exprs = &values_row.content;
                    let implicit_prefix = ins.columns.is_empty() && exprs.len() < targets.len();
                    if exprs.len() != targets.len() && !implicit_prefix {
                        let msg = if exprs.len() > targets.len() {
                            "INSERT has more expressions than target columns"
                        } else {
                            "INSERT has more target columns than expressions"
                        };
                        return Err(SqlError::user(codes::SYNTAX, msg));
                    }
                    let mut vals = Vec::with_capacity(exprs.len());
                    for e in exprs {
                        vals.push(if is_default(e) {
                            None
                        } else {
                            let s = compile_full(txn, ctx, &mut c, e, &[]).await?;
                            Some(eval(&bind_rowids(&s, txn), &[], &[])?)
                        });
                    }
                    source.push(vals);
                }
            }
            _ => {
                let (mut rel, out) = plan_query(txn, ctx, q, &[]).await?;
                if out.len() > targets.len() {
                    return Err(SqlError::user(codes::SYNTAX, "INSERT has more expressions than target columns"));
                }
                if out.len() < targets.len() && !ins.columns.is_empty() {
                    return Err(SqlError::user(codes::SYNTAX, "INSERT has more target columns than expressions"));
                }
                for r in rel.collect(txn, &ctx.budget, "INSERT source").await? {
                    source.push(r.into_iter().map(Some).collect());
                }
            }
        },
    }
    // An UPSERT that sets every column of a table without secondary indexes replaces whatever
    // row is there without looking at it: a blind write, no read round trip.
    let blind_upsert = upsert && ins.on.is_none() && w.table.indexes.is_empty() && targets.len() == ncols;
    let mut count = 0u64;
    let mut source = source.into_iter().peekable();
    while source.peek().is_some() {
        // Rows are completed a batch at a time and the keys their conflict checks read are
        // prefetched together (one round trip instead of one per row). A row that cannot be
        // completed ends the batch; its error is returned when its turn comes, as row by row.
        let mut batch: Vec<Result<Row, SqlError>> = Vec::new();
        for vals in source.by_ref().take(PREFETCH_ROWS) {
            let r = complete_row(txn, &w, &targets, vals);
            let failed = r.is_err();
            batch.push(r);
            if failed {
                break;
            }
        }
        if batch.len() > 1 && !blind_upsert {
            // A plain INSERT's primary-key check rides on its write (`put_absent`): only
            // conflict handling needs the existing rows.
            let with_pk = do_nothing || do_update.is_some();
            let keys: Vec<Vec<u8>> = batch.iter().flatten().flat_map(|r| conflict_keys(&w, r, with_pk)).collect();
            if !keys.is_empty() {
                txn.prefetch(&keys).await?;
            }
        }
        for full in batch {
            let full = full?;
            if blind_upsert {
                w.validate(&full)?;
                w.put(txn, &full)?;
                if let Some(r) = ret.as_mut() {
                    r.add(&full, ctx)?;
                }
                count += 1;
                continue;
            }
            insert_row(txn, ctx, &w, full, upsert, do_nothing, do_update.as_ref(), ret.as_mut(), &mut count).await?;
        }
    }
    Ok(finish("INSERT", count, ret))
}

/// Rows per batch of INSERT conflict-check prefetches.
const PREFETCH_ROWS: usize = 1000;

/// A complete row from the values given for the target columns (None = DEFAULT).
fn complete_row<T: TxnClient>(txn: &mut T, w: &Writer, targets: &[usize], vals: Vec<Option<Datum>>) -> Result<Row, SqlError> {
    let ncols = w.table.columns.len();
    let mut row: Vec<Option<Datum>> = vec![None; ncols];
    for (&col, v) in targets.iter().zip(vals) {
        if let Some(v) = v {
            row[col] = Some(w.coerce(col, v)?);
        }
    }
    let mut full = Vec::with_capacity(ncols);
    for (i, v) in row.into_iter().enumerate() {
        full.push(match v {
            Some(v) => v,
            None => w.default_value(txn, i)?,
        });
    }
    Ok(full)
}

/// The keys the conflict checks of a new row read: its unique index entries and, `with_pk`, its
/// primary key.
fn conflict_keys(w: &Writer, row: &[Datum], with_pk: bool) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = if with_pk { row_key(&w.table, row).into_iter().collect() } else { Vec::new() };
    for idx in w.table.indexes.iter().filter(|i| i.unique && i.writable()) {
        if let Ok(Some((k, _))) = crate::index::entry(&w.table, idx, row) {
            keys.push(k);
        }
    }
    keys
}

/// Inserts one complete row, handling conflicts (DO NOTHING, DO UPDATE, UPSERT) and RETURNING.
#[allow(clippy::too_many_arguments)]
async fn insert_row<T: TxnClient>(
    txn: &mut T,
    ctx: &Ctx<'_>,
    w: &Writer,
    full: Row,
    upsert: bool,
    do_nothing: bool,
    do_update: Option<&DoUpdate>,
    mut ret: Option<&mut Returning>,
    count: &mut u64,
) -> Result<(), SqlError> {
    w.validate(&full)?;
    if (do_nothing || do_update.is_some())
        && let Some((name, existing_key)) = w.find_conflict(txn, &full, None).await?
    {
        let Some(du) = do_update else { return Ok(()) };
        if upsert && name != w.table.pkey_name() {
            return Err(SqlError::user(codes::UNIQUE, format!("duplicate key value violates unique constraint \"{name}\"")));
        }
        let Some(value) = txn.get(&existing_key).await? else { return Ok(()) };
        let old = decode_row(&w.table, &value)?;
        let mut combined = old.clone();
        combined.extend(full.iter().cloned());
        if let Some(f) = &du.filter
            && !crate::rel::passes(f, &combined)?
        {
            return Ok(());
        }
        let mut new = old.clone();
        for (col, s) in &du.sets {
            new[*col] = w.coerce(*col, eval(s, &combined, &[])?)?;
        }
        write_update(txn, w, &old, &new).await?;
        if let Some(r) = ret.as_mut() {
            r.add(&new, ctx)?;
        }
        *count += 1;
        return Ok(());
    }
    w.insert(txn, &full).await?;
    if let Some(r) = ret.as_mut() {
        r.add(&full, ctx)?;
    }
    *count += 1;
    Ok(())
}

/// Updates one row, moving it if its primary key changed.
async fn write_update<T: TxnClient>(txn: &mut T, w: &Writer, old: &[Datum], new: &[Datum]) -> Result<(), SqlError> {
    w.validate(new)?;
    if row_key(&w.table, old)? == row_key(&w.table, new)? {
        w.update_in_place(txn, old, new).await
    } else {
        w.delete(txn, old).await?;
        w.insert(txn, new).await
    }
}

/// Plans target ++ extra FROM tables with the WHERE clause pushed down.
async fn plan_target<T: TxnClient>(
    txn: &mut T,
    ctx: &Ctx<'_>,
    target: &TableWithJoins,
    extra: &[TableWithJoins],
    selection: Option<&Expr>,
) -> Result<(Rel, Vec<ScopeCol>), SqlError> {
    if !target.joins.is_empty() || !matches!(target.relation, TableFactor::Table { args: None, .. }) {
        return Err(unsupported("joins in the target of UPDATE/DELETE"));
    }
    let mut all = vec![target.clone()];
    all.extend(extra.iter().cloned());
    let (mut rel, scope) = plan_from(txn, ctx, &all, &[]).await?;
    let mut c_args = Compiler::new(scope.clone(), ctx.args, ctx.now);
    if let Some(w) = selection {
        let f = compile_full(txn, ctx, &mut c_args, w, &[]).await?;
        rel = apply_filter(rel, f);
    }
    let types: Vec<_> = scope.iter().map(|s| s.ty).collect();
    finalize(&mut rel, &types)?;
    Ok((rel, scope))
}

pub(crate) async fn update<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, up: &Update) -> Result<QueryResult, SqlError> {
    if !up.order_by.is_empty() || up.limit.is_some() || up.or.is_some() {
        return Err(unsupported("UPDATE with ORDER BY, LIMIT or OR"));
    }
    let TableFactor::Table { name, .. } = &up.table.relation else {
        return Err(unsupported("UPDATE target"));
    };
    let w = Writer::new(load_table(txn, ctx, name).await?, ctx)?;
    let from: Vec<TableWithJoins> = match &up.from {
        None => Vec::new(),
        Some(UpdateTableFromKind::AfterSet(f) | UpdateTableFromKind::BeforeSet(f)) => f.clone(),
    };
    let (mut rel, scope) = plan_target(txn, ctx, &up.table, &from, up.selection.as_ref()).await?;
    if crate::index_plan::uses_secondary_index(&rel) {
        // Updated rows move within the index being read: read them all first.
        rel = Rel::Rows { rows: rel.collect(txn, &ctx.budget, "UPDATE target rows").await?, done: false };
    }
    let mut c = Compiler::new(scope.clone(), ctx.args, ctx.now);
    let mut sets = compile_sets(&w, &mut c, &up.assignments)?;
    {
        let mut targets: Vec<&mut Scalar> = sets.iter_mut().map(|(_, s)| s).collect();
        crate::query::resolve_subqueries(txn, ctx, &mut c, &mut targets, &[]).await?;
    }
    let defaults: Vec<bool> = up.assignments.iter().map(|a| is_default(&a.value)).collect();
    let mut ret = Returning::new(up.returning.as_ref(), &scope, ctx)?;
    let ncols = w.table.columns.len();
    // Correlated subqueries reading the target table must see it as it was before the statement
    // (as in PostgreSQL): then every new row is computed before anything is written.
    let snapshot = subqueries_read(&rel, &sets.iter().map(|(_, s)| s).collect::<Vec<_>>(), w.table.id);
    let mut buffered: Vec<(Row, Row)> = Vec::new();
    let mut meter = Meter::default();
    let mut moved: Vec<Row> = Vec::new();
    let mut done: HashSet<Vec<u8>> = HashSet::new();
    let mut count = 0u64;
    while let Some(rows) = rel.next(txn, &ctx.budget).await? {
        for combined in rows {
            let old: Row = combined[..ncols.min(combined.len())].to_vec();
            let key = row_key(&w.table, &old)?;
            if !from.is_empty() && !done.insert(key.clone()) {
                continue;
            }
            let mut new = old.clone();
            for ((col, s), is_def) in sets.iter().zip(&defaults) {
                let v = if *is_def {
                    w.default_value(txn, *col)?
                } else {
                    let s = bind_rowids(s, txn);
                    eval_row(txn, &ctx.budget, &s, &combined).await?
                };
                new[*col] = w.coerce(*col, v)?;
            }
            // Constraints first: a NULL primary key must be 23502, not a key-encoding failure.
            w.validate(&new)?;
            count += 1;
            if let Some(r) = ret.as_mut() {
                let mut out = new.clone();
                out.extend(combined.get(ncols..).unwrap_or_default().iter().cloned());
                r.add(&out, ctx)?;
            }
            if snapshot {
                meter.add(&new, &ctx.budget, "UPDATE rows computed before writing")?;
                buffered.push((old, new));
            } else {
                apply_update(txn, &w, &old, new, &mut moved).await?;
            }
        }
    }
    for (old, new) in buffered {
        apply_update(txn, &w, &old, new, &mut moved).await?;
    }
    for row in moved {
        w.insert(txn, &row).await?;
    }
    Ok(finish("UPDATE", count, ret))
}

/// Writes one updated row in place, or deletes it and queues it for re-insertion (in `moved`)
/// when its primary key changed.
async fn apply_update<T: TxnClient>(txn: &mut T, w: &Writer, old: &[Datum], new: Row, moved: &mut Vec<Row>) -> Result<(), SqlError> {
    if row_key(&w.table, &new)? == row_key(&w.table, old)? {
        w.update_in_place(txn, old, &new).await
    } else {
        w.delete(txn, old).await?;
        moved.push(new);
        Ok(())
    }
}

pub(crate) async fn delete<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, del: &Delete) -> Result<QueryResult, SqlError> {
    if !del.order_by.is_empty() || del.limit.is_some() || !del.tables.is_empty() {
        return Err(unsupported("DELETE with ORDER BY, LIMIT or several targets"));
    }
    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &del.from;
    let [target] = from.as_slice() else {
        return Err(unsupported("DELETE from several tables"));
    };
    let TableFactor::Table { name, .. } = &target.relation else {
        return Err(unsupported("DELETE target"));
    };
    let w = Writer::new(load_table(txn, ctx, name).await?, ctx)?;
    let using = del.using.clone().unwrap_or_default();
    let (mut rel, scope) = plan_target(txn, ctx, target, &using, del.selection.as_ref()).await?;
    let mut ret = Returning::new(del.returning.as_ref(), &scope, ctx)?;
    let ncols = w.table.columns.len();
    // As for UPDATE: subqueries reading the target table see it as it was before the statement.
    let snapshot = subqueries_read(&rel, &[], w.table.id);
    let mut buffered: Vec<Row> = Vec::new();
    let mut meter = Meter::default();
    let mut done: HashSet<Vec<u8>> = HashSet::new();
    let mut count = 0u64;
    while let Some(rows) = rel.next(txn, &ctx.budget).await? {
        for combined in rows {
            let old = &combined[..ncols.min(combined.len())];
            if !done.insert(row_key(&w.table, old)?) {
                continue;
            }
            if snapshot {
                meter.add(old, &ctx.budget, "DELETE rows found before writing")?;
                buffered.push(old.to_vec());
            } else {
                w.delete(txn, old).await?;
            }
            if let Some(r) = ret.as_mut() {
                r.add(&combined, ctx)?;
            }
            count += 1;
        }
    }
    for old in buffered {
        w.delete(txn, &old).await?;
    }
    Ok(finish("DELETE", count, ret))
}
