//! Artifacts on disk: `.wasm` components and tempo's AOT-compiled `.bin` files.
//!
//! A tempo `.bin` is wasmtime's precompiled code behind a small header:
//!
//! ```text
//! offset  size  field
//!      0     8  magic "TEMPOAOT"
//!      8     4  format version (u32 LE)
//!     12     8  compatibility hash of the engine that compiled it (u64 LE)
//!     20     8  payload length (u64 LE)
//!     28    32  SHA-256 of the payload
//!     60     2  producer length (u16 LE), then the producer, e.g. "tempo 0.1.0 (wasmtime 48.0.8)"
//!      …        payload: the output of `Engine::precompile_component`
//! ```
//!
//! The header lets a load refuse, with a sentence that says why, a file from another engine
//! configuration, a truncated copy or a doctored one, before wasmtime maps any of it as code.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::engine::{EngineSettings, compatibility_hash};

const MAGIC: &[u8; 8] = b"TEMPOAOT";
const FORMAT_VERSION: u32 = 1;
const FIXED_HEADER_LEN: usize = 62;
/// Where the header holds the compatibility hash.
const HASH_AT: usize = 12;

/// Who wrote a `.bin`; shown when an engine refuses it.
fn producer() -> String {
    format!(
        "tempo {} (wasmtime {})",
        env!("CARGO_PKG_VERSION"),
        wasmtime_version()
    )
}

/// The wasmtime version this build links, as recorded in `.bin` headers.
pub fn wasmtime_version() -> &'static str {
    // Pinned with `=` in the workspace manifest; a test holds it to Cargo.lock.
    "48.0.8"
}

/// Why an artifact could not be loaded or compiled. Each message is one sentence naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The output could not be written.
    #[error("cannot write `{path}`: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// A core module where a component was expected.
    #[error(
        "`{path}` is a core WebAssembly module, not a component: build it for wasm32-wasip2 (`cargo tempo build`)"
    )]
    CoreModule {
        /// The file.
        path: PathBuf,
    },
    /// Looks like a component but wasmtime rejects it.
    #[error("`{path}` is not a valid WebAssembly component: {reason}")]
    InvalidComponent {
        /// The file.
        path: PathBuf,
        /// Wasmtime's reason.
        reason: String,
    },
    /// Precompiled by plain wasmtime (`wasmtime compile`), without tempo's header.
    #[error(
        "`{path}` was precompiled by wasmtime, not by tempo: compile the `.wasm` with `cargo tempo compile`"
    )]
    ForeignPrecompiled {
        /// The file.
        path: PathBuf,
    },
    /// A `.bin` from an engine configured differently (another tempo or wasmtime version, or
    /// other settings).
    #[error(
        "`{path}` was compiled by {producer} for a different engine configuration: recompile its `.wasm` with `cargo tempo compile`"
    )]
    OtherEngine {
        /// The file.
        path: PathBuf,
        /// The producer recorded in the file.
        producer: String,
    },
    /// A `.bin` written in a format this tempo does not read.
    #[error(
        "`{path}` is a tempo `.bin` of format {found}, this tempo reads format {FORMAT_VERSION}: recompile its `.wasm` with `cargo tempo compile`"
    )]
    OtherFormat {
        /// The file.
        path: PathBuf,
        /// The format version in the file.
        found: u32,
    },
    /// Shorter than its header says.
    #[error(
        "`{path}` is truncated ({actual} bytes where its header promises {expected}): recompile its `.wasm` with `cargo tempo compile`"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes present.
        actual: u64,
        /// Bytes promised.
        expected: u64,
    },
    /// Its checksum does not match.
    #[error(
        "`{path}` is corrupted (its checksum does not match its contents): recompile its `.wasm` with `cargo tempo compile`"
    )]
    Corrupted {
        /// The file.
        path: PathBuf,
    },
    /// Precompiled code in a file whose name does not say so.
    #[error(
        "`{path}` holds precompiled native code, which tempo loads only from a file named `*.bin`: rename it, or pass `--allow-precompiled` if you trust it as you would an executable"
    )]
    PrecompiledName {
        /// The file.
        path: PathBuf,
    },
    /// Neither wasm nor a `.bin`.
    #[error("`{path}` is not a WebAssembly component nor a tempo `.bin` ({what})")]
    Unrecognized {
        /// The file.
        path: PathBuf,
        /// What was seen instead.
        what: String,
    },
}

/// How a loaded component came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArtifactKind {
    /// Deserialized from a tempo `.bin`.
    Precompiled,
    /// Compiled from a `.wasm` component (or taken from the compile cache).
    Compiled,
}

/// A component ready to be linked.
pub struct Loaded {
    /// The component.
    pub component: Component,
    /// Whether it came from a `.bin` or a `.wasm`.
    pub kind: ArtifactKind,
    /// How long reading and loading took.
    pub elapsed: Duration,
}

/// A `.wasm` component or a tempo `.bin`, read once: it tells which engine it needs
/// ([`EngineSettings::for_artifact`]), then is loaded or compiled for that engine.
pub struct Artifact {
    path: PathBuf,
    bytes: Vec<u8>,
    /// How long reading took, counted in what loading and compiling report.
    read_in: Duration,
}

/// A file known good as a file: a component, or a `.bin` whose name, header and checksum hold.
/// Only whether the engine can run it is left to check.
enum Checked<'a> {
    /// A `.wasm` component.
    Component(&'a [u8]),
    /// A `.bin`'s payload, with what its header records.
    Precompiled {
        payload: &'a [u8],
        engine_hash: u64,
        producer: String,
    },
}

impl Artifact {
    /// Reads the file at `path`.
    pub fn read(path: &Path) -> Result<Self, ArtifactError> {
        let start = Instant::now();
        let bytes = read(path)?;
        Ok(Self {
            path: path.to_owned(),
            bytes,
            read_in: start.elapsed(),
        })
    }

    /// Reads the file at `path`, builds the engine it needs from `settings`
    /// ([`EngineSettings::for_artifact`]) and loads it into that engine: the sequence `run` and
    /// `test` begin with.
    pub fn open(
        path: &Path,
        settings: EngineSettings,
        allow_precompiled: bool,
    ) -> anyhow::Result<(Engine, Loaded)> {
        let artifact = Self::read(path)?;
        let engine = settings.for_artifact(&artifact).build()?;
        let loaded = artifact.load(&engine, allow_precompiled)?;
        Ok((engine, loaded))
    }

    /// Whether the file is a tempo `.bin` (by its contents, not its name).
    pub fn is_precompiled(&self) -> bool {
        self.bytes.starts_with(MAGIC)
    }

    /// The compatibility hash a `.bin`'s header records: that of the engine that compiled it.
    /// `None` for anything else, or a file too short to hold one.
    pub fn engine_hash(&self) -> Option<u64> {
        if !self.is_precompiled() {
            return None;
        }
        let bytes = self.bytes.get(HASH_AT..HASH_AT + 8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    /// Whether the file is a component that is valid only with the component model's async ABI
    /// (WASI 0.3). Function bodies are not validated (wasmtime does that when it compiles): what
    /// the async ABI adds (`stream` and `future` types, async lifts and lowers, task builtins) is
    /// all in the component's own sections.
    pub fn uses_async_abi(&self) -> bool {
        let mut features = wasmparser::WasmFeatures::default();
        features.remove(wasmparser::WasmFeatures::CM_ASYNC);
        let mut validator = wasmparser::Validator::new_with_features(features);
        for payload in wasmparser::Parser::new(0).parse_all(&self.bytes) {
            let Ok(payload) = payload else {
                return false;
            };
            if validator.payload(&payload).is_err() {
                return true;
            }
        }
        false
    }

    /// Loads the component into `engine`: a `.bin` is deserialized, a `.wasm` compiled.
    ///
    /// A `.bin` is native code, run as the host runs: it is loaded only from a file named
    /// `*.bin`, unless `allow_precompiled` (`--allow-precompiled`), so that a file whose name
    /// promises a sandboxed module never runs as native code.
    pub fn load(&self, engine: &Engine, allow_precompiled: bool) -> Result<Loaded, ArtifactError> {
        let start = Instant::now();
        let path = self.path.as_path();
        let (component, kind) = match self.check(allow_precompiled)? {
            Checked::Component(bytes) => {
                let component =
                    Component::new(engine, bytes).map_err(|err| invalid(path, err.into()))?;
                (component, ArtifactKind::Compiled)
            }
            Checked::Precompiled {
                payload,
                engine_hash,
                producer,
            } => {
                if engine_hash != compatibility_hash(engine) {
                    return Err(ArtifactError::OtherEngine {
                        path: path.to_owned(),
                        producer,
                    });
                }
                (
                    deserialize(engine, path, payload)?,
                    ArtifactKind::Precompiled,
                )
            }
        };
        Ok(Loaded {
            component,
            kind,
            elapsed: self.read_in + start.elapsed(),
        })
    }

    /// AOT-compiles the component for `engine` and writes a tempo `.bin` to `out`.
    ///
    /// The file is written beside `out` under a temporary name and renamed into place, so a
    /// process that has `out` loaded (or a reader racing the write) never sees a partial file.
    pub fn compile(&self, engine: &Engine, out: &Path) -> Result<Compiled, ArtifactError> {
        let start = Instant::now();
        let (wasm, bytes) = (self.path.as_path(), self.bytes.as_slice());
        if self.is_precompiled() {
            return Err(ArtifactError::Unrecognized {
                path: wasm.to_owned(),
                what: "it is already a tempo `.bin`; compile its `.wasm` instead".into(),
            });
        }
        check_component(wasm, bytes)?;
        let payload = engine
            .precompile_component(bytes)
            .map_err(|err| invalid(wasm, err.into()))?;
        let file = encode_bin(engine, &payload);
        write_atomically(out, &file).map_err(|error| ArtifactError::Write {
            path: out.to_owned(),
            error,
        })?;
        Ok(Compiled {
            bytes: file.len() as u64,
            elapsed: self.read_in + start.elapsed(),
        })
    }

    /// Everything about the file that needs no engine: its name, its kind, a `.bin`'s header
    /// and checksum.
    fn check(&self, allow_precompiled: bool) -> Result<Checked<'_>, ArtifactError> {
        let (path, bytes) = (self.path.as_path(), self.bytes.as_slice());
        if !self.is_precompiled() {
            check_component(path, bytes)?;
            return Ok(Checked::Component(bytes));
        }
        if !allow_precompiled && !is_bin_name(path) {
            return Err(ArtifactError::PrecompiledName {
                path: path.to_owned(),
            });
        }
        check_bin(path, bytes)
    }
}

/// Whether `path` has the name precompiled code may be loaded from: `*.bin`.
pub fn is_bin_name(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "bin")
}

/// What [`Artifact::compile`] wrote.
#[derive(Debug)]
pub struct Compiled {
    /// Size of the `.bin`.
    pub bytes: u64,
    /// Time spent compiling and writing.
    pub elapsed: Duration,
}

/// Checks that the file at `path` is a WebAssembly component, naming what it is otherwise.
pub fn ensure_component(path: &Path) -> Result<(), ArtifactError> {
    check_component(path, &read(path)?)
}

/// Checks that `bytes`, read from `path`, hold a component, naming what they hold otherwise.
pub fn check_component(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    if wasmparser::Parser::is_component(bytes) {
        return Ok(());
    }
    let path = path.to_owned();
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(ArtifactError::CoreModule { path });
    }
    if Engine::detect_precompiled(bytes).is_some() {
        return Err(ArtifactError::ForeignPrecompiled { path });
    }
    let what = if bytes.is_empty() {
        "it is empty".to_owned()
    } else if bytes.starts_with(b"\0asm") {
        "it has a WebAssembly header of an unknown version".to_owned()
    } else if bytes.trim_ascii_start().starts_with(b"(") {
        "it looks like WebAssembly text; tempo runs binary components".to_owned()
    } else {
        let mut start = String::from("it starts with");
        for byte in bytes.iter().take(8) {
            let _ = write!(start, " {byte:02x}");
        }
        start
    };
    Err(ArtifactError::Unrecognized { path, what })
}

/// Validates a `.bin`'s header and checksum, and returns its payload with what the header records.
fn check_bin<'a>(path: &Path, bytes: &'a [u8]) -> Result<Checked<'a>, ArtifactError> {
    let path_buf = || path.to_owned();
    let truncated = |expected: u64| ArtifactError::Truncated {
        path: path_buf(),
        actual: bytes.len() as u64,
        expected,
    };
    if bytes.len() < FIXED_HEADER_LEN {
        return Err(truncated(FIXED_HEADER_LEN as u64));
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    let format = u32_at(8);
    if format != FORMAT_VERSION {
        return Err(ArtifactError::OtherFormat {
            path: path_buf(),
            found: format,
        });
    }
    let hash = u64_at(HASH_AT);
    let payload_len = u64_at(20);
    let checksum = &bytes[28..60];
    let producer_len = u16::from_le_bytes([bytes[60], bytes[61]]) as usize;
    let header_len = FIXED_HEADER_LEN + producer_len;
    let expected = (header_len as u64).saturating_add(payload_len);
    if (bytes.len() as u64) < expected {
        return Err(truncated(expected));
    }
    if (bytes.len() as u64) > expected {
        return Err(ArtifactError::Corrupted { path: path_buf() });
    }
    let producer = String::from_utf8_lossy(&bytes[FIXED_HEADER_LEN..header_len]).into_owned();
    let payload = &bytes[header_len..];
    if Sha256::digest(payload).as_slice() != checksum {
        return Err(ArtifactError::Corrupted { path: path_buf() });
    }
    Ok(Checked::Precompiled {
        payload,
        engine_hash: hash,
        producer,
    })
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path, payload: &[u8]) -> Result<Component, ArtifactError> {
    // SAFETY: `Component::deserialize` trusts its input to be wasmtime's own output for a
    // compatible engine. `check_bin` established both: the payload's SHA-256 matches the one
    // recorded when tempo compiled it, and the engine's compatibility hash matches. wasmtime
    // checks its version and settings again below. A `.bin` is code, trusted like an executable.
    let component = unsafe { Component::deserialize(engine, payload) };
    component.map_err(|err| ArtifactError::OtherEngine {
        path: path.to_owned(),
        producer: format!("an incompatible engine ({})", root_message(&err.into())),
    })
}

fn encode_bin(engine: &Engine, payload: &[u8]) -> Vec<u8> {
    let producer = producer();
    let producer = &producer.as_bytes()[..producer.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(FIXED_HEADER_LEN + producer.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&compatibility_hash(engine).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(payload));
    out.extend_from_slice(&(producer.len() as u16).to_le_bytes());
    out.extend_from_slice(producer);
    out.extend_from_slice(payload);
    out
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".tempo-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_data()?;
    file.persist(path).map_err(|err| err.error)?;
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, ArtifactError> {
    std::fs::read(path).map_err(|error| ArtifactError::Read {
        path: path.to_owned(),
        error,
    })
}

fn invalid(path: &Path, err: anyhow::Error) -> ArtifactError {
    ArtifactError::InvalidComponent {
        path: path.to_owned(),
        reason: root_message(&err),
    }
}

/// The innermost cause's first line: wasmtime's errors carry long chains and backtraces.
fn root_message(err: &anyhow::Error) -> String {
    let root = err.root_cause().to_string();
    root.lines().next().unwrap_or_default().trim().to_owned()
}
