//! Meridian's SQL layer: parses statements (PostgreSQL dialect via `sqlparser`), plans them
//! against the table catalog, and runs them through a [`TxnClient`] supplied by the node.
//!
//! Invariants:
//! - This crate does no I/O of its own: every catalog and data access goes through [`TxnClient`].
//! - Errors caused by the client (bad SQL, bad arguments, constraint violations) are always
//!   [`SqlError::User`] with a SQLSTATE code; nothing derived from client input panics.
//! - The row storage layout is owned by [`encoding`]; span planning by [`plan`].
//!
//! Pipeline: `exec` parses and dispatches (`txn_control` places BEGIN/COMMIT); `query`/`from`
//! plan SELECTs into a [`rel::Rel`] tree (streaming operators, bounded by [`ExecOptions`]);
//! `subquery` plans subqueries (correlated ones are re-run per distinct outer values, cached);
//! `dml`, `ddl`, `alter`, `show` handle the other statements. See the module docs of [`exec`] for
//! the exact SQL surface.
//! Secondary indexes: entry layout in [`index`], selection in [`index_plan`], reads in
//! `index_scan`, CREATE/DROP INDEX (online, with backfill) in `index_ddl`, maintenance in `write`.
//! Not handled: foreign keys, window functions, recursive CTEs, ROLLBACK and savepoints.

pub mod catalog;
pub mod datum;
pub mod encoding;
pub mod error;
pub mod eval;
pub mod exec;
pub mod expr;
pub mod func;
pub mod index;
pub mod index_plan;
pub mod plan;
pub mod rel;
pub mod temporal;
pub mod testing;
pub mod txn;

mod aggregate;
mod alter;
mod ddl;
mod dml;
mod explain;
mod from;
mod index_ddl;
mod index_scan;
mod join;
mod parse_cache;
mod query;
mod show;
mod split_at;
mod subquery;
mod txn_control;
mod write;
pub mod zone;

pub use catalog::{CheckDesc, ColumnDesc, DatabaseDesc, IndexDesc, SqlType, TableDesc};
pub use datum::Datum;
pub use error::SqlError;
pub use exec::{Column, ExecOptions, QueryResult, execute};
pub use txn::{RangeInfo, TxnClient};

#[cfg(test)]
mod tests;
