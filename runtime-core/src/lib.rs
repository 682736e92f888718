//! Tempo's host runtime: the engine, artifact loading, the [`Service`] trait, linking, and the
//! [`LiveComponent`] that triggers take each unit of work from.
//!
//! It knows no concrete service beyond base WASI; `services/*` crates implement [`Service`].
//!
//! ```no_run
//! use tempo_runtime_core::{EngineSettings, InstanceSettings, Runtime, artifact::Artifact, run_command};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let (engine, loaded) = Artifact::open("app.wasm".as_ref(), EngineSettings::default(), false)?;
//! let runtime = Runtime::new(engine);
//! let version = runtime.prepare(&loaded.component, InstanceSettings::named("app"))?;
//! let exit_code = run_command(&version).await?;
//! # let _ = exit_code; Ok(()) }
//! ```

pub mod admission;
pub mod artifact;
mod command;
pub mod context;
mod engine;
mod escape;
mod guest_output;
mod interface;
pub mod limits;
mod live;
pub mod metrics;
pub mod names;
mod once;
pub mod outcome;
pub mod parts;
mod request_id;
mod runtime;
mod service;
pub mod settings;
mod state;
pub mod trace_context;
mod version;
mod wasi;
mod work;

pub use admission::{Admission, Demand, Slots};
pub use command::{cli_run_export, is_cli_run, run_command};
pub use context::{LazyBackend, ServiceContext, ServiceData, ServiceView};
pub use engine::{
    Compiler, Concurrency, EngineSettings, EpochTicker, Pooling, compatibility_hash,
    default_cache_dir,
};
pub use escape::escape_guest_text;
pub use guest_output::GUEST_LOG_TARGET;
pub use interface::InterfaceName;
pub use limits::InstanceLimits;
pub use live::LiveComponent;
pub use once::OnceSet;
pub use request_id::RequestId;
pub use runtime::{PrepareError, Runtime};
pub use service::{
    AnyTrigger, ContextView, PreparedAny, Running, ServeWith, Service, SharedService, Starting,
    Trigger,
};
pub use state::{GuestStdio, InstanceSettings, State};
pub use version::Version;
pub use wasi::{WASI_VERSION, WasiService};

/// Makes ring rustls' process-wide provider, once: every TLS of tempo's goes through it, and
/// reqwest clients (OTLP export, OCI registries) find no provider otherwise.
pub fn install_crypto_provider() {
    // Only the first call installs; a provider already installed stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The tracing target of the host's events an operator should see without asking for them
/// (a certificate replaced while serving): shown at `info` where the host's other events show
/// from `warn`.
pub const NOTICE_LOG_TARGET: &str = "tempo::notice";
pub use work::{CurrentWork, Work};

/// Re-exported so services link against the same wasmtime.
pub use wasmtime;
