//! Meridian's SQL layer: parses statements (PostgreSQL dialect via `sqlparser`), plans them
//! against the table catalog, and runs them through a [`TxnClient`] supplied by the node.
//!
//! Invariants:
//! - This crate does no I/O of its own: every catalog and data access goes through [`TxnClient`].
//! - Errors caused by the client (bad SQL, bad arguments, constraint violations) are always
//!   [`SqlError::User`] with a SQLSTATE code; nothing derived from client input panics.
//! - The row storage layout is owned by [`encoding`]; span planning by [`plan`].
//!
//! Not handled: joins, subqueries, secondary indexes, schema changes (ALTER), RETURNING,
//! ON CONFLICT. See the module docs of [`exec`] for the exact SQL surface.

pub mod catalog;
pub mod datum;
pub mod encoding;
pub mod error;
pub mod eval;
pub mod exec;
pub mod expr;
pub mod plan;
pub mod testing;
pub mod txn;

mod ddl;
mod dml;
mod query;

pub use catalog::{ColumnDesc, DatabaseDesc, SqlType, TableDesc};
pub use datum::Datum;
pub use error::SqlError;
pub use exec::{Column, QueryResult, execute};
pub use txn::TxnClient;

#[cfg(test)]
mod tests;
