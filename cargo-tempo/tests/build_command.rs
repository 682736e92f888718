//! `cargo tempo build` through the real binary.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_contains, hello_http, scratch, stderr, stdout, tempo};

#[test]
fn builds_the_example_and_prints_the_component_path() {
    let built = hello_http(false);
    assert!(
        built.wasm.ends_with("wasm32-wasip2/debug/hello_http.wasm"),
        "{}",
        built.wasm.display()
    );
    assert!(built.bin.is_none(), "a debug build printed a .bin");
    let bytes = std::fs::read(&built.wasm).unwrap();
    assert!(bytes.starts_with(b"\0asm\x0d\0\x01\0"), "not a component");
}

#[test]
fn release_prints_the_wasm_and_the_bin_beside_it() {
    let built = hello_http(true);
    let bin = built.bin.as_ref().unwrap();
    assert!(
        built
            .wasm
            .ends_with("wasm32-wasip2/release/hello_http.wasm")
    );
    assert_eq!(bin.parent(), built.wasm.parent());
    assert!(std::fs::read(bin).unwrap().starts_with(b"TEMPOAOT"));
}

/// The manifest lines of a crate that builds a component.
const CDYLIB: &str = "[lib]\ncrate-type = [\"cdylib\"]\n";

/// A dependency-free crate written to a fresh folder.
fn write_crate(dir: &Path, manifest_extra: &str, source: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"scratch\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n{manifest_extra}\n[workspace]\n"),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), source).unwrap();
    dir.join("Cargo.toml")
}

fn build(manifest: &Path, target_dir: &str) -> Command {
    let mut command = tempo();
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(scratch(target_dir));
    command
}

#[test]
fn a_compile_error_shows_rustc_and_exits_with_cargos_code() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_crate(dir.path(), CDYLIB, "pub fn broken( {}\n");
    let output = build(&manifest, "broken").output().unwrap();
    assert_eq!(output.status.code(), Some(101), "{}", stderr(&output));
    assert_contains(&stderr(&output), "error: could not compile `scratch`");
    assert!(
        stderr(&output).contains("src/lib.rs"),
        "diagnostics not shown:\n{}",
        stderr(&output)
    );
    assert_eq!(stdout(&output), "");
}

#[test]
fn a_crate_without_a_component_target_is_told_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_crate(dir.path(), "", "pub fn library() {}\n");
    let output = build(&manifest, "rlib-only").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_contains(&stderr(&output), "crate-type = [\"cdylib\"]");
}

#[test]
fn a_missing_manifest_is_named() {
    let output = build(Path::new("/nonexistent/Cargo.toml"), "none")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no manifest at `/nonexistent/Cargo.toml` (`--manifest-path`)")
    );
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn real_rustc() -> PathBuf {
    let output = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim()).join("bin/rustc")
}

#[test]
fn without_the_target_and_without_rustup_one_line_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let rustc = script(dir.path(), "rustc", "echo /no/such/sysroot");
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let manifest = write_crate(&dir.path().join("crate"), CDYLIB, "");
    let output = build(&manifest, "no-target")
        .env("RUSTC", &rustc)
        .env("PATH", &empty)
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_contains(&err, "the wasm32-wasip2 target is not installed");
    assert_contains(&err, "rustup target add wasm32-wasip2");
}

#[test]
fn without_the_target_rustup_installs_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rustup.log");
    // A rustc whose sysroot lacks the target, and a rustup that records what it was asked.
    let rustc = script(
        dir.path(),
        "rustc",
        &format!(
            "if [ \"$1 $2\" = \"--print sysroot\" ]; then echo /no/such/sysroot; exit 0; fi\nexec {} \"$@\"",
            real_rustc().display()
        ),
    );
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    script(&bin, "rustup", &format!("echo \"$@\" >> {}", log.display()));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let manifest = write_crate(&dir.path().join("crate"), CDYLIB, "");
    let output = build(&manifest, "install-target")
        .env("RUSTC", &rustc)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .contains("Installing the wasm32-wasip2 target (`rustup target add wasm32-wasip2`)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "target add wasm32-wasip2\n"
    );
    assert!(
        stdout(&output).trim_end().ends_with("scratch.wasm"),
        "{}",
        stdout(&output)
    );
}
