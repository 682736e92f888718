//! Shipping components through a real OCI registry: Debian's `docker-registry` (the CNCF
//! distribution server) on a free loopback port, written to and read back through its HTTP API.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Instant;

use common::{Served, assert_contains, get, stderr, stdout, tempo};
use serde_json::Value;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A registry with its storage in a temporary folder; stopped when dropped.
struct Registry {
    child: Child,
    storage: tempfile::TempDir,
    address: String,
    /// Who the test's own requests log in as, for a registry behind a login.
    login: Option<(String, String)>,
    /// The authority that signed its certificate, for a registry that speaks HTTPS.
    authority: Option<PathBuf>,
}

/// What a private registry asks of its clients.
struct Private<'a> {
    /// Basic auth (htpasswd, bcrypt) for this user and password.
    user: &'a str,
    password: &'a str,
}

impl Registry {
    /// An open registry on loopback, in plain HTTP.
    fn start() -> Self {
        Self::start_on("127.0.0.1", None)
    }

    /// A registry on `host`; a private one speaks HTTPS, with a certificate for `host` from an
    /// authority of its own, and asks for a login.
    fn start_on(host: &str, private: Option<Private<'_>>) -> Self {
        let storage = tempfile::tempdir().unwrap();
        let address = format!("{host}:{}", tempo_test_fixtures::free_port());
        let mut config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
            storage.path().join("data").display()
        );
        let (mut login, mut authority) = (None, None);
        if let Some(Private { user, password }) = private {
            let folder = storage.path();
            let new_key = "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30";
            let openssl = |args: String| {
                let args: Vec<&str> = args.split(' ').collect();
                tempo_test_fixtures::openssl(folder, &args);
            };
            openssl(format!("{new_key} -subj /CN=ca -keyout ca.key -out ca.pem"));
            openssl(format!(
                "{new_key} -subj /CN=registry -CA ca.pem -CAkey ca.key \
                 -addext subjectAltName=IP:{host} -addext basicConstraints=critical,CA:FALSE \
                 -keyout server.key -out server.pem"
            ));
            let hashed = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd is installed (.ci/run installs Debian's apache2-utils)");
            assert!(hashed.status.success());
            std::fs::write(folder.join("htpasswd"), hashed.stdout).unwrap();
            let at = |name: &str| folder.join(name).display().to_string();
            config += &format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: tests\n    path: {}\n",
                at("server.pem"),
                at("server.key"),
                at("htpasswd")
            );
            login = Some((user.to_owned(), password.to_owned()));
            authority = Some(folder.join("ca.pem"));
        }
        let config_file = storage.path().join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry is installed (.ci/run installs Debian's package)");
        let registry = Self {
            child,
            storage,
            address,
            login,
            authority,
        };
        let start = Instant::now();
        while registry
            .request(reqwest::Method::GET, "/v2/")
            .send()
            .is_err()
        {
            assert!(
                start.elapsed() < common::PATIENCE,
                "the registry never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        registry
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.authority.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{path}", self.address)
    }

    /// A request to `path` (or a whole URL), trusting the registry's authority and logged in.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let mut client = crate::common::client_builder();
        if let Some(authority) = &self.authority {
            let pem = std::fs::read(authority).unwrap();
            client = client.tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()]);
        }
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            self.url(path)
        };
        let request = client.build().unwrap().request(method, url);
        match &self.login {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// The body and `Docker-Content-Digest` of `GET /v2/REPOSITORY/manifests/REFERENCE`.
    fn manifest(&self, repository: &str, reference: &str) -> (Value, String) {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/v2/{repository}/manifests/{reference}"),
            )
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
        self.request(
            reqwest::Method::GET,
            &format!("/v2/{repository}/blobs/{digest}"),
        )
        .send()
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
    /// Returns the manifest's descriptor.
    fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        config: Value,
        layers: Vec<Value>,
    ) -> Value {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config,
            "layers": layers,
        });
        self.put(repository, tag, MANIFEST, &manifest)
    }

    /// Writes an image index of `manifests` (descriptors with a platform) under `tag`.
    fn put_index(&self, repository: &str, tag: &str, manifests: Vec<Value>) {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": manifests,
        });
        self.put(repository, tag, INDEX, &index);
    }

    /// `PUT /v2/REPOSITORY/manifests/TAG` of `body`; its descriptor.
    fn put(&self, repository: &str, tag: &str, media_type: &str, body: &Value) -> Value {
        let bytes = serde_json::to_vec(body).unwrap();
        let response = crate::common::client()
            .put(self.url(&format!("/v2/{repository}/manifests/{tag}")))
            .header("content-type", media_type)
            .body(bytes.clone())
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        serde_json::json!({ "mediaType": media_type, "digest": sha256(&bytes), "size": bytes.len() })
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

/// `command run oci://REFERENCE` on a free port, once it serves.
fn serve_oci(mut command: Command, reference: &str) -> Served {
    command.args([
        "run",
        &format!("oci://{reference}"),
        "--listen",
        "127.0.0.1:0",
    ]);
    let mut served = Served::spawn(command);
    served.wait_for_serving();
    served
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
            .env("TEMPO_CACHE_DIR", &cache);
        serve_oci(command, reference)
    };
    let served = run(&reference);
    assert_contains(&served.stderr(), &format!("Pulled {pinned}"));
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
    assert_contains(&served.stderr(), &format!("Cached {pinned}"));
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
    let wasm_config_bytes = serde_json::to_vec(&config).unwrap();
    let config = registry.upload(
        "others/app",
        "application/vnd.wasm.config.v0+json",
        &wasm_config_bytes,
    );
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
    let linux = registry.put_manifest("others/image", "v1", image_config, vec![tar]);
    refused(
        &tempo_in(
            folder.path(),
            &["pull", &at("image:v1"), "-o", "image.wasm"],
        ),
        "it is a container image",
    );
    // An image index is followed to its `wasm` entry; one with none is refused.
    let wasm_layer = registry.upload("others/image", "application/wasm", &component);
    let wasm_config = registry.upload(
        "others/image",
        "application/vnd.wasm.config.v0+json",
        &wasm_config_bytes,
    );
    let wasm = registry.put_manifest("others/image", "wasm", wasm_config, vec![wasm_layer]);
    let on = |descriptor: &Value, architecture: &str, os: &str| {
        let mut entry = descriptor.clone();
        entry["platform"] = serde_json::json!({ "architecture": architecture, "os": os });
        entry
    };
    registry.put_index(
        "others/image",
        "multi",
        vec![on(&linux, "amd64", "linux"), on(&wasm, "wasm", "wasip2")],
    );
    let output = tempo_in(
        folder.path(),
        &["pull", &at("image:multi"), "-o", "multi.wasm"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read(folder.path().join("multi.wasm")).unwrap(),
        component
    );
    registry.put_index("others/image", "linux", vec![on(&linux, "amd64", "linux")]);
    refused(
        &tempo_in(folder.path(), &["pull", &at("image:linux")]),
        "it is an image index with no `wasm` entry (platforms: linux/amd64)",
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

/// A non-loopback IPv4 address of this machine: how a registry elsewhere on the network looks to
/// tempo.
fn own_address() -> String {
    let routed = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("198.51.100.1:9")?; // picks a route; sends nothing
            socket.local_addr()
        })
        .map(|address| address.ip());
    if let Ok(ip) = routed
        && !ip.is_loopback()
        && !ip.is_unspecified()
    {
        return ip.to_string();
    }
    let listed = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&listed.stdout)
        .split_whitespace()
        .find(|word| {
            word.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("this test needs an IPv4 address besides loopback on this machine")
        .to_owned()
}

/// A Docker config folder whose `config.json` is `config`.
fn docker_config(folder: &Path, name: &str, config: &Value) -> PathBuf {
    let dir = folder.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn a_private_registry_over_https_takes_a_login_from_the_variables_docker_config_or_a_helper() {
    let (user, password) = ("shipper", "s3cret-Passw0rd");
    let registry = Registry::start_on(&own_address(), Some(Private { user, password }));
    let folder = tempfile::tempdir().unwrap();
    let authority = registry.authority.clone().unwrap();
    let no_docker = folder.path().join("no-docker-config");
    let reference = format!("{}/private/http-fixture:v1", registry.address);
    let fixture = tempo_test_fixtures::http().to_str().unwrap();
    let tempo_with = |env: &[(&str, &std::ffi::OsStr)], args: &[&str]| -> Output {
        tempo()
            .current_dir(folder.path())
            .env("SSL_CERT_FILE", &authority)
            .env("DOCKER_CONFIG", &no_docker)
            .env("TEMPO_CACHE_DIR", folder.path().join("cache/wasmtime"))
            .envs(env.iter().copied())
            .args(args)
            .output()
            .unwrap()
    };
    let login_as = |password: &'static str| {
        [
            ("TEMPO_REGISTRY_USERNAME", std::ffi::OsStr::new(user)),
            ("TEMPO_REGISTRY_PASSWORD", std::ffi::OsStr::new(password)),
        ]
    };

    // No login, a wrong one: one line each, the secret never shown.
    refused(
        &tempo_with(&[], &["push", &reference, fixture]),
        "the registry asks for a login: set TEMPO_REGISTRY_USERNAME",
    );
    let wrong = tempo_with(
        &login_as("not-the-password"),
        &["push", &reference, fixture],
    );
    refused(
        &wrong,
        "the registry refused the login `shipper` (from TEMPO_REGISTRY_USERNAME)",
    );
    assert!(!stderr(&wrong).contains("not-the-password"));
    // A certificate from an authority tempo was not told of.
    let mut untrusted = tempo();
    untrusted
        .current_dir(folder.path())
        .env_remove("SSL_CERT_FILE")
        .env("DOCKER_CONFIG", &no_docker)
        .envs(login_as(password))
        .args(["pull", &reference]);
    refused(&untrusted.output().unwrap(), "in SSL_CERT_FILE");

    let pushed = tempo_with(&login_as(password), &["push", &reference, fixture]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let pinned = stdout(&pushed).trim().to_owned();

    // Inside a crate, with no FILE: built with --release, annotated from its Cargo.toml. (A
    // crate of its own: building a fixture again could rewrite a file other tests read.)
    let crate_dir = folder.path().join("shipped");
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    std::fs::write(
        crate_dir.join("Cargo.toml"),
        "[package]\nname = \"shipped\"\nversion = \"1.2.3\"\nedition = \"2024\"\n\
         description = \"Shipped by a test\"\nrepository = \"https://example.com/shipped\"\n\
         license = \"Apache-2.0\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        crate_dir.join("src/lib.rs"),
        "#[unsafe(no_mangle)]\npub extern \"C\" fn answer() -> i32 {\n    42\n}\n",
    )
    .unwrap();
    let shipped = format!("{}/private/shipped:1.2.3", registry.address);
    let pushed = tempo_with(
        &login_as(password),
        &["push", &shipped, "--manifest-path", "shipped/Cargo.toml"],
    );
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let (manifest, _) = registry.manifest("private/shipped", "1.2.3");
    let annotation =
        |key: &str| manifest["annotations"][format!("org.opencontainers.image.{key}")].clone();
    assert_eq!(annotation("title"), "shipped");
    assert_eq!(annotation("version"), "1.2.3");
    assert_eq!(annotation("description"), "Shipped by a test");
    assert_eq!(annotation("source"), "https://example.com/shipped");
    assert_eq!(annotation("licenses"), "Apache-2.0");
    assert!(
        annotation("created")
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(
        registry.blob("private/shipped", layer),
        std::fs::read(crate_dir.join("target/wasm32-wasip2/release/shipped.wasm")).unwrap()
    );

    // The login `docker login` leaves in config.json.
    let encoded = Command::new("sh")
        .args([
            "-c",
            "printf %s \"$0\" | base64 -w0",
            &format!("{user}:{password}"),
        ])
        .output()
        .unwrap();
    let auths = serde_json::json!({
        "auths": { registry.address.clone(): { "auth": String::from_utf8(encoded.stdout).unwrap() } }
    });
    let docker = docker_config(folder.path(), "docker-auths", &auths);
    let pulled = tempo_with(
        &[("DOCKER_CONFIG", docker.as_os_str())],
        &["pull", &pinned, "-o", "from-config.wasm"],
    );
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    assert_eq!(
        std::fs::read(folder.path().join("from-config.wasm")).unwrap(),
        std::fs::read(fixture).unwrap()
    );

    // A credential helper config.json names, which answers for this registry only.
    let bin = folder.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-tempo-tests");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\nif [ \"$1\" = get ] && [ \"$server\" = {} ]; then\n  \
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{password}\"}}' \"$server\"\n\
             else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
            registry.address
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let helpers = serde_json::json!({ "credHelpers": { registry.address.clone(): "tempo-tests" } });
    let docker = docker_config(folder.path(), "docker-helper", &helpers);
    let path = std::env::join_paths(
        std::iter::once(bin.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut command = tempo();
    command
        .current_dir(folder.path())
        .env("SSL_CERT_FILE", &authority)
        .env("DOCKER_CONFIG", &docker)
        .env("PATH", &path)
        .env("TEMPO_CACHE_DIR", folder.path().join("cache/wasmtime"));
    let served = serve_oci(command, &reference);
    assert_eq!(get(&format!("{}/", served.url)).0, 200);
}

#[test]
fn a_plain_http_registry_elsewhere_is_spoken_to_only_when_listed() {
    let registry = Registry::start_on(&own_address(), None);
    let folder = tempfile::tempdir().unwrap();
    let reference = format!("{}/plain/http-fixture:v1", registry.address);
    let fixture = tempo_test_fixtures::http().to_str().unwrap();
    // Unlisted, tempo speaks HTTPS to it, and says what to do.
    refused(
        &tempo_in(folder.path(), &["push", &reference, fixture]),
        "must be listed in `[oci] insecure-registries`",
    );
    // Listed in the variable, or in tempo.toml.
    let pushed = tempo()
        .current_dir(folder.path())
        .env("TEMPO_OCI_INSECURE_REGISTRIES", &registry.address)
        .args(["push", &reference, fixture])
        .output()
        .unwrap();
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    std::fs::write(
        folder.path().join("tempo.toml"),
        format!("[oci]\ninsecure-registries = [\"{}\"]\n", registry.address),
    )
    .unwrap();
    let pulled = tempo_in(folder.path(), &["pull", &reference, "-o", "plain.wasm"]);
    assert!(pulled.status.success(), "{}", stderr(&pulled));
}

/// A hostile registry on loopback: `endless`'s manifest and `liar`'s layer never end (chunked
/// bodies written until the client hangs up); `liar`'s manifest announces a 1000-byte layer.
fn endless_registry() -> String {
    use std::io::{BufRead as _, BufReader, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let layer = serde_json::json!({
        "mediaType": "application/wasm", "size": 1000, "digest": sha256(b"never sent"),
    });
    let config = serde_json::json!({
        "mediaType": "application/vnd.wasm.config.v0+json", "size": 2, "digest": sha256(b"{}"),
    });
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer],
    })
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let manifest = manifest.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                    line.clear();
                }
                let endless = path == "/v2/endless/manifests/v1" || path.contains("/blobs/");
                if !endless {
                    let body = if path == "/v2/" {
                        "{}"
                    } else {
                        manifest.as_str()
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: {MANIFEST}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    return;
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: {MANIFEST}\r\ntransfer-encoding: chunked\r\n\r\n"
                );
                let chunk = [b' '; 65536];
                while write!(stream, "{:x}\r\n", chunk.len())
                    .and_then(|()| stream.write_all(&chunk))
                    .and_then(|()| stream.write_all(b"\r\n"))
                    .is_ok()
                {}
            });
        }
    });
    address
}

#[test]
fn a_registry_that_streams_for_ever_is_cut_off_at_the_bounds() {
    let address = endless_registry();
    let folder = tempfile::tempdir().unwrap();
    refused(
        &tempo_in(folder.path(), &["pull", &format!("{address}/endless:v1")]),
        "the registry sends a manifest over 4194304 bytes",
    );
    let liar = format!("{address}/liar:v1");
    refused(
        &tempo_in(folder.path(), &["pull", &liar]),
        "more bytes than the manifest announced",
    );
    let bounded = tempo()
        .current_dir(folder.path())
        .env("TEMPO_OCI_MAX_COMPONENT_BYTES", "500")
        .args(["pull", &liar])
        .output()
        .unwrap();
    refused(&bounded, "more than `[oci] max-component-bytes` (500)");
    assert!(!folder.path().join("liar.wasm").exists());
}
