//! Loading and compiling artifacts: what loads, and the one sentence each bad input gets.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::{Path, PathBuf};

use tempo_runtime_core::artifact::{self, Artifact, ArtifactError, ArtifactKind};
use tempo_runtime_core::wasmtime::{Config, Engine};
use tempo_runtime_core::{EngineSettings, Pooling};

/// Asserts that `err` is the variant `pattern`; a failure shows the error, or the message given.
macro_rules! assert_is {
    ($err:expr, $pattern:pat) => {
        assert!(matches!($err, $pattern), "{}", $err)
    };
    ($err:expr, $pattern:pat, $($message:tt)+) => {
        assert!(matches!($err, $pattern), $($message)+)
    };
}

fn engine() -> Engine {
    EngineSettings {
        pooling: Pooling::Off,
        cache_dir: None,
        ..EngineSettings::default()
    }
    .build()
    .unwrap()
}

fn load(path: &Path) -> Result<artifact::Loaded, ArtifactError> {
    Artifact::read(path)?.load(&engine(), false)
}

fn compile(engine: &Engine, wasm: &Path, out: &Path) -> Result<artifact::Compiled, ArtifactError> {
    Artifact::read(wasm)?.compile(engine, out)
}

/// A fresh folder holding `http.bin`, compiled from the HTTP fixture.
fn compiled() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("http.bin");
    compile(&engine(), tempo_test_fixtures::http(), &bin).unwrap();
    (dir, bin)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn load_err(path: &Path) -> ArtifactError {
    match load(path) {
        Ok(_) => panic!("`{}` loaded", path.display()),
        Err(err) => err,
    }
}

#[test]
fn a_compiled_bin_loads_as_precompiled() {
    let (_dir, bin) = compiled();
    let loaded = load(&bin).unwrap();
    assert_eq!(loaded.kind, ArtifactKind::Precompiled);
}

#[test]
fn a_wasm_component_is_compiled_on_load() {
    let loaded = load(tempo_test_fixtures::http()).unwrap();
    assert_eq!(loaded.kind, ArtifactKind::Compiled);
}

#[test]
fn compiling_replaces_the_output_and_leaves_no_temporary_file() {
    let (dir, bin) = compiled();
    std::fs::write(&bin, b"stale").unwrap();
    compile(&engine(), tempo_test_fixtures::http(), &bin).unwrap();
    load(&bin).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["http.bin"]);
}

#[test]
fn a_truncated_bin_is_refused() {
    let (dir, bin) = compiled();
    let bytes = std::fs::read(&bin).unwrap();
    for len in [10, 61, 70, bytes.len() / 2, bytes.len() - 1] {
        let cut = write(dir.path(), "cut.bin", &bytes[..len]);
        let err = load_err(&cut);
        assert_is!(err, ArtifactError::Truncated { .. }, "{len}: {err}");
        assert!(err.to_string().contains("`cargo tempo compile`"), "{err}");
    }
}

#[test]
fn a_doctored_bin_is_refused() {
    let (dir, bin) = compiled();
    let bytes = std::fs::read(&bin).unwrap();
    // A byte of the checksum, of the code, of the last byte; and bytes appended.
    for at in [40, bytes.len() / 2, bytes.len() - 1] {
        let mut doctored = bytes.clone();
        doctored[at] ^= 0x55;
        let path = write(dir.path(), "doctored.bin", &doctored);
        let err = load_err(&path);
        assert_is!(err, ArtifactError::Corrupted { .. }, "{at}: {err}");
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"trailing");
    let err = load_err(&write(dir.path(), "longer.bin", &longer));
    assert_is!(err, ArtifactError::Corrupted { .. });
}

#[test]
fn a_bin_from_another_engine_configuration_is_refused() {
    let mut config = Config::new();
    config.wasm_component_model(true);
    let other = Engine::new(&config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("other.bin");
    compile(&other, tempo_test_fixtures::http(), &bin).unwrap();
    let err = load_err(&bin);
    assert_is!(err, ArtifactError::OtherEngine { .. });
    assert!(
        err.to_string().contains("different engine configuration"),
        "{err}"
    );
}

#[test]
fn a_bin_of_an_unknown_format_version_is_refused() {
    let (dir, bin) = compiled();
    let mut bytes = std::fs::read(&bin).unwrap();
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    let err = load_err(&write(dir.path(), "future.bin", &bytes));
    assert_is!(err, ArtifactError::OtherFormat { found: 99, .. });
}

#[test]
fn a_plain_wasmtime_precompiled_file_is_refused() {
    let engine = engine();
    let wasm = std::fs::read(tempo_test_fixtures::http()).unwrap();
    let elf = engine.precompile_component(&wasm).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = load_err(&write(dir.path(), "plain.cwasm", &elf));
    assert_is!(err, ArtifactError::ForeignPrecompiled { .. });
}

#[test]
fn a_core_module_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "core.wasm", b"\0asm\x01\0\0\0");
    let message = load_err(&path).to_string();
    assert!(
        message.ends_with(
            "is a core WebAssembly module, not a component: build it for wasm32-wasip2 (`cargo tempo build`)"
        ),
        "{message}"
    );
    let compiled = compile(&engine(), &path, &dir.path().join("core.bin"));
    assert!(matches!(compiled, Err(ArtifactError::CoreModule { .. })));
}

#[test]
fn other_files_are_named_for_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, says) in [
        ("empty.wasm", &b""[..], "it is empty"),
        (
            "random.bin",
            b"\x8f\x12\xaa\x01\x02\x03\x04\x05\x06",
            "it starts with 8f 12 aa",
        ),
        ("text.wat", b"  (component)", "WebAssembly text"),
        ("future.wasm", b"\0asm\x0e\0\x01\0", "unknown version"),
    ] {
        let path = write(dir.path(), name, bytes);
        let err = load_err(&path);
        assert_is!(err, ArtifactError::Unrecognized { .. }, "{name}: {err}");
        assert!(err.to_string().contains(says), "{name}: {err}");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

#[test]
fn a_valid_header_around_garbage_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend_from_slice(&[0xff; 32]);
    let err = load_err(&write(dir.path(), "broken.wasm", &bytes));
    assert_is!(err, ArtifactError::InvalidComponent { .. });
}

#[test]
fn missing_files_and_bins_as_input_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_err(&dir.path().join("absent.wasm"));
    assert!(err.to_string().starts_with("cannot read `"), "{err}");
    let (_keep, bin) = compiled();
    let err = compile(&engine(), &bin, &dir.path().join("again.bin")).unwrap_err();
    assert!(err.to_string().contains("already a tempo `.bin`"), "{err}");
}

#[test]
fn the_wasmtime_version_in_bin_headers_is_the_one_linked() {
    // The literal in `artifact::wasmtime_version` must follow the pin in the workspace manifest;
    // Cargo.lock says what is really linked.
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"))
        .unwrap();
    let linked = lock
        .split("[[package]]")
        .find(|package| package.contains("\nname = \"wasmtime\"\n"))
        .and_then(|package| {
            package
                .lines()
                .find_map(|line| line.strip_prefix("version = "))
        })
        .map(|version| version.trim_matches('"'))
        .unwrap();
    assert_eq!(artifact::wasmtime_version(), linked);
}

#[test]
fn only_a_component_that_uses_the_async_abi_gets_an_engine_with_it() {
    use tempo_runtime_core::Concurrency;
    let p2 = tempo_test_fixtures::http();
    let p3 = tempo_test_fixtures::http_p3();
    let needs = |path: &Path| {
        EngineSettings::default()
            .for_artifact(&Artifact::read(path).unwrap())
            .concurrency
    };
    assert_eq!(needs(p2), Concurrency::Off);
    assert_eq!(needs(p3), Concurrency::On);

    // A `.bin` says which engine compiled it; the other engine refuses it with the usual sentence.
    let dir = tempfile::tempdir().unwrap();
    let engine_with = |concurrency| {
        EngineSettings {
            concurrency,
            pooling: Pooling::Off,
            cache_dir: None,
            ..EngineSettings::default()
        }
        .build()
        .unwrap()
    };
    for (wasm, concurrency) in [(p2, Concurrency::Off), (p3, Concurrency::On)] {
        let bin = dir.path().join("component.bin");
        compile(&engine_with(concurrency), wasm, &bin).unwrap();
        assert_eq!(needs(&bin), concurrency);
        // `open` builds that engine and loads the file into it.
        let settings = EngineSettings {
            pooling: Pooling::Off,
            ..EngineSettings::default()
        };
        let (engine, loaded) = Artifact::open(&bin, settings, false).unwrap();
        assert_eq!(loaded.kind, ArtifactKind::Precompiled);
        assert_eq!(
            tempo_runtime_core::compatibility_hash(&engine),
            tempo_runtime_core::compatibility_hash(&engine_with(concurrency))
        );
    }
    let bin = dir.path().join("component.bin");
    match Artifact::read(&bin).and_then(|file| file.load(&engine_with(Concurrency::Off), false)) {
        Err(ArtifactError::OtherEngine { .. }) => {}
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a p3 .bin loaded on an engine without async support"),
    }
}

#[test]
fn a_bin_gets_no_compile_cache_and_a_wasm_keeps_it() {
    let (dir, bin) = compiled();
    let cache = Some(dir.path().join("cache"));
    let settings = |path: &Path| {
        EngineSettings {
            cache_dir: cache.clone(),
            ..EngineSettings::default()
        }
        .for_artifact(&Artifact::read(path).unwrap())
    };
    assert_eq!(settings(&bin).cache_dir, None);
    assert_eq!(settings(tempo_test_fixtures::http()).cache_dir, cache);
}

#[test]
fn open_refuses_what_load_refuses() {
    let (dir, bin) = compiled();
    let settings = || EngineSettings {
        pooling: Pooling::Off,
        cache_dir: None,
        ..EngineSettings::default()
    };
    let open_err = |path: &Path| match Artifact::open(path, settings(), false) {
        Ok(_) => panic!("`{}` opened", path.display()),
        Err(err) => err.downcast::<ArtifactError>().unwrap(),
    };
    let renamed = write(dir.path(), "http.wasm", &std::fs::read(&bin).unwrap());
    let err = open_err(&renamed);
    assert_is!(err, ArtifactError::PrecompiledName { .. });
    let (_, loaded) = Artifact::open(&renamed, settings(), true).unwrap();
    assert_eq!(loaded.kind, ArtifactKind::Precompiled);

    let mut bytes = std::fs::read(&bin).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let doctored = write(dir.path(), "doctored.bin", &bytes);
    let err = open_err(&doctored);
    assert_is!(err, ArtifactError::Corrupted { .. });
    let err = open_err(&dir.path().join("absent.bin"));
    assert!(err.to_string().starts_with("cannot read `"), "{err}");
}
