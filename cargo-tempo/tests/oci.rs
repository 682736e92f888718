//! Shipping components through a real OCI registry: Debian's `docker-registry` (the CNCF
//! distribution server) on a free loopback port, written to and read back through its HTTP API.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Instant;

use common::{Served, get, stderr, stdout, tempo};
use serde_json::Value;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry with its storage in a temporary folder; stopped when dropped.
struct Registry {
    child: Child,
    storage: tempfile::TempDir,
    address: String,
}

impl Registry {
    fn start() -> Self {
        let storage = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", tempo_test_fixtures::free_port());
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry is installed (.ci/run installs Debian's package)");
        let registry = Self {
            child,
            storage,
            address,
        };
        let start = Instant::now();
        while crate::common::http_get(registry.url("/v2/")).is_err() {
            assert!(
                start.elapsed() < common::PATIENCE,
                "the registry never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        registry
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The body and `Docker-Content-Digest` of `GET /v2/REPOSITORY/manifests/REFERENCE`.
    fn manifest(&self, repository: &str, reference: &str) -> (Value, String) {
        let response = crate::common::client()
            .get(self.url(&format!("/v2/{repository}/manifests/{reference}")))
            .header("accept", MANIFEST)
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let digest = response.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_owned();
        (response.json().unwrap(), digest)
    }

    fn blob(&self, repository: &str, digest: &str) -> Vec<u8> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        crate::common::http_get(url)
            .unwrap()
            .bytes()
            .unwrap()
            .to_vec()
    }

    /// Uploads `bytes` as a blob of `repository`, as any client does (one POST, one PUT), and
    /// returns its descriptor.
    fn upload(&self, repository: &str, media_type: &str, bytes: &[u8]) -> Value {
        let digest = sha256(bytes);
        let client = crate::common::client();
        let started = client
            .post(self.url(&format!("/v2/{repository}/blobs/uploads/")))
            .send()
            .unwrap();
        let location = started.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with("http") {
            location
        } else {
            self.url(&location)
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = client
            .put(format!("{location}{separator}digest={digest}"))
            .body(bytes.to_vec())
            .send()
            .unwrap();
        assert!(put.status().is_success(), "{}", put.status());
        serde_json::json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
    }

    /// Writes an image manifest of `config` and `layers` under `tag`, as another tool would.
    fn put_manifest(&self, repository: &str, tag: &str, config: Value, layers: Vec<Value>) {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config,
            "layers": layers,
        });
        let response = crate::common::client()
            .put(self.url(&format!("/v2/{repository}/manifests/{tag}")))
            .header("content-type", MANIFEST)
            .body(serde_json::to_vec(&manifest).unwrap())
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The file the registry keeps blob `digest` in.
    fn stored_blob(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

fn tempo_in(folder: &Path, args: &[&str]) -> Output {
    tempo().current_dir(folder).args(args).output().unwrap()
}

/// The command failed with exit code 1 and one error line that contains `says`.
fn refused(output: &Output, says: &str) {
    let said = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains(says), "{says:?} not in {said}");
    let errors = said
        .lines()
        .filter(|line| line.starts_with("error"))
        .count();
    assert_eq!(errors, 1, "{said}");
}

#[test]
fn push_writes_the_wasm_artifact_layout_and_pull_brings_back_the_same_component() {
    let registry = Registry::start();
    let folder = tempfile::tempdir().unwrap();
    let fixture = tempo_test_fixtures::http();
    let reference = format!("{}/tests/http-fixture:v1", registry.address);
    let output = tempo_in(
        folder.path(),
        &["push", &reference, fixture.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let pinned = stdout(&output).trim().to_owned();

    // The manifest, config and layer, as the registry serves them to any client.
    let (manifest, digest) = registry.manifest("tests/http-fixture", "v1");
    assert_eq!(
        pinned,
        format!("{}/tests/http-fixture@{digest}", registry.address)
    );
    assert_eq!(manifest["mediaType"], MANIFEST);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.title"],
        "http_fixture.wasm"
    );
    let layer_digest = layers[0]["digest"].as_str().unwrap();
    let component = std::fs::read(fixture).unwrap();
    assert_eq!(registry.blob("tests/http-fixture", layer_digest), component);
    let config = manifest["config"]["digest"].as_str().unwrap();
    let config: Value =
        serde_json::from_slice(&registry.blob("tests/http-fixture", config)).unwrap();
    assert_eq!(
        (config["architecture"].as_str(), config["os"].as_str()),
        (Some("wasm"), Some("wasip2"))
    );
    assert_eq!(config["layerDigests"][0], layer_digest);
    let names = |key: &str| -> Vec<String> {
        config["component"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        names("exports")
            .iter()
            .any(|name| name.starts_with("wasi:http/incoming-handler@0.2.")),
        "{config}"
    );
    assert!(
        names("imports")
            .iter()
            .any(|name| name.starts_with("wasi:http/types@"))
    );

    // By tag and by the pinned digest: the same bytes, which serve.
    for (from, file) in [
        (reference.as_str(), "by-tag.wasm"),
        (pinned.as_str(), "by-digest.wasm"),
    ] {
        let output = tempo_in(folder.path(), &["pull", from, "-o", file]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(std::fs::read(folder.path().join(file)).unwrap(), component);
    }
    let served = Served::start(&folder.path().join("by-digest.wasm"));
    assert_eq!(get(&format!("{}/", served.url)).0, 200);
    drop(served);

    // `run oci://` by tag pulls into the cache; by digest it starts from the cache, with the
    // registry gone.
    let cache = folder.path().join("cache/wasmtime");
    let run = |reference: &str| {
        let mut command = tempo();
        command
            .current_dir(folder.path())
            .env("TEMPO_CACHE_DIR", &cache)
            .args([
                "run",
                &format!("oci://{reference}"),
                "--listen",
                "127.0.0.1:0",
            ]);
        let mut served = Served::spawn(command);
        served.wait_for_serving();
        served
    };
    let served = run(&reference);
    assert!(
        served.stderr().contains(&format!("Pulled {pinned}")),
        "{}",
        served.stderr()
    );
    assert_eq!(get(&format!("{}/", served.url)).0, 200);
    drop(served);
    let hex = pinned.rsplit(':').next().unwrap();
    assert!(
        folder
            .path()
            .join(format!("cache/oci/{hex}.wasm"))
            .is_file()
    );
    drop(registry);
    let served = run(&pinned);
    assert!(
        served.stderr().contains(&format!("Cached {pinned}")),
        "{}",
        served.stderr()
    );
    assert_eq!(get(&format!("{}/", served.url)).0, 200);
    drop(served);
    // `compile oci://` makes a .bin of the cached component, which serves.
    let output = tempo()
        .current_dir(folder.path())
        .env("TEMPO_CACHE_DIR", &cache)
        .args(["compile", &format!("oci://{pinned}")])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let served = Served::start(&folder.path().join("http-fixture.bin"));
    assert_eq!(get(&format!("{}/", served.url)).0, 200);
}

#[test]
fn another_clients_artifact_pulls_and_what_is_not_a_sound_component_is_refused() {
    let registry = Registry::start();
    let folder = tempfile::tempdir().unwrap();
    let component = std::fs::read(tempo_test_fixtures::http()).unwrap();
    let at = |name: &str| format!("{}/others/{name}", registry.address);

    // The layout written by hand, as wkg or wash write it.
    let layer = registry.upload("others/app", "application/wasm", &component);
    let config = serde_json::json!({
        "architecture": "wasm", "os": "wasip2", "layerDigests": [layer["digest"]],
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config = registry.upload("others/app", "application/vnd.wasm.config.v0+json", &config);
    registry.put_manifest("others/app", "v1", config, vec![layer.clone()]);
    let output = tempo_in(folder.path(), &["pull", &at("app:v1"), "-o", "app.wasm"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read(folder.path().join("app.wasm")).unwrap(),
        component
    );

    // A container image.
    let image_config = registry.upload(
        "others/image",
        "application/vnd.oci.image.config.v1+json",
        b"{\"architecture\":\"amd64\",\"os\":\"linux\"}",
    );
    let tar = registry.upload(
        "others/image",
        "application/vnd.oci.image.layer.v1.tar",
        b"tar",
    );
    registry.put_manifest("others/image", "v1", image_config, vec![tar]);
    refused(
        &tempo_in(
            folder.path(),
            &["pull", &at("image:v1"), "-o", "image.wasm"],
        ),
        "it is a container image",
    );
    // A tag that is not there, a registry that does not listen, a reference that does not parse.
    refused(
        &tempo_in(folder.path(), &["pull", &at("app:v2"), "-o", "x.wasm"]),
        "the registry has no such tag or digest",
    );
    let nobody = format!(
        "127.0.0.1:{}/others/app:v1",
        tempo_test_fixtures::free_port()
    );
    refused(
        &tempo_in(folder.path(), &["pull", &nobody, "-o", "x.wasm"]),
        "cannot reach the registry",
    );
    refused(
        &tempo_in(folder.path(), &["pull", "Not A Reference"]),
        "is not an OCI reference",
    );

    // Production pinning: a tag is refused, a digest is not.
    let pinned_only = |reference: &str| {
        tempo()
            .current_dir(folder.path())
            .env("TEMPO_OCI_REQUIRE_DIGEST", "true")
            .env("TEMPO_CACHE_DIR", folder.path().join("cache/wasmtime"))
            .args(["compile", &format!("oci://{reference}"), "-o", "pinned.bin"])
            .output()
            .unwrap()
    };
    refused(
        &pinned_only(&at("app:v1")),
        "`[oci] require-digest` runs digests only",
    );
    let (_, digest) = registry.manifest("others/app", "v1");
    let output = pinned_only(&format!("{}@{digest}", at("app")));
    assert!(output.status.success(), "{}", stderr(&output));

    // A layer altered in the registry's storage: refused, and no file is written.
    let stored = registry.stored_blob(layer["digest"].as_str().unwrap());
    let mut altered = std::fs::read(&stored).unwrap();
    altered[100] ^= 0xff;
    std::fs::write(&stored, altered).unwrap();
    refused(
        &tempo_in(
            folder.path(),
            &["pull", &at("app:v1"), "-o", "altered.wasm"],
        ),
        "Invalid digest",
    );
    assert!(!folder.path().join("altered.wasm").exists());

    // A .bin is native code for one tempo build: never pushed.
    let bin = folder.path().join("app.bin");
    std::fs::write(&bin, b"not really compiled").unwrap();
    refused(
        &tempo_in(
            folder.path(),
            &["push", &at("bin:v1"), bin.to_str().unwrap()],
        ),
        "precompiled native code",
    );
}
