//! Running a `wasi:cli` program to completion: a WASI 0.2 one, or a WASI 0.3 one (whose `run` is
//! async, called in the store's concurrent event loop).

use anyhow::anyhow;
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::interface::InterfaceName;
use crate::request_id::RequestId;
use crate::version::Version;
use crate::wasi::{WASI_P3_VERSION, WASI_VERSION};

/// The export a `wasi:cli` program has: `wasi:cli/run`.
pub fn cli_run_export() -> InterfaceName {
    InterfaceName::known(&format!("wasi:cli/run@{WASI_VERSION}"))
}

/// Whether an export named `name` is a `wasi:cli` program's `run`, of WASI 0.2 or 0.3.
pub fn is_cli_run(name: &str) -> bool {
    cli_run_export().matches_str(name)
        || InterfaceName::known(&format!("wasi:cli/run@{WASI_P3_VERSION}")).matches_str(name)
}

/// Runs the `wasi:cli/run` export of `version` and returns the program's exit code: 0 for
/// success, 1 when `run` returns an error, or the code the guest passed to `exit-with-code`.
///
/// A trap is an `Err` (its chain holds a [`wasmtime::Trap`]).
pub async fn run_command(version: &Version) -> anyhow::Result<i32> {
    let pre = version.instance_pre().clone();
    let mut store = version.new_store(RequestId::generate());
    let outcome = match CommandPre::new(pre.clone()) {
        Ok(pre) => {
            async {
                let command = pre.instantiate_async(&mut store).await?;
                command.wasi_cli_run().call_run(&mut store).await
            }
            .await
        }
        Err(p2) => {
            let pre = wasmtime_wasi::p3::bindings::CommandPre::new(pre).map_err(|p3| {
                anyhow!(
                    "`{}` has no `wasi:cli/run` export: {p2:#} (0.2), {p3:#} (0.3)",
                    version.name()
                )
            })?;
            async {
                let command = pre.instantiate_async(&mut store).await?;
                store
                    .run_concurrent(async move |store| command.wasi_cli_run().call_run(store).await)
                    .await?
            }
            .await
        }
    };
    match outcome {
        Ok(Ok(())) => Ok(0),
        Ok(Err(())) => Ok(1),
        Err(err) => match err.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => Err(err.into()),
        },
    }
}
