//! Builds the guest crates under `guests/` for `wasm32-wasip2` with a nested cargo, in a target
//! folder of their own beside the host's, and tells the library where each component is.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (environment variable set for the library, artifact file name)
const GUESTS: &[(&str, &str)] = &[
    ("TEMPO_FIXTURE_HTTP", "http_fixture.wasm"),
    ("TEMPO_FIXTURE_HTTP_V2", "http_fixture_v2.wasm"),
    ("TEMPO_FIXTURE_CLI", "cli-fixture.wasm"),
    ("TEMPO_FIXTURE_MISSING_IMPORT", "missing-import.wasm"),
    ("TEMPO_FIXTURE_LIBRARY_ONLY", "library_only.wasm"),
    ("TEMPO_FIXTURE_KEYVALUE_SUITE", "keyvalue-suite.wasm"),
    ("TEMPO_FIXTURE_BLOBSTORE_SUITE", "blobstore-suite.wasm"),
    ("TEMPO_FIXTURE_MESSAGING", "messaging_fixture.wasm"),
    ("TEMPO_FIXTURE_CONFIG", "config_fixture.wasm"),
    ("TEMPO_FIXTURE_SDK", "sdk_fixture.wasm"),
    ("TEMPO_FIXTURE_OTEL_COMPAT", "otel_compat.wasm"),
    ("TEMPO_FIXTURE_HTTP_P3", "http_p3_fixture.wasm"),
    ("TEMPO_FIXTURE_CLI_P3", "cli_p3_fixture.wasm"),
    ("TEMPO_FIXTURE_SQL", "sql_fixture.wasm"),
    ("TEMPO_FIXTURE_SQL_BENCH", "sql-bench.wasm"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let guests = manifest_dir.join("guests");
    for entry in [
        "Cargo.toml",
        "Cargo.lock",
        "http-fixture",
        "http-fixture-v2",
        "cli-fixture",
        "missing-import",
        "library-only",
        "keyvalue-suite",
        "blobstore-suite",
        "messaging-fixture",
        "config-fixture",
        "sdk-fixture",
        "otel-compat",
        "http-p3-fixture",
        "cli-p3-fixture",
        "sql-fixture",
        "sql-bench",
        // What the guests are built from besides their own sources.
        "../../sdk",
        "../../wit",
    ] {
        println!("cargo:rerun-if-changed={}", guests.join(entry).display());
    }

    let target_dir = guest_target_dir();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--manifest-path")
        .arg(guests.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // What cargo set for this build script is for the host build, not the guests'.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("cannot run cargo to build the test guests");
    assert!(
        status.success(),
        "building the test guests in {} failed; is the wasm32-wasip2 target installed? (`rustup target add wasm32-wasip2`)",
        guests.display()
    );

    let release = target_dir.join("wasm32-wasip2").join("release");
    for (variable, file) in GUESTS {
        let path = release.join(file);
        assert!(
            path.is_file(),
            "the guest build did not produce {}",
            path.display()
        );
        println!("cargo:rustc-env={variable}={}", path.display());
    }
}

/// `<host target dir>/tempo-guests`, found from `OUT_DIR` (`<target>/<profile>/build/<pkg>/out`),
/// so the guests are built once for every profile and survive `OUT_DIR` changes.
fn guest_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target = out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or(out_dir);
    target.join("tempo-guests")
}
