//! What a keyvalue call can fail with.

/// An error of a keyvalue host function: what the guest sees, or a trap for host bugs.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The bucket is not one the configuration declares.
    #[error("no such bucket")]
    NoSuchStore,
    /// Not allowed.
    #[error("access denied")]
    AccessDenied,
    /// Anything else: a limit, a bad counter, the backend failing.
    #[error("{0}")]
    Other(String),
    /// A host bug or a broken resource handle: the instance traps.
    #[error("{0}")]
    Trap(wasmtime::Error),
}

tempo_runtime_core::trap_on_wasmtime_errors!(KvError::Trap);
