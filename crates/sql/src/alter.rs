//! ALTER TABLE: ADD COLUMN [DEFAULT / NOT NULL / UNIQUE / CHECK], DROP COLUMN, RENAME COLUMN,
//! RENAME TO. Descriptor changes go through `txn.update_table` (version + 1, optimistic); a
//! rename of the table through `txn.rename_table`.
//!
//! Invariants: no data is rewritten. A column added with a non-NULL DEFAULT stores the default's
//! value in `ColumnDesc::missing`, which rows written before read as; a NOT NULL column without
//! a default can only be added to an empty table (23502 otherwise), likewise UNIQUE and volatile
//! defaults (0A000). Dropping a column drops the indexes and checks that use it: public indexes
//! on it first go back to `WriteOnly` and propagate (as in DROP INDEX; this commits the
//! request's earlier writes), and their entries are deleted after the ALTER. CHECK expressions are rewritten on
//! RENAME COLUMN.
//! Not handled: ALTER COLUMN TYPE/SET DEFAULT, ADD CONSTRAINT, dropping primary-key columns.

use crate::catalog::{CheckDesc, IndexDesc, TableDesc};
use crate::ddl::{check_check, check_default, column_from_def, unique_name};
use crate::error::{SqlError, codes};
use crate::exec::{Ctx, QueryResult, load_table, table_ref};
use crate::expr::{Compiler, ident_name, unsupported};
use crate::rel::ScanNode;
use crate::txn::TxnClient;
use crate::write::parse_expr;
use sqlparser::ast::{AlterTable, AlterTableOperation, ColumnOption, RenameTableNameKind};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Rewrites identifier `old` to `new` in stored SQL text.
fn rename_ident(text: &str, old: &str, new: &str) -> Result<String, SqlError> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize().map_err(|e| SqlError::user(codes::SYNTAX, e.to_string()))?;
    let mut out = String::new();
    for t in tokens {
        match t {
            Token::Word(w) if (w.quote_style.is_none() && w.value.to_lowercase() == old) || (w.quote_style.is_some() && w.value == old) => {
                let simple = new.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                    && new.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                let id = if simple { sqlparser::ast::Ident::new(new) } else { sqlparser::ast::Ident::with_quote('"', new) };
                out.push_str(&id.to_string());
            }
            other => out.push_str(&other.to_string()),
        }
    }
    Ok(out)
}

async fn is_empty<T: TxnClient>(txn: &mut T, table: &TableDesc) -> Result<bool, SqlError> {
    let (start, end) = (crate::encoding::rows_prefix(table), meridian_types::keys::prefix_end(&crate::encoding::rows_prefix(table)));
    Ok(txn.scan(&start, &end, 1).await?.is_empty())
}

pub(crate) async fn alter_table<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, at: &AlterTable) -> Result<QueryResult, SqlError> {
    let (db, _) = table_ref(ctx, &at.name)?;
    let desc = match load_table(txn, ctx, &at.name).await {
        Ok(d) => d,
        Err(e) if at.if_exists && e.code() == codes::UNDEFINED_TABLE => return Ok(QueryResult::tag("ALTER TABLE", 0)),
        Err(e) => return Err(e),
    };
    // Indexes on dropped columns stop being read before they go.
    let dropped: Vec<u32> = at
        .operations
        .iter()
        .flat_map(|op| match op {
            AlterTableOperation::DropColumn { column_names, .. } => column_names.iter().collect(),
            _ => Vec::new(),
        })
        .filter_map(|n| desc.column_index(&ident_name(n)).filter(|p| !desc.primary_key.contains(p)).map(|p| desc.columns[p].id))
        .collect();
    let retired = crate::index_ddl::retire_indexes_on(txn, &db, &desc, &dropped).await?;
    if retired.is_empty() {
        return apply(txn, ctx, &db, desc, at).await;
    }
    let desc = load_table(txn, ctx, &at.name).await?;
    let name = desc.name.clone();
    let res = apply(txn, ctx, &db, desc, at).await;
    if res.is_err() {
        // The ALTER failed: the indexes, maintained all along, are readable again.
        crate::index_ddl::restore_public(txn, &db, &name, &retired).await?;
    }
    res
}

/// Applies the operations to `desc` and stores the result.
async fn apply<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, db: &str, mut desc: TableDesc, at: &AlterTable) -> Result<QueryResult, SqlError> {
    let db = db.to_string();
    let before = desc.clone();
    let version = desc.version;
    let mut rename_to: Option<String> = None;
    let mut changed = false;
    for op in &at.operations {
        match op {
            AlterTableOperation::AddColumn { if_not_exists, column_def, column_position: None, .. } => {
                let name = ident_name(&column_def.name);
                if desc.column_index(&name).is_some() {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(SqlError::user(
                        codes::DUPLICATE_COLUMN,
                        format!("column \"{name}\" of relation \"{}\" already exists", desc.name),
                    ));
                }
                let (mut col, serial) = column_from_def(desc.next_column_id, &name, &column_def.data_type.to_string())?;
                let empty = is_empty(txn, &desc).await?;
                if serial && !empty {
                    return Err(unsupported("adding a SERIAL column to a non-empty table"));
                }
                let mut unique = false;
                let mut checks = Vec::new();
                for opt in &column_def.options {
                    match &opt.option {
                        ColumnOption::Null => col.nullable = true,
                        ColumnOption::NotNull => col.nullable = false,
                        ColumnOption::Default(e) => {
                            let v = check_default(ctx, e, &col)?;
                            let volatile = e.to_string().to_lowercase();
                            if !empty && (volatile.contains("unique_rowid") || volatile.contains("gen_random_uuid")) {
                                return Err(unsupported("volatile DEFAULT on ADD COLUMN of a non-empty table"));
                            }
                            col.default = Some(e.to_string());
                            col.missing = if v.is_null() { None } else { Some(v.to_text()) };
                        }
                        ColumnOption::Unique(_) => unique = true,
                        ColumnOption::Check(ch) => checks.push((opt.name.as_ref().map(ident_name), ch.expr.as_ref().clone())),
                        other => return Err(unsupported(format!("column option {other} in ADD COLUMN"))),
                    }
                }
                if !col.nullable && col.missing.is_none() && !empty {
                    return Err(SqlError::user(
                        codes::NOT_NULL,
                        format!("column \"{name}\" of relation \"{}\" contains null values", desc.name),
                    ));
                }
                if unique && !empty {
                    return Err(unsupported("ADD COLUMN ... UNIQUE on a non-empty table"));
                }
                desc.next_column_id += 1;
                let col_id = col.id;
                desc.columns.push(col);
                if unique {
                    let id = desc.next_index_id;
                    desc.next_index_id += 1;
                    desc.indexes.push(IndexDesc::new(id, &unique_name(&desc.name, std::slice::from_ref(&name)), vec![col_id], true));
                }
                for (cname, e) in checks {
                    check_check(&desc, &e, ctx)?;
                    let cname = cname.unwrap_or_else(|| format!("{}_{name}_check", desc.name));
                    // Existing rows must satisfy it (they read the column's missing value).
                    if !empty {
                        let s = Compiler::for_table(&desc, None, &[], ctx.now).compile(&e)?;
                        let mut scan = ScanNode::new(desc.clone(), desc.name.clone());
                        scan.finalize()?;
                        while let Some(page) = scan.next_page(txn).await? {
                            for (_, row) in page {
                                if crate::eval::truth(&crate::eval::eval(&s, &row, &[])?, "CHECK")? == Some(false) {
                                    return Err(SqlError::user(
                                        codes::CHECK,
                                        format!("check constraint \"{cname}\" of relation \"{}\" is violated by some row", desc.name),
                                    ));
                                }
                            }
                        }
                    }
                    desc.checks.push(CheckDesc { name: cname, expr: e.to_string() });
                }
                changed = true;
            }
            AlterTableOperation::DropColumn { column_names, if_exists, .. } => {
                for n in column_names {
                    let name = ident_name(n);
                    let Some(pos) = desc.column_index(&name) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(SqlError::user(
                            codes::UNDEFINED_COLUMN,
                            format!("column \"{name}\" of relation \"{}\" does not exist", desc.name),
                        ));
                    };
                    if desc.primary_key.contains(&pos) {
                        return Err(SqlError::user(codes::UNSUPPORTED, format!("column \"{name}\" is referenced by the primary key")));
                    }
                    let id = desc.columns[pos].id;
                    // Checks that mention the column go with it.
                    let mut kept = Vec::new();
                    for ch in std::mem::take(&mut desc.checks) {
                        let s = Compiler::for_table(&desc, None, &[], ctx.now).compile(&parse_expr(&ch.expr)?)?;
                        if !s.columns().contains(&pos) {
                            kept.push(ch);
                        }
                    }
                    desc.checks = kept;
                    desc.indexes.retain(|i| !i.columns.contains(&id));
                    desc.columns.remove(pos);
                    desc.primary_key = desc.primary_key.iter().map(|&p| if p > pos { p - 1 } else { p }).collect();
                    changed = true;
                }
            }
            AlterTableOperation::RenameColumn { old_column_name, new_column_name } => {
                let (old, new) = (ident_name(old_column_name), ident_name(new_column_name));
                let Some(pos) = desc.column_index(&old) else {
                    return Err(SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{old}\" does not exist")));
                };
                if desc.column_index(&new).is_some() {
                    return Err(SqlError::user(
                        codes::DUPLICATE_COLUMN,
                        format!("column \"{new}\" of relation \"{}\" already exists", desc.name),
                    ));
                }
                desc.columns[pos].name = new.clone();
                for ch in &mut desc.checks {
                    ch.expr = rename_ident(&ch.expr, &old, &new)?;
                }
                changed = true;
            }
            AlterTableOperation::RenameTable { table_name: RenameTableNameKind::To(n) | RenameTableNameKind::As(n) } => {
                let (_, t) = table_ref(ctx, n)?;
                rename_to = Some(t);
            }
            other => return Err(unsupported(format!("ALTER TABLE {other}"))),
        }
    }
    if changed {
        desc.version = version + 1;
        txn.update_table(version, desc.clone()).await?;
        crate::index_ddl::delete_removed_entries(txn, &before, &desc).await?;
    }
    if let Some(new) = rename_to {
        txn.rename_table(&db, &desc.name, &new).await?;
    }
    Ok(QueryResult::tag("ALTER TABLE", 0))
}
