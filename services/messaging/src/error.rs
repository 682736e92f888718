//! What a messaging call can fail with.

/// An error of a messaging host function: what the guest sees, or a trap for host bugs.
#[derive(Debug, thiserror::Error)]
pub enum MsgError {
    /// No reply in time.
    #[error("no reply in time")]
    Timeout,
    /// The broker cannot be reached.
    #[error("{0}")]
    Connection(String),
    /// Not allowed.
    #[error("{0}")]
    PermissionDenied(String),
    /// Anything else: a bad subject, a limit.
    #[error("{0}")]
    Other(String),
    /// A host bug or a broken resource handle: the instance traps.
    #[error("{0}")]
    Trap(wasmtime::Error),
}

tempo_runtime_core::trap_on_wasmtime_errors!(MsgError::Trap);
