//! A WASI 0.3 `wasi:cli` program (`wasi:cli/run@0.3.0`), built with the `wasip3` crate: it writes
//! `p3 args: ARGS` to stdout through a WASI 0.3 stream, and fails (exit code 1) when its first
//! argument is `fail`.

use wasip3::cli::{environment, stdout};
use wasip3::wit_stream;

wasip3::cli::command::export!(Program);

struct Program;

impl wasip3::exports::cli::run::Guest for Program {
    async fn run() -> Result<(), ()> {
        let args = environment::get_arguments();
        let line = format!("p3 args: {}\n", args[1..].join(" "));
        let (mut writer, reader) = wit_stream::new();
        let written = async {
            let left = writer.write_all(line.into_bytes()).await;
            drop(writer);
            left.is_empty()
        };
        let (result, whole) = futures::join!(async { stdout::write_via_stream(reader).await }, written);
        if result.is_err() || !whole || args.get(1).is_some_and(|arg| arg == "fail") {
            return Err(());
        }
        Ok(())
    }
}
