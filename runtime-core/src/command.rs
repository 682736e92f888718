//! Running a `wasi:cli` program to completion.

use anyhow::Context as _;
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::interface::InterfaceName;
use crate::request_id::RequestId;
use crate::version::Version;
use crate::wasi::WASI_VERSION;

/// The export a `wasi:cli` program has: `wasi:cli/run`.
pub fn cli_run_export() -> InterfaceName {
    InterfaceName::known(&format!("wasi:cli/run@{WASI_VERSION}"))
}

/// Runs the `wasi:cli/run` export of `version` and returns the program's exit code: 0 for
/// success, 1 when `run` returns an error, or the code the guest passed to `exit-with-code`.
///
/// A trap is an `Err` (its chain holds a [`wasmtime::Trap`]).
pub async fn run_command(version: &Version) -> anyhow::Result<i32> {
    let pre = CommandPre::new(version.instance_pre().clone())
        .map_err(anyhow::Error::from)
        .with_context(|| format!("`{}` has no `wasi:cli/run` export", version.name()))?;
    let mut store = version.new_store(RequestId::generate());
    let outcome = async {
        let command = pre.instantiate_async(&mut store).await?;
        command.wasi_cli_run().call_run(&mut store).await
    }
    .await;
    match outcome {
        Ok(Ok(())) => Ok(0),
        Ok(Err(())) => Ok(1),
        Err(err) => match err.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => Err(err.into()),
        },
    }
}
