//! `wasi:blobstore@0.2.0-draft` (blobstore, container, types) for tempo, with two backends:
//!
//! - **embedded**: a folder per container under the project's state folder, a file per object,
//!   written atomically; no setup, and the data survives reloads and restarts;
//! - **nats**: a NATS JetStream object store per container, readable by any NATS client.
//!
//! ```no_run
//! use tempo_blobstore::{BlobstoreBackend, BlobstoreConfig, BlobstoreService};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let config = BlobstoreConfig {
//!     backend: BlobstoreBackend::Embedded { dir: ".tempo/blobstore".into() },
//!     ..BlobstoreConfig::default()
//! };
//! let service = BlobstoreService::start(config).await?;
//! # let _ = service; Ok(()) }
//! ```

mod access;
mod backend;
mod error;
mod host;
pub mod settings;
mod values;

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use tempo_nats::NatsServer;
use tempo_runtime_core::{LazyBackend, SharedService};

pub use access::check_container_name;
pub use error::BlobError;
pub use host::{ContainerHandle, IncomingValue, ObjectNames, OutgoingValue};
pub use settings::{BlobstoreArgs, BlobstoreToml};

/// The largest object accepted by default: 16 MiB.
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 16 << 20;

/// Where the blobs live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobstoreBackend {
    /// A folder per container below `dir`.
    Embedded {
        /// The folder of containers.
        dir: PathBuf,
    },
    /// JetStream object stores on this NATS server, whose connection other services may share.
    Nats(NatsServer),
}

/// How the service is set up.
#[derive(Clone, Debug)]
pub struct BlobstoreConfig {
    /// Where the blobs live.
    pub backend: BlobstoreBackend,
    /// The largest object a guest may write or read, in bytes.
    pub max_object_bytes: usize,
    /// The containers guests may use (`[blobstore] containers`), or `None` for any with a valid
    /// name. On NATS, listed object stores are granted even when tempo did not create them.
    pub containers: Option<Vec<String>>,
}

impl Default for BlobstoreConfig {
    fn default() -> Self {
        Self {
            backend: BlobstoreBackend::Embedded {
                dir: PathBuf::from(".tempo").join("blobstore"),
            },
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            containers: None,
        }
    }
}

/// What every instance shares: the configuration and the backend, opened on first need.
pub struct Shared {
    backend: BlobstoreBackend,
    max_object_bytes: usize,
    grants: Arc<access::Grants>,
    /// The backend: the folder, or NATS connected.
    blobs: LazyBackend<Arc<dyn backend::Blobs>>,
}

tempo_runtime_core::service_context!(Shared = "wasi:blobstore");

/// Opens `backend`, storing objects of up to `max_object_bytes`.
async fn open_blobs(
    backend: BlobstoreBackend,
    max_object_bytes: usize,
    grants: Arc<access::Grants>,
) -> anyhow::Result<Arc<dyn backend::Blobs>> {
    Ok(match &backend {
        BlobstoreBackend::Embedded { dir } => {
            Arc::new(backend::embedded::Embedded::open(dir, max_object_bytes)?)
        }
        BlobstoreBackend::Nats(server) => {
            Arc::new(backend::nats::Nats::connect(server, max_object_bytes, &grants).await?)
        }
    })
}

/// The `wasi:blobstore` service.
pub struct BlobstoreService {
    shared: Arc<Shared>,
}

impl BlobstoreService {
    /// A service for `config`; nothing is opened until a component that imports it runs.
    pub fn new(config: BlobstoreConfig) -> Self {
        let grants = Arc::new(access::Grants::new(config.containers.as_deref()));
        Self {
            shared: Arc::new(Shared {
                blobs: LazyBackend::new({
                    let (backend, grants) = (config.backend.clone(), grants.clone());
                    move || open_blobs(backend.clone(), config.max_object_bytes, grants.clone())
                }),
                backend: config.backend,
                max_object_bytes: config.max_object_bytes,
                grants,
            }),
        }
    }

    /// A service for `config` with its backend opened now.
    pub async fn start(config: BlobstoreConfig) -> anyhow::Result<Self> {
        let service = Self::new(config);
        service.shared.blobs.get().await?;
        Ok(service)
    }
}

impl SharedService for BlobstoreService {
    tempo_runtime_core::shared_service! {
        context: Shared, link: host::add_to_linker,
        interfaces: ["blobstore", "container", "types"] @ "0.2.0-draft",
    }

    fn describe(&self) -> String {
        let backend = match &self.shared.backend {
            BlobstoreBackend::Embedded { dir } => format!("embedded, in {}", dir.display()),
            BlobstoreBackend::Nats(server) => {
                format!(
                    "NATS JetStream object stores at {}{}",
                    server.url(),
                    server.replicas_described()
                )
            }
        };
        format!("{backend}; {}", self.shared.grants.describe())
    }

    fn open(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { self.shared.blobs.get().await.map(drop) })
    }
}
