//! Transaction control statements inside one request. The statements of a request always run
//! as one serializable transaction, committed when all of them succeed (by the node, after
//! [`crate::execute`] returns). So `BEGIN` / `START TRANSACTION` are accepted only as the first
//! statement and `COMMIT` / `END` only as the last, as no-ops (result tags `BEGIN` / `COMMIT`,
//! no rows). Any isolation level is accepted and runs as SERIALIZABLE, as CockroachDB does
//! (PostgreSQL's levels are all at most as strong); `READ ONLY` makes every statement of the
//! request that writes fail with 25006 before anything runs.
//!
//! Invariant: every refusal happens in [`check`], before any statement of the request runs, so a
//! request is never half applied. Refused with 0A000: `BEGIN` after the first statement (a
//! nested or second transaction), `COMMIT` before the last, `ROLLBACK` (the [`crate::TxnClient`]
//! has no way to discard a request's writes: not sending the request is the rollback),
//! savepoints, `SET TRANSACTION`, `AND CHAIN`, isolation level SNAPSHOT, and a schema change
//! (CREATE/DROP/ALTER of a database, table or index) with any other statement besides
//! `BEGIN`/`COMMIT`: a schema change commits on its own (catalog transactions, and CREATE INDEX
//! commits its backfill in chunks), so run with other statements it could leave them half
//! applied, and a retry of the request would run statements already committed a second time.

use crate::error::{SqlError, codes};
use sqlparser::ast::{Set, Statement, TransactionAccessMode, TransactionIsolationLevel, TransactionMode};

/// The result tag of a transaction control statement (which does nothing), or None for any
/// other statement.
pub(crate) fn tag(stmt: &Statement) -> Option<&'static str> {
    match stmt {
        Statement::StartTransaction { .. } => Some("BEGIN"),
        Statement::Commit { .. } => Some("COMMIT"),
        _ => None,
    }
}

fn refuse(msg: &str) -> SqlError {
    SqlError::user(codes::UNSUPPORTED, msg.to_string())
}

/// Whether a statement only reads.
fn read_only(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowCreate { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
    )
}

/// Whether a statement changes the schema: it commits on its own, outside the request's
/// transaction (module docs).
fn schema_change(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::CreateTable(_)
            | Statement::CreateDatabase { .. }
            | Statement::CreateIndex(_)
            | Statement::Drop { .. }
            | Statement::AlterTable(_)
            | Statement::AlterIndex { .. }
    )
}

/// Checks where a request's transaction control statements are, before any statement runs.
pub(crate) fn check(stmts: &[&Statement]) -> Result<(), SqlError> {
    let last = stmts.len().saturating_sub(1);
    if let Some(change) = stmts.iter().find(|s| schema_change(s))
        && stmts.iter().filter(|s| tag(s).is_none()).count() > 1
    {
        let text = change.to_string();
        let head: String = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_uppercase();
        return Err(refuse(&format!(
            "{head} must be the only statement of its request (BEGIN and COMMIT aside): a schema change commits on its own, so it cannot be part of a transaction with other statements; send it in a request of its own"
        )));
    }
    let mut read_only_txn = false;
    for (i, stmt) in stmts.iter().enumerate() {
        match stmt {
            Statement::StartTransaction { modes, modifier, statements, exception, has_end_keyword, .. } => {
                if i != 0 {
                    return Err(refuse(
                        "BEGIN is only accepted as the first statement of a request: a request is one transaction, and nested or further transactions in one request are not supported",
                    ));
                }
                if modifier.is_some() || !statements.is_empty() || exception.is_some() || *has_end_keyword {
                    return Err(refuse("unsupported BEGIN syntax"));
                }
                for m in modes {
                    match m {
                        TransactionMode::IsolationLevel(TransactionIsolationLevel::Snapshot) => {
                            return Err(refuse("isolation level SNAPSHOT is not supported"));
                        }
                        TransactionMode::IsolationLevel(_) | TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => {}
                        TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => read_only_txn = true,
                    }
                }
            }
            Statement::Commit { chain, modifier, .. } => {
                if i != last {
                    return Err(refuse(
                        "COMMIT is only accepted as the last statement of a request: a request is one transaction; send the statements after it in another request",
                    ));
                }
                if *chain || modifier.is_some() {
                    return Err(refuse("COMMIT AND CHAIN is not supported"));
                }
            }
            Statement::Rollback { savepoint: None, .. } => {
                return Err(refuse(
                    "ROLLBACK is not supported: the statements of a request are committed together when all succeed; to discard them, do not send the request",
                ));
            }
            Statement::Rollback { savepoint: Some(_), .. } | Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } => {
                return Err(refuse("savepoints are not supported"));
            }
            Statement::Set(Set::SetTransaction { .. }) => {
                return Err(refuse("SET TRANSACTION is not supported: use BEGIN [ISOLATION LEVEL ...] as the first statement"));
            }
            _ => {}
        }
    }
    if read_only_txn && let Some(w) = stmts.iter().find(|s| !read_only(s)) {
        let text = w.to_string();
        let head: String = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_uppercase();
        return Err(SqlError::user("25006", format!("cannot execute {head} in a read-only transaction")));
    }
    Ok(())
}
