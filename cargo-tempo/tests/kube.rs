//! `cargo tempo kube` through the real binary: its manifests validated offline against the
//! Kubernetes API schemas of two versions (PyPI's `kubernetes-validate --strict`), its computed
//! fields checked, and `examples/kubernetes` kept what it writes.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{assert_contains, stderr, stdout, tempo};
use serde_json::Value;

/// The oldest and the newest Kubernetes the manifests are checked against.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];
const IMAGE: &str = "registry.example.com/tempo/runtime:0.1.0";

fn digest() -> String {
    format!("sha256:{}", "ab".repeat(32))
}

/// `yaml` passes `kubernetes-validate --strict` for every version in [`KUBERNETES_VERSIONS`].
fn validate(yaml: &str) {
    for version in KUBERNETES_VERSIONS {
        let mut child = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", version, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubernetes-validate is installed (.ci/run installs it from PyPI)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "Kubernetes {version}: {}{}",
            stdout(&output),
            stderr(&output)
        );
    }
}

/// The documents of a multi-document YAML text.
fn documents(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect()
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// A crate with a `tempo.toml` that sets what the manifests are computed from.
fn crate_with_settings(folder: &Path) {
    std::fs::write(
        folder.join("Cargo.toml"),
        "[package]\nname = \"shop_front\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("tempo.toml"),
        "[limits]\nmemory-mib = 64\n\n[http]\nshutdown-delay-ms = 8000\n\n[config]\napi_key = { secret = \"app/api#key\" }\n",
    )
    .unwrap();
}

fn kube_in(folder: &Path, args: &[&str]) -> Output {
    tempo()
        .current_dir(folder)
        .env("VAULT_TOKEN", "s.never-in-manifests")
        .arg("kube")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_manifests_validate_and_hold_what_the_pod_needs() {
    let folder = tempfile::tempdir().unwrap();
    crate_with_settings(folder.path());
    let reference = format!("registry.example.com/shop/front@{}", digest());
    let output = kube_in(
        folder.path(),
        &[
            &reference,
            "--image",
            IMAGE,
            "--memory",
            "512",
            "--namespace",
            "shop",
            "--nats-url",
            "nats://nats:4222",
            "--vault-addr",
            "https://vault:8200",
            "--env-secret",
            "shop-vault",
            "--image-pull-secret",
            "runtime-pull",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let yaml = stdout(&output);
    validate(&yaml);
    assert!(!yaml.contains("never-in-manifests"));
    let objects = documents(&yaml);
    let kinds: Vec<&str> = objects
        .iter()
        .map(|object| object["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget"
        ]
    );
    for object in &objects {
        assert_eq!(object["metadata"]["namespace"], "shop");
    }

    let config = kind(&objects, "ConfigMap");
    assert_eq!(
        config["data"]["tempo.toml"].as_str().unwrap(),
        std::fs::read_to_string(folder.path().join("tempo.toml")).unwrap()
    );
    let deployment = kind(&objects, "Deployment");
    assert_eq!(deployment["metadata"]["name"], "shop-front");
    let pod = &deployment["spec"]["template"]["spec"];
    // The shutdown delay (8 s), the requests' and the handlers' grace (10 s each), 5 s to exit.
    assert_eq!(pod["terminationGracePeriodSeconds"], 33);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["imagePullSecrets"][0]["name"], "runtime-pull");
    let container = &pod["containers"][0];
    assert_eq!(container["image"], IMAGE);
    assert_eq!(container["args"][1], format!("oci://{reference}"));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["envFrom"][0]["secretRef"]["name"], "shop-vault");
    let env = |name: &str| -> Option<String> {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|variable| variable["name"] == name)
            .map(|variable| variable["value"].as_str().unwrap().to_owned())
    };
    // 512 MiB less 64 for the runtime holds 7 instances of 64 MiB.
    assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(env("TEMPO_MAX_INSTANCES").as_deref(), Some("7"));
    assert_eq!(env("TEMPO_MEMORY_MIB").as_deref(), Some("64"));
    assert_eq!(env("TEMPO_OCI_REQUIRE_DIGEST").as_deref(), Some("true"));
    assert_eq!(env("TEMPO_LOG_FORMAT").as_deref(), Some("json"));
    assert_eq!(env("NATS_ADDR").as_deref(), Some("nats://nats:4222"));
    assert_eq!(env("VAULT_ADDR").as_deref(), Some("https://vault:8200"));
    assert_eq!(env("VAULT_TOKEN"), None);
    let autoscaler = kind(&objects, "HorizontalPodAutoscaler");
    assert_eq!(autoscaler["spec"]["minReplicas"], 2);
    assert_eq!(autoscaler["spec"]["maxReplicas"], 10);
}

#[test]
fn what_cannot_run_safely_is_refused_in_one_line() {
    let folder = tempfile::tempdir().unwrap();
    crate_with_settings(folder.path());
    let pinned = format!("registry.example.com/shop/front@{}", digest());
    let refused = |args: &[&str], says: &str| {
        let output = kube_in(folder.path(), args);
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{said}");
        assert!(said.contains(says), "{says:?} not in {said}");
        assert!(stdout(&output).is_empty());
    };
    refused(
        &["registry.example.com/shop/front:v1", "--image", IMAGE],
        "names a tag",
    );
    refused(
        &[
            &pinned,
            "--image",
            IMAGE,
            "--max-instances",
            "8",
            "--memory",
            "512",
        ],
        "raise --memory to 576",
    );
    refused(
        &[&pinned, "--image", IMAGE, "--namespace", "Shop_Space"],
        "--namespace `Shop_Space` is not a Kubernetes name",
    );
    // A tag is accepted when asked for, and then the pods do not require digests.
    let output = kube_in(
        folder.path(),
        &[
            "registry.example.com/shop/front:v1",
            "--image",
            IMAGE,
            "--allow-tag",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stdout(&output).contains("TEMPO_OCI_REQUIRE_DIGEST"));
}

/// `kubectl kustomize FOLDER`, or `None` (with the reason printed) where kubectl is missing.
fn kustomize(folder: &Path) -> Option<String> {
    let Ok(output) = Command::new("kubectl")
        .arg("kustomize")
        .arg(folder)
        .output()
    else {
        eprintln!("kubectl is not installed: the kustomize checks are skipped");
        return None;
    };
    assert!(output.status.success(), "{}", stderr(&output));
    Some(stdout(&output))
}

#[test]
fn a_written_folder_is_kustomize_ready_and_the_example_is_what_kube_writes() {
    let folder = tempfile::tempdir().unwrap();
    crate_with_settings(folder.path());
    let reference = format!("registry.example.com/shop/front@{}", digest());
    let write = |into: &str| kube_in(folder.path(), &[&reference, "--image", IMAGE, "-o", into]);
    let output = write("deploy");
    assert!(output.status.success(), "{}", stderr(&output));
    // Written again over its own files; never over someone else's.
    assert!(write("deploy").status.success());
    let deploy = folder.path().join("deploy");
    if let Some(yaml) = kustomize(&deploy) {
        validate(&yaml);
        let objects = documents(&yaml);
        // kustomize keeps the ConfigMap's name, so the Deployment still finds it.
        assert_eq!(
            kind(&objects, "ConfigMap")["metadata"]["name"],
            "shop-front-config"
        );
    }
    std::fs::write(deploy.join("service.yaml"), "# mine\n").unwrap();
    let output = write("deploy");
    assert_eq!(output.status.code(), Some(1));
    assert_contains(&stderr(&output), "was not written by `cargo tempo kube`");
    assert_eq!(
        std::fs::read_to_string(deploy.join("service.yaml")).unwrap(),
        "# mine\n"
    );

    // examples/kubernetes/app is what `cargo tempo kube` writes for examples/keyvalue today.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let regenerated = tempfile::tempdir().unwrap();
    let output = tempo()
        .current_dir(examples.join("keyvalue"))
        .args([
            "kube",
            &format!(
                "registry.example.com/tempo-examples/keyvalue@sha256:{}",
                "0".repeat(64)
            ),
            "--image",
            IMAGE,
            "--nats-url",
            "nats://nats:4222",
            "--nats-replicas",
            "3",
            "-o",
        ])
        .arg(regenerated.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    for entry in std::fs::read_dir(regenerated.path()).unwrap() {
        let name = entry.unwrap().file_name();
        let written = std::fs::read_to_string(regenerated.path().join(&name)).unwrap();
        let committed = std::fs::read_to_string(examples.join("kubernetes/app").join(&name));
        assert!(
            committed.is_ok_and(|committed| committed == written),
            "examples/kubernetes/app/{} is stale: write it again with `cargo tempo kube` (docs/kubernetes.md)",
            name.to_string_lossy()
        );
    }
    if let Some(yaml) = kustomize(&examples.join("kubernetes")) {
        validate(&yaml);
    }
    // The NATS cluster's configuration is one nats-server accepts.
    let nats = Command::new("nats-server")
        .env("POD_NAME", "nats-0")
        .args(["-t", "-c"])
        .arg(examples.join("kubernetes/nats/nats.conf"))
        .output()
        .unwrap();
    assert!(nats.status.success(), "{}", stderr(&nats));
}
