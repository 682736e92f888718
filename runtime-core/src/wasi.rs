//! The base WASI interfaces (`wasi:cli`, `wasi:io`, `wasi:clocks`, `wasi:random`,
//! `wasi:filesystem`, `wasi:sockets`) that every Rust `wasm32-wasip2` component imports, in WASI
//! 0.2 and in WASI 0.3 (components built with async bindings, e.g. the `wasip3` crate).

use wasmtime::component::Linker;

use crate::interface::InterfaceName;
use crate::service::Service;
use crate::state::State;

/// The WASI 0.2 version wasmtime-wasi implements.
pub const WASI_VERSION: &str = "0.2.12";

/// The WASI 0.3 version wasmtime-wasi implements.
pub(crate) const WASI_P3_VERSION: &str = "0.3.0";

/// The interfaces that WASI 0.2 and 0.3 both have, by the same name.
const IN_BOTH: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/ip-name-lookup",
];

/// The rest of wasmtime-wasi's `p2`: wasi:io, and clocks and sockets as 0.2 splits them.
const P2_ONLY: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
];

/// The rest of wasmtime-wasi's `p3`.
const P3_ONLY: &[&str] = &[
    "wasi:cli/types",
    "wasi:clocks/types",
    "wasi:clocks/system-clock",
    "wasi:sockets/types",
];

/// The base WASI service. Guests get only what their instance settings grant: no environment,
/// arguments, preopened folders or network unless listed.
pub struct WasiService {
    provides: Vec<InterfaceName>,
}

impl Default for WasiService {
    fn default() -> Self {
        let at = |version: &'static str| {
            move |name: &&str| InterfaceName::known(&format!("{name}@{version}"))
        };
        let p2 = IN_BOTH.iter().chain(P2_ONLY).map(at(WASI_VERSION));
        let p3 = IN_BOTH.iter().chain(P3_ONLY).map(at(WASI_P3_VERSION));
        let provides = p2.chain(p3).collect();
        Self { provides }
    }
}

impl Service for WasiService {
    crate::service_names!("wasi", self.provides);

    fn link(&self, linker: &mut Linker<State>) -> anyhow::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        // WASI 0.3 host functions are async, which only an engine with `Concurrency::On` allows.
        if linker.engine().get_concurrency_support() {
            wasmtime_wasi::p3::add_to_linker(linker)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "cli, clocks, random, io; no environment, folders or network".into()
    }
}
