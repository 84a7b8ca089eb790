//! The SQL layer's error type: a SQLSTATE-coded user error or a storage error passed through.
//!
//! Invariant: every error a client can provoke is `SqlError::User` with a five-character SQLSTATE.
//! `Kv` errors are mapped to SQLSTATE classes by [`SqlError::code`]; the node decides whether to
//! retry them (e.g. `40001`) before they reach the client.

use meridian_types::KvError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SqlError {
    /// SQLSTATE + message; the client's fault.
    #[error("{message}")]
    User { code: &'static str, message: String },
    /// From storage; the node maps it.
    #[error("{0}")]
    Kv(KvError),
}

impl SqlError {
    pub fn user(code: &'static str, msg: impl Into<String>) -> Self {
        SqlError::User { code, message: msg.into() }
    }

    /// The SQLSTATE code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            SqlError::User { code, .. } => code,
            SqlError::Kv(e) if e.is_txn_retryable() => "40001",
            SqlError::Kv(KvError::Unavailable(_)) => "08006",
            SqlError::Kv(KvError::Timeout) => "57014",
            SqlError::Kv(KvError::KeyExists { .. }) => "23505",
            SqlError::Kv(_) => "XX000",
        }
    }
}

impl From<KvError> for SqlError {
    fn from(e: KvError) -> Self {
        SqlError::Kv(e)
    }
}

/// Shorthand for the common error codes.
pub mod codes {
    pub const SYNTAX: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_DATABASE: &str = "3D000";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const UNSUPPORTED: &str = "0A000";
    pub const INVALID_TEXT: &str = "22P02";
    pub const OUT_OF_RANGE: &str = "22003";
    pub const DIV_ZERO: &str = "22012";
    pub const NOT_NULL: &str = "23502";
    pub const UNIQUE: &str = "23505";
    pub const PROTOCOL: &str = "08P01";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const GROUPING: &str = "42803";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const CANNOT_CAST: &str = "42846";
    pub const INVALID_TABLE_DEF: &str = "42P16";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const STRING_TOO_LONG: &str = "22001";
    pub const CHECK: &str = "23514";
    pub const LIMIT: &str = "54000";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const CARDINALITY: &str = "21000";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DATETIME: &str = "22008";
    pub const DATETIME_FORMAT: &str = "22007";
    pub const INVALID_PARAM: &str = "22023";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const DEPENDENT: &str = "2BP01";
    pub const DUPLICATE_ALIAS: &str = "42712";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_errors_map_to_sqlstate_classes() {
        assert_eq!(SqlError::from(KvError::WriteConflict("x".into())).code(), "40001");
        assert_eq!(SqlError::from(KvError::Timeout).code(), "57014");
        assert_eq!(SqlError::from(KvError::Internal("x".into())).code(), "XX000");
        assert_eq!(SqlError::user("42601", "bad").code(), "42601");
        assert_eq!(SqlError::user("42601", "bad").to_string(), "bad");
    }
}
