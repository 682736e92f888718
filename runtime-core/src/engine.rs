//! One settings struct builds the `wasmtime::Engine`, for AOT compilation and for running alike,
//! so that a `.bin` always matches the engine that loads it.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::{
    Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy,
    PoolingAllocationConfig, Strategy,
};

use crate::artifact::Artifact;

/// How instances get their memories and tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pooling {
    /// Use the pooling allocator when the machine has the address space for it.
    #[default]
    Auto,
    /// Always allocate on demand (slower per instance, no up-front reservation).
    Off,
}

/// Which code generator compiles guests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compiler {
    /// Optimising: slower to compile, faster code. Every `.bin` is compiled with it.
    #[default]
    Cranelift,
    /// Baseline: compiles several times faster, runs slower. For the dev loop, where the compile
    /// sits between an edit and its first response and the code runs briefly.
    Winch,
}

/// Whether the engine runs components that use the component model's async ABI.
///
/// WASI 0.3 components (`stream`, `future`, async exports such as `wasi:http/handler@0.3.0`) need
/// it. It is off unless a component needs it because it costs every call: with it on, wasmtime
/// runs each export call as a task under its concurrent event loop, and a WASI 0.2 hello serves
/// 12-20% fewer requests per second (`bench/ab.sh`). It changes compiled code, so it is part of a
/// `.bin`'s compatibility hash; [`EngineSettings::for_artifact`] chooses what a file needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Concurrency {
    /// Synchronous components only (WASI 0.2): every call takes wasmtime's direct path.
    #[default]
    Off,
    /// Async components too (WASI 0.3), with their interfaces linked beside WASI 0.2's.
    On,
}

/// Everything that decides how the engine is configured.
///
/// Settings that change compiled code (CPU features, tunables, wasm features) are fixed here and
/// not exposed, so that every engine tempo builds on one machine accepts every `.bin` tempo
/// compiled there. What may vary (pooling, caching, capacity) does not affect compiled code; the
/// [`Compiler`] does, and `.bin` files are always compiled with Cranelift.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// The code generator.
    pub compiler: Compiler,
    /// Whether WASI 0.3 (async) components can run.
    pub concurrency: Concurrency,
    /// Instance allocation strategy.
    pub pooling: Pooling,
    /// How many component instances may be alive at once (pooling allocator only).
    pub max_instances: usize,
    /// Where wasmtime caches code compiled from `.wasm` files; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            compiler: Compiler::Cranelift,
            concurrency: Concurrency::Off,
            pooling: Pooling::Auto,
            max_instances: crate::admission::DEFAULT_MAX_INSTANCES,
            cache_dir: default_cache_dir(),
        }
    }
}

/// The user's cache folder for compiled code: `$TEMPO_CACHE_DIR`, else e.g. `~/.cache/tempo/wasmtime`.
pub fn default_cache_dir() -> Option<PathBuf> {
    match std::env::var_os("TEMPO_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::cache_dir().map(|dir| dir.join("tempo").join("wasmtime")),
    }
}

/// Bytes of each pooled linear memory kept resident between uses.
const KEEP_RESIDENT: usize = 2 << 20;

/// Core wasm instances a Rust `wasm32-wasip2` component creates: the program, the WASI adapter and
/// the shim that ties their tables together.
const CORE_INSTANCES_PER_COMPONENT: u32 = 3;

impl EngineSettings {
    /// These settings, adjusted to what `artifact` needs:
    /// - [`Concurrency::On`] for a `.wasm` that uses the component model's async ABI (WASI 0.3),
    ///   or a `.bin` compiled by such an engine; [`Concurrency::Off`] otherwise, and for a file
    ///   that is neither or that another engine compiled (loading it then says what is wrong);
    /// - no compile cache for a `.bin`, which holds compiled code already: the cache's worker
    ///   thread would only cost its start.
    pub fn for_artifact(self, artifact: &Artifact) -> Self {
        let needs_concurrency = match artifact.engine_hash() {
            Some(recorded) => {
                let concurrent = Self {
                    concurrency: Concurrency::On,
                    ..self.clone()
                };
                concurrent.code_hash().ok() == Some(recorded)
            }
            None => artifact.uses_async_abi(),
        };
        Self {
            concurrency: if needs_concurrency {
                Concurrency::On
            } else {
                Concurrency::Off
            },
            cache_dir: self.cache_dir.filter(|_| !artifact.is_precompiled()),
            ..self
        }
    }

    /// Builds the engine described by these settings.
    pub fn build(&self) -> Result<Engine> {
        let mut config = self.code_config();
        if let Some(dir) = &self.cache_dir {
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            match Cache::new(cache) {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                // A cache is an optimisation: a read-only home folder must not stop tempo.
                Err(err) => tracing::warn!(
                    "compile cache disabled: cannot use `{}`: {err:#}",
                    dir.display()
                ),
            }
        }
        let pooled = self.use_pooling();
        if pooled {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(self.pooling_config()));
        }
        Engine::new(&config).map_err(anyhow::Error::from).with_context(|| {
            if pooled {
                format!(
                    "failed to create the wasm engine with a pool of {} instances (`max-instances`)",
                    self.max_instances
                )
            } else {
                "failed to create the wasm engine".to_owned()
            }
        })
    }

    /// The compatibility hash of the engine these settings build, without building its pool.
    pub fn code_hash(&self) -> Result<u64> {
        Ok(compatibility_hash(&Engine::new(&self.code_config())?))
    }

    /// The part of the configuration that decides what compiled code looks like.
    fn code_config(&self) -> Config {
        let concurrent = self.concurrency == Concurrency::On;
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .wasm_component_model_async(concurrent)
            .concurrency_support(concurrent)
            // Guests yield to the executor at each epoch tick, so a busy guest never starves
            // others; the same ticks will enforce timeouts.
            .epoch_interruption(true)
            // Copy-on-write memory images cost more than they save for small, short-lived
            // instances, whose memory is reset by memset anyway (see KEEP_RESIDENT).
            .memory_init_cow(false)
            .parallel_compilation(true)
            .strategy(match self.compiler {
                Compiler::Cranelift => Strategy::Cranelift,
                Compiler::Winch => Strategy::Winch,
            });
        config
    }

    fn use_pooling(&self) -> bool {
        match self.pooling {
            Pooling::Off => false,
            Pooling::Auto => pooling_fits_address_space(),
        }
    }

    fn pooling_config(&self) -> PoolingAllocationConfig {
        let instances = u32::try_from(self.max_instances.max(1)).unwrap_or(u32::MAX);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .total_memories(instances)
            .total_tables(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .max_tables_per_component(CORE_INSTANCES_PER_COMPONENT)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT * 4)
            // One async stack per call in flight.
            .total_stacks(instances)
            // Reset a slot's memory in place rather than with a madvise, whose TLB shootdown
            // interrupts every core. A Rust guest starts at 17 pages (1 MiB of stack plus data),
            // so 1 MiB would always leave a tail to madvise: 7.5k req/s with 1 MiB, 16.5k with
            // 2 MiB (hello-http on 2 cores, bench/http.sh).
            .linear_memory_keep_resident(KEEP_RESIDENT)
            // And reset only the pages the instance dirtied (Linux 6.7+, else a plain memset of
            // the resident part): 16.5k -> 20.3k req/s.
            .pagemap_scan(Enabled::Auto)
            .table_keep_resident(1 << 16);
        pool
    }
}

/// Whether this machine can reserve the address space the pooling allocator wants, probed the way
/// `wasmtime serve` does: by reserving a 2^42-byte memory. Some aarch64 and riscv64 systems have
/// only 39 bits of virtual address space.
fn pooling_fits_address_space() -> bool {
    const BITS_TO_TEST: u32 = 42;
    let probe = || -> wasmtime::Result<bool> {
        let mut config = Config::new();
        config
            .wasm_memory64(true)
            .memory_reservation(1 << BITS_TO_TEST);
        let engine = Engine::new(&config)?;
        let mut store = wasmtime::Store::new(&engine, ());
        let ty = wasmtime::MemoryType::new64(0, Some(1 << (BITS_TO_TEST - 16)));
        Ok(wasmtime::Memory::new(&mut store, ty).is_ok())
    };
    let fits = probe().unwrap_or(false);
    if !fits {
        tracing::info!("pooling allocator off: not enough virtual address space");
    }
    fits
}

/// A stable fingerprint of everything in `engine` that compiled code depends on.
pub fn compatibility_hash(engine: &Engine) -> u64 {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

/// Increments the engine's epoch on a fixed period for as long as it lives.
///
/// Running guests check the epoch and yield to the async executor at every tick, so a guest in a
/// long computation cannot hold a runtime thread hostage.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often guests yield (and, later, how finely timeouts are measured).
pub(crate) const EPOCH_PERIOD: Duration = Duration::from_millis(10);

impl EpochTicker {
    /// Starts ticking `engine`'s epoch every [`EPOCH_PERIOD`].
    pub fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("tempo-epoch".into())
            .spawn({
                let (engine, stop) = (engine.clone(), stop.clone());
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_PERIOD);
                        engine.increment_epoch();
                    }
                }
            })
            .ok();
        if thread.is_none() {
            tracing::warn!("could not start the epoch thread: guests will not yield");
        }
        Self { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_does_not_change_compiled_code() {
        let settings = |pooling| EngineSettings {
            pooling,
            cache_dir: None,
            ..EngineSettings::default()
        };
        let pooled = settings(Pooling::Auto).build().unwrap();
        let on_demand = settings(Pooling::Off).build().unwrap();
        assert_eq!(compatibility_hash(&pooled), compatibility_hash(&on_demand));
        assert_eq!(
            settings(Pooling::Auto).code_hash().unwrap(),
            compatibility_hash(&pooled)
        );
    }

    #[test]
    fn concurrency_changes_compiled_code() {
        let hash = |concurrency| {
            EngineSettings {
                concurrency,
                ..EngineSettings::default()
            }
            .code_hash()
            .unwrap()
        };
        assert_ne!(hash(Concurrency::Off), hash(Concurrency::On));
    }

    #[test]
    fn winch_code_is_not_cranelift_code() {
        let build = |compiler| {
            let settings = EngineSettings {
                compiler,
                cache_dir: None,
                ..EngineSettings::default()
            };
            compatibility_hash(&settings.build().unwrap())
        };
        assert_ne!(build(Compiler::Cranelift), build(Compiler::Winch));
    }

    #[test]
    fn hash_differs_for_other_code_settings() {
        let ours = EngineSettings {
            cache_dir: None,
            ..Default::default()
        }
        .build()
        .unwrap();
        let mut other = Config::new();
        other.wasm_component_model(true);
        let other = Engine::new(&other).unwrap();
        assert_ne!(compatibility_hash(&ours), compatibility_hash(&other));
    }
}
