//! Row writes for one table, shared by INSERT, UPSERT, UPDATE and DELETE: defaults (including
//! `unique_rowid()` for SERIAL), type coercion, NOT NULL (23502), CHECK constraints (23514),
//! primary-key and UNIQUE conflicts (23505), and maintenance of unique index entries.
//!
//! Invariants: a row's index entries are written and deleted together with the row; an entry
//! exists iff all its indexed values are non-NULL; uniqueness is checked with `txn.get` against
//! storage (which sees the statement's own earlier writes).
//! Not handled: deferred constraints, foreign keys, non-unique indexes.

use crate::catalog::TableDesc;
use crate::datum::Datum;
use crate::encoding::{encode_row, index_key, row_key, rows_prefix};
use crate::error::{SqlError, codes};
use crate::eval::{eval, truth};
use crate::exec::Ctx;
use crate::expr::{Compiler, Scalar};
use crate::rel::bind_rowids;
use crate::txn::TxnClient;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Parses stored SQL expression text (defaults, checks).
pub(crate) fn parse_expr(text: &str) -> Result<sqlparser::ast::Expr, SqlError> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::user(codes::SYNTAX, format!("invalid stored expression {text}: {e}")))
}

pub(crate) struct Writer {
    pub table: TableDesc,
    defaults: Vec<Option<Scalar>>,
    checks: Vec<(String, Scalar)>,
}

impl Writer {
    pub fn new(table: TableDesc, ctx: &Ctx<'_>) -> Result<Writer, SqlError> {
        let mut defaults = Vec::with_capacity(table.columns.len());
        for c in &table.columns {
            defaults.push(match &c.default {
                None => None,
                Some(text) => Some(Compiler::new(Vec::new(), &[], ctx.now).compile(&parse_expr(text)?)?),
            });
        }
        let mut checks = Vec::with_capacity(table.checks.len());
        for ch in &table.checks {
            let s = Compiler::for_table(&table, None, &[], ctx.now).compile(&parse_expr(&ch.expr)?)?;
            checks.push((ch.name.clone(), s));
        }
        Ok(Writer { table, defaults, checks })
    }

    /// The default of column `i` (NULL if none), coerced to the column's type.
    pub fn default_value<T: TxnClient>(&self, txn: &mut T, i: usize) -> Result<Datum, SqlError> {
        let (Some(Some(d)), Some(col)) = (self.defaults.get(i), self.table.columns.get(i)) else {
            return Ok(Datum::Null);
        };
        eval(&bind_rowids(d, txn), &[], &[])?.coerce(&col.spec(), &col.name)
    }

    /// Coerces `v` into column `i`.
    pub fn coerce(&self, i: usize, v: Datum) -> Result<Datum, SqlError> {
        match self.table.columns.get(i) {
            Some(c) => v.coerce(&c.spec(), &c.name),
            None => Err(SqlError::user(codes::UNDEFINED_COLUMN, "column out of range")),
        }
    }

    /// NOT NULL and CHECK constraints of a complete row.
    pub fn validate(&self, row: &[Datum]) -> Result<(), SqlError> {
        for (c, d) in self.table.columns.iter().zip(row) {
            if !c.nullable && d.is_null() {
                return Err(SqlError::user(
                    codes::NOT_NULL,
                    format!("null value in column \"{}\" of relation \"{}\" violates not-null constraint", c.name, self.table.name),
                ));
            }
        }
        for (name, s) in &self.checks {
            if truth(&eval(s, row, &[])?, "CHECK")? == Some(false) {
                return Err(SqlError::user(
                    codes::CHECK,
                    format!("new row for relation \"{}\" violates check constraint \"{name}\"", self.table.name),
                ));
            }
        }
        Ok(())
    }

    /// The first constraint `row` conflicts with (ignoring the row stored at `own`), as
    /// (constraint name, key of the existing row).
    pub async fn find_conflict<T: TxnClient>(
        &self,
        txn: &mut T,
        row: &[Datum],
        own: Option<&[u8]>,
    ) -> Result<Option<(String, Vec<u8>)>, SqlError> {
        let key = row_key(&self.table, row)?;
        if own != Some(key.as_slice()) && txn.get(&key).await?.is_some() {
            return Ok(Some((self.table.pkey_name(), key)));
        }
        for idx in self.table.indexes.iter().filter(|i| i.unique) {
            let Some(ik) = index_key(&self.table, idx, row)? else { continue };
            if let Some(pk_suffix) = txn.get(&ik).await? {
                let mut existing = rows_prefix(&self.table);
                existing.extend_from_slice(&pk_suffix);
                if own != Some(existing.as_slice()) && existing != key {
                    return Ok(Some((idx.name.clone(), existing)));
                }
            }
        }
        Ok(None)
    }

    fn duplicate(name: &str) -> SqlError {
        SqlError::user(codes::UNIQUE, format!("duplicate key value violates unique constraint \"{name}\""))
    }

    /// Writes a new row after checking every constraint. Unique indexes are checked by reads
    /// now; the primary key by a write conditional on the key being absent (`put_absent`), which
    /// the storage layer may evaluate at commit instead of with a read round trip first.
    pub async fn insert<T: TxnClient>(&self, txn: &mut T, row: &[Datum]) -> Result<(), SqlError> {
        self.validate(row)?;
        let key = row_key(&self.table, row)?;
        for idx in self.table.indexes.iter().filter(|i| i.unique) {
            let Some(ik) = index_key(&self.table, idx, row)? else { continue };
            if let Some(pk_suffix) = txn.get(&ik).await? {
                let mut existing = rows_prefix(&self.table);
                existing.extend_from_slice(&pk_suffix);
                if existing != key {
                    return Err(Self::duplicate(&idx.name));
                }
            }
        }
        self.put_index_entries(txn, &key, row)?;
        txn.put_absent(key, encode_row(&self.table, row), Self::duplicate(&self.table.pkey_name())).await
    }

    /// Writes `row` and its index entries without any check (the caller did them, or an
    /// UPSERT on a table without indexes overwrites whatever is there).
    pub(crate) fn put<T: TxnClient>(&self, txn: &mut T, row: &[Datum]) -> Result<(), SqlError> {
        let key = row_key(&self.table, row)?;
        self.put_index_entries(txn, &key, row)?;
        txn.put(key, encode_row(&self.table, row));
        Ok(())
    }

    fn put_index_entries<T: TxnClient>(&self, txn: &mut T, key: &[u8], row: &[Datum]) -> Result<(), SqlError> {
        let prefix_len = rows_prefix(&self.table).len();
        for idx in self.table.indexes.iter().filter(|i| i.unique) {
            if let Some(ik) = index_key(&self.table, idx, row)? {
                txn.put(ik, key.get(prefix_len..).unwrap_or_default().to_vec());
            }
        }
        Ok(())
    }

    /// Deletes a stored row and its index entries.
    pub fn delete<T: TxnClient>(&self, txn: &mut T, row: &[Datum]) -> Result<(), SqlError> {
        for idx in self.table.indexes.iter().filter(|i| i.unique) {
            if let Some(ik) = index_key(&self.table, idx, row)? {
                txn.delete(ik);
            }
        }
        txn.delete(row_key(&self.table, row)?);
        Ok(())
    }

    /// Replaces `old` by `new` in place (same primary key), checking constraints.
    pub async fn update_in_place<T: TxnClient>(&self, txn: &mut T, old: &[Datum], new: &[Datum]) -> Result<(), SqlError> {
        self.validate(new)?;
        let key = row_key(&self.table, old)?;
        if let Some((name, _)) = self.find_conflict(txn, new, Some(&key)).await? {
            return Err(Self::duplicate(&name));
        }
        for idx in self.table.indexes.iter().filter(|i| i.unique) {
            if let Some(ik) = index_key(&self.table, idx, old)? {
                txn.delete(ik);
            }
        }
        self.put(txn, new)
    }
}
