//! What a statement can fail with.

/// Why a statement failed; each becomes an error the guest gets.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The database refused or failed the statement, or the guest's input was wrong.
    #[error("{0}")]
    Refused(String),
    /// The result was over a bound; `limit` names it for the metrics.
    #[error("{message}")]
    Limit {
        /// `sql-rows` or `sql-bytes`.
        limit: &'static str,
        /// What the guest reads.
        message: String,
    },
    /// The database could not be reached.
    #[error("{0}")]
    Unavailable(String),
}

impl Failure {
    /// A statement stopped because the request it was made for ran out of time.
    pub(crate) fn out_of_time() -> Self {
        Self::Refused(
            "the statement was stopped: the request it was made for ran out of time".into(),
        )
    }
}
