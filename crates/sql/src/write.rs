//! Row writes for one table, shared by INSERT, UPSERT, UPDATE and DELETE: defaults (including
//! `unique_rowid()` for SERIAL), type coercion, NOT NULL (23502), CHECK constraints (23514),
//! primary-key and UNIQUE conflicts (23505), and maintenance of every index's entries.
//!
//! Invariants: a row's index entries (laid out by [`crate::index::entry`]) are written and
//! deleted in the same transaction as the row, following each index's state: `DeleteOnly`
//! indexes only lose entries, `WriteOnly` and `Public` ones are fully maintained and their
//! uniqueness checked. An update rewrites an entry only when its indexed values change.
//! Uniqueness is checked with `txn.get` against storage (which sees the statement's own earlier
//! writes); a conflict is 23505 `duplicate key value violates unique constraint "<name>"`.
//! Not handled: deferred constraints, foreign keys.

use crate::catalog::{IndexDesc, TableDesc};
use crate::datum::Datum;
use crate::encoding::{encode_row, row_key, rows_prefix};
use crate::error::{SqlError, codes};
use crate::eval::{eval, truth};
use crate::exec::Ctx;
use crate::expr::{Compiler, Scalar};
use crate::index;
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
        self.unique_conflict(txn, row, own, None).await
    }

    /// The first unique index (writable, and among those whose entry differs between `old` and
    /// `row` when `old` is given) holding an entry for `row`'s values that belongs to another row.
    async fn unique_conflict<T: TxnClient>(
        &self,
        txn: &mut T,
        row: &[Datum],
        own: Option<&[u8]>,
        old: Option<&[Datum]>,
    ) -> Result<Option<(String, Vec<u8>)>, SqlError> {
        let key = row_key(&self.table, row)?;
        for idx in self.table.indexes.iter().filter(|i| i.unique && i.writable()) {
            let Some((ik, _)) = index::entry(&self.table, idx, row)? else { continue };
            if let Some(old) = old
                && index::entry(&self.table, idx, old)?.is_some_and(|(k, _)| k == ik)
            {
                continue;
            }
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
        if let Some((name, _)) = self.unique_conflict(txn, row, None, None).await? {
            return Err(Self::duplicate(&name));
        }
        self.put_index_entries(txn, row)?;
        txn.put_absent(row_key(&self.table, row)?, encode_row(&self.table, row), Self::duplicate(&self.table.pkey_name())).await
    }

    /// Writes `row` and its index entries without any check (an UPSERT of every column of a
    /// table without indexes overwrites whatever is there).
    pub(crate) fn put<T: TxnClient>(&self, txn: &mut T, row: &[Datum]) -> Result<(), SqlError> {
        self.put_index_entries(txn, row)?;
        txn.put(row_key(&self.table, row)?, encode_row(&self.table, row));
        Ok(())
    }

    fn put_index_entries<T: TxnClient>(&self, txn: &mut T, row: &[Datum]) -> Result<(), SqlError> {
        for idx in self.table.indexes.iter().filter(|i| i.writable()) {
            if let Some((k, v)) = index::entry(&self.table, idx, row)? {
                txn.put(k, v);
            }
        }
        Ok(())
    }

    /// Deletes the entry `key` of `idx` written for the row whose primary-key suffix is `pk`.
    /// Once an index is public its unique entries belong to their rows; before that (during the
    /// backfill) two rows may share values, so the entry is deleted only if it is this row's.
    async fn delete_entry<T: TxnClient>(&self, txn: &mut T, idx: &IndexDesc, key: Vec<u8>, pk: &[u8]) -> Result<(), SqlError> {
        if idx.unique && !idx.is_public() && txn.get(&key).await?.is_some_and(|v| v != pk) {
            return Ok(());
        }
        txn.delete(key);
        Ok(())
    }

    /// Deletes a stored row and its index entries.
    pub async fn delete<T: TxnClient>(&self, txn: &mut T, row: &[Datum]) -> Result<(), SqlError> {
        let pk = index::pk_suffix(&self.table, row)?;
        for idx in &self.table.indexes {
            if let Some((k, _)) = index::entry(&self.table, idx, row)? {
                self.delete_entry(txn, idx, k, &pk).await?;
            }
        }
        txn.delete(row_key(&self.table, row)?);
        Ok(())
    }

    /// Replaces `old` by `new` in place (same primary key), checking constraints. Index entries
    /// are rewritten only where the indexed values changed.
    pub async fn update_in_place<T: TxnClient>(&self, txn: &mut T, old: &[Datum], new: &[Datum]) -> Result<(), SqlError> {
        self.validate(new)?;
        let key = row_key(&self.table, old)?;
        if let Some((name, _)) = self.unique_conflict(txn, new, Some(&key), Some(old)).await? {
            return Err(Self::duplicate(&name));
        }
        let pk = index::pk_suffix(&self.table, old)?;
        for idx in &self.table.indexes {
            let (before, after) = (index::entry(&self.table, idx, old)?, index::entry(&self.table, idx, new)?);
            if before == after {
                continue;
            }
            if let Some((k, _)) = before {
                self.delete_entry(txn, idx, k, &pk).await?;
            }
            if let Some((k, v)) = after.filter(|_| idx.writable()) {
                txn.put(k, v);
            }
        }
        txn.put(key, encode_row(&self.table, new));
        Ok(())
    }
}
