//! The databases a guest's statements run on: SQLite files ([`embedded`], confined by
//! [`sandbox`]) and PostgreSQL servers ([`postgres`], whose statements [`placeholders`]
//! rewrites).

pub(crate) mod embedded;
mod placeholders;
pub(crate) mod postgres;
pub(crate) mod sandbox;

use std::sync::Arc;
use std::time::Instant;

use crate::result;
use crate::{Bounds, Failure, Statement};

/// Waits for `work` until `deadline`, if there is one: past it, the request the statement was
/// made for is being stopped.
pub(crate) async fn until<T>(
    deadline: Option<Instant>,
    work: impl Future<Output = T>,
) -> Result<T, Failure> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), work)
            .await
            .map_err(|_| Failure::out_of_time()),
        None => Ok(work.await),
    }
}

/// A database as the host functions see it.
#[async_trait::async_trait]
pub(crate) trait Database: Send + Sync {
    /// A connection of the guest's own, until it drops it: a transaction it begins stays on it.
    async fn connect(&self, deadline: Option<Instant>) -> Result<Arc<dyn Session>, Failure>;
}

/// One connection a guest holds.
#[async_trait::async_trait]
pub(crate) trait Session: Send + Sync {
    /// The rows of `statement`, within `bounds`, one [`result::Cell`] per column of each row.
    async fn query(
        &self,
        statement: &Statement,
        bounds: Bounds,
        deadline: Option<Instant>,
    ) -> Result<Vec<result::Cell>, Failure>;

    /// Runs `statement`; how many rows it changed.
    async fn exec(&self, statement: &Statement, deadline: Option<Instant>) -> Result<u64, Failure>;
}
