//! The Kubernetes objects that run one component: a Deployment of the tempo runtime image
//! running `run oci://REF`, its ConfigMap (the crate's `tempo.toml`), a Service, a
//! HorizontalPodAutoscaler and a PodDisruptionBudget. Pure: the numbers come in, the objects go
//! out, so tests check the arithmetic without a cluster.

use serde_json::{Value, json};

/// Memory the runtime itself needs beside its guests' linear memories, in MiB: the engine, the
/// compiled code, tokio, hyper, the embedded backends' caches. Measured RSS of `cargo-tempo run`
/// serving hello-http under load stays under half of it.
pub(crate) const RUNTIME_RESERVE_MIB: u64 = 64;

/// Slack on top, for the process to export pending telemetry and exit.
const EXIT_SLACK_SECONDS: u64 = 5;
/// The ports tempo listens on inside the pod.
const HTTP_PORT: u16 = 8080;
const ADMIN_PORT: u16 = 9464;
/// The writable volume and tempo's working folder: the ConfigMap's `tempo.toml`, the embedded
/// backends' state, and both caches. The runtime image's working folder too.
const DATA_DIR: &str = "/var/lib/tempo";
/// The runtime image's user (and group): not root, not a name that needs `/etc/passwd`.
pub(crate) const RUNTIME_UID: u64 = 65532;
/// Instances per pod when neither a flag nor `tempo.toml` says, nor a memory limit decides.
const DEFAULT_MAX_INSTANCES: u64 = 8;

/// Everything the objects are made from.
#[derive(Debug, Clone)]
pub(crate) struct App {
    /// A DNS-1123 label: every object's name and the pods' `app.kubernetes.io/name`.
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
    /// The runtime image (`cargo-tempo` as entrypoint).
    pub(crate) image: String,
    /// `REGISTRY/REPOSITORY@sha256:…` (or a tag, when allowed).
    pub(crate) reference: String,
    /// The reference names a digest: the pods run with `[oci] require-digest`.
    pub(crate) pinned: bool,
    pub(crate) replicas: u32,
    pub(crate) max_replicas: u32,
    /// CPU requested per pod, in millicores (the autoscaler's 100%).
    pub(crate) cpu_millis: u32,
    pub(crate) max_instances: u64,
    pub(crate) memory_mib: u64,
    /// The pod's memory limit, in MiB: holds `max_instances` at `memory_mib` each, and the
    /// runtime (see [`fit`]).
    pub(crate) memory_limit_mib: u64,
    pub(crate) shutdown_delay_ms: u64,
    /// The crate's `tempo.toml`, mounted as the pods' working folder's.
    pub(crate) tempo_toml: Option<String>,
    pub(crate) nats_url: Option<String>,
    /// `[nats] replicas` for the pods, when given.
    pub(crate) nats_replicas: Option<u8>,
    pub(crate) vault_addr: Option<String>,
    /// Secrets whose keys become the container's variables (`VAULT_TOKEN`, registry logins).
    pub(crate) env_secrets: Vec<String>,
    /// Secrets the kubelet pulls the runtime image with.
    pub(crate) image_pull_secrets: Vec<String>,
}

/// Instances per pod and the pod's memory limit, in MiB, such that every instance at its
/// memory cap (`memory_mib`) and the runtime fit: from a limit, as many instances as fit (or a
/// check that `max_instances` do); without one, the limit `max_instances` (default 8) need.
pub(crate) fn fit(
    limit_mib: Option<u64>,
    max_instances: Option<u64>,
    memory_mib: u64,
) -> Result<(u64, u64), String> {
    let Some(limit) = limit_mib else {
        let instances = max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
        return Ok((instances, RUNTIME_RESERVE_MIB + instances * memory_mib));
    };
    let room = limit.saturating_sub(RUNTIME_RESERVE_MIB);
    match max_instances {
        Some(instances) if instances * memory_mib > room => Err(format!(
            "{instances} instances × {memory_mib} MiB (`max-instances` × `memory-mib`) do not fit \
             in --memory {limit} less {RUNTIME_RESERVE_MIB} MiB for the runtime: raise --memory \
             to {} or lower either setting",
            RUNTIME_RESERVE_MIB + instances * memory_mib
        )),
        Some(instances) => Ok((instances, limit)),
        None if room < memory_mib => Err(format!(
            "--memory {limit} holds no instance of {memory_mib} MiB (`memory-mib`) beside \
             {RUNTIME_RESERVE_MIB} MiB for the runtime: raise it to {} at least",
            RUNTIME_RESERVE_MIB + memory_mib
        )),
        None => Ok((room / memory_mib, limit)),
    }
}

impl App {
    /// What the pod asks the scheduler for: the reserve and one instance's worth.
    fn memory_request_mib(&self) -> u64 {
        RUNTIME_RESERVE_MIB + self.memory_mib
    }

    /// Covers the shutdown delay, the requests' grace, the handlers' grace and the exit.
    pub(crate) fn termination_grace_seconds(&self) -> u64 {
        // After the delay, requests in flight get their grace, and then message handlers theirs.
        let graces = tempo_http::HttpConfig::default().shutdown_grace
            + tempo_messaging::MessagingConfig::default().shutdown_grace;
        self.shutdown_delay_ms.div_ceil(1000) + graces.as_secs() + EXIT_SLACK_SECONDS
    }

    fn labels(&self) -> Value {
        json!({
            "app.kubernetes.io/name": self.name,
            "app.kubernetes.io/component": "tempo-app",
            "app.kubernetes.io/managed-by": "cargo-tempo",
        })
    }

    fn selector(&self) -> Value {
        json!({ "app.kubernetes.io/name": self.name })
    }

    fn metadata(&self, name: &str) -> Value {
        let mut metadata = json!({ "name": name, "labels": self.labels() });
        if let Some(namespace) = &self.namespace {
            metadata["namespace"] = json!(namespace);
        }
        metadata
    }

    fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }

    /// The objects, each with the file name it gets in a kustomize folder.
    pub(crate) fn objects(&self) -> Vec<(&'static str, Value)> {
        let mut objects = Vec::new();
        if let Some(toml) = &self.tempo_toml {
            objects.push((
                "configmap.yaml",
                json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": self.metadata(&self.config_map_name()),
                    "data": { "tempo.toml": toml },
                }),
            ));
        }
        objects.push(("deployment.yaml", self.deployment()));
        objects.push(("service.yaml", self.service()));
        objects.push(("hpa.yaml", self.autoscaler()));
        objects.push(("pdb.yaml", self.disruption_budget()));
        objects
    }

    fn environment(&self) -> Vec<Value> {
        let mut env = vec![
            ("TEMPO_LISTEN", format!("0.0.0.0:{HTTP_PORT}")),
            ("TEMPO_ADMIN", format!("0.0.0.0:{ADMIN_PORT}")),
            ("TEMPO_STATE_DIR", format!("{DATA_DIR}/state")),
            // The OCI cache is the compile cache's sibling: `…/cache/oci`.
            ("TEMPO_CACHE_DIR", format!("{DATA_DIR}/cache/wasmtime")),
            ("TEMPO_MAX_INSTANCES", self.max_instances.to_string()),
            ("TEMPO_MEMORY_MIB", self.memory_mib.to_string()),
            ("TEMPO_LOG_FORMAT", "json".to_owned()),
        ];
        if self.pinned {
            env.push(("TEMPO_OCI_REQUIRE_DIGEST", "true".to_owned()));
        }
        if let Some(url) = &self.nats_url {
            env.push(("NATS_ADDR", url.clone()));
        }
        if let Some(replicas) = self.nats_replicas {
            env.push(("TEMPO_NATS_REPLICAS", replicas.to_string()));
        }
        if let Some(address) = &self.vault_addr {
            env.push(("VAULT_ADDR", address.clone()));
        }
        env.into_iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect()
    }

    fn deployment(&self) -> Value {
        let mut volumes = vec![
            json!({ "name": "data", "emptyDir": {} }),
            json!({ "name": "tmp", "emptyDir": { "medium": "Memory", "sizeLimit": "16Mi" } }),
        ];
        let mut mounts = vec![
            json!({ "name": "data", "mountPath": DATA_DIR }),
            json!({ "name": "tmp", "mountPath": "/tmp" }),
        ];
        if self.tempo_toml.is_some() {
            // tempo.toml in the working folder, read-only, beside the writable state.
            volumes
                .push(json!({ "name": "config", "configMap": { "name": self.config_map_name() } }));
            mounts.push(json!({
                "name": "config",
                "mountPath": format!("{DATA_DIR}/tempo.toml"),
                "subPath": "tempo.toml",
                "readOnly": true,
            }));
        }
        let mut container = json!({
            "name": "tempo",
            "image": self.image,
            "args": ["run", format!("oci://{}", self.reference)],
            "workingDir": DATA_DIR,
            "env": self.environment(),
            "ports": [
                { "name": "http", "containerPort": HTTP_PORT, "protocol": "TCP" },
                { "name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP" },
            ],
            "readinessProbe": {
                "httpGet": { "path": "/readyz", "port": "admin" },
                "periodSeconds": 2,
                "failureThreshold": 2,
            },
            "livenessProbe": {
                "httpGet": { "path": "/livez", "port": "admin" },
                "periodSeconds": 10,
                "failureThreshold": 3,
            },
            "resources": {
                "requests": {
                    "cpu": format!("{}m", self.cpu_millis),
                    "memory": format!("{}Mi", self.memory_request_mib()),
                },
                "limits": { "memory": format!("{}Mi", self.memory_limit_mib) },
            },
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": { "drop": ["ALL"] },
            },
            "volumeMounts": mounts,
        });
        if !self.env_secrets.is_empty() {
            container["envFrom"] = self
                .env_secrets
                .iter()
                .map(|name| json!({ "secretRef": { "name": name } }))
                .collect();
        }
        let mut pod = json!({
            "terminationGracePeriodSeconds": self.termination_grace_seconds(),
            "automountServiceAccountToken": false,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": RUNTIME_UID,
                "runAsGroup": RUNTIME_UID,
                "fsGroup": RUNTIME_UID,
                "seccompProfile": { "type": "RuntimeDefault" },
            },
            "containers": [container],
            "volumes": volumes,
        });
        if !self.image_pull_secrets.is_empty() {
            pod["imagePullSecrets"] = self
                .image_pull_secrets
                .iter()
                .map(|name| json!({ "name": name }))
                .collect();
        }
        let mut template_metadata = json!({ "labels": self.labels() });
        if let Some(toml) = &self.tempo_toml {
            // A changed tempo.toml changes the pod template, so pods roll to it.
            template_metadata["annotations"] =
                json!({ "tempo.dev/config-digest": crate::oci::digest_of(toml.as_bytes()) });
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.metadata(&self.name),
            "spec": {
                // Also the autoscaler's minimum: without a metrics server it never scales, and
                // the pods are still this many.
                "replicas": self.replicas,
                "selector": { "matchLabels": self.selector() },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": { "maxUnavailable": 0, "maxSurge": 1 },
                },
                "template": { "metadata": template_metadata, "spec": pod },
            },
        })
    }

    fn service(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(&self.name),
            "spec": {
                "selector": self.selector(),
                "ports": [
                    { "name": "http", "port": 80, "targetPort": "http", "protocol": "TCP" },
                    { "name": "admin", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP" },
                ],
            },
        })
    }

    fn autoscaler(&self) -> Value {
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": self.metadata(&self.name),
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": self.name },
                "minReplicas": self.replicas,
                "maxReplicas": self.max_replicas,
                "metrics": [{
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": { "type": "Utilization", "averageUtilization": 70 },
                    },
                }],
            },
        })
    }

    fn disruption_budget(&self) -> Value {
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": self.metadata(&self.name),
            "spec": { "maxUnavailable": 1, "selector": { "matchLabels": self.selector() } },
        })
    }
}

/// `name` as a DNS-1123 label (what Kubernetes names most objects by): lowercase, `_` and `.`
/// as `-`; `None` if it cannot be one.
pub(crate) fn dns_label(name: &str) -> Option<String> {
    let label: String = name
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let valid = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    valid.then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            name: "hello".to_owned(),
            namespace: None,
            image: "registry.example/tempo:1".to_owned(),
            reference: "registry.example/hello@sha256:00".to_owned(),
            pinned: true,
            replicas: 2,
            max_replicas: 10,
            cpu_millis: 250,
            max_instances: 8,
            memory_mib: 128,
            memory_limit_mib: 1088,
            shutdown_delay_ms: 5000,
            tempo_toml: Some("[limits]\nmemory-mib = 128\n".to_owned()),
            nats_url: None,
            nats_replicas: None,
            vault_addr: None,
            env_secrets: vec![],
            image_pull_secrets: vec![],
        }
    }

    #[test]
    fn instances_at_their_memory_cap_fit_the_pods_limit() {
        assert_eq!(fit(None, None, 128), Ok((8, 64 + 8 * 128)));
        assert_eq!(fit(None, Some(3), 100), Ok((3, 364)));
        assert_eq!(fit(Some(512), None, 128), Ok((3, 512)));
        assert_eq!(fit(Some(576), Some(4), 128), Ok((4, 576)));
        assert!(
            fit(Some(512), Some(4), 128)
                .unwrap_err()
                .contains("raise --memory to 576")
        );
        assert!(fit(Some(100), None, 128).unwrap_err().contains("at least"));
    }

    #[test]
    fn the_pod_asks_for_its_limit_and_waits_out_the_drain() {
        let app = app();
        assert_eq!(app.termination_grace_seconds(), 5 + 10 + 10 + 5);
        let deployment = app.deployment();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["resources"]["limits"]["memory"], "1088Mi");
        assert_eq!(container["resources"]["requests"]["memory"], "192Mi");
        let delay = App {
            shutdown_delay_ms: 5001,
            ..app
        };
        assert_eq!(delay.termination_grace_seconds(), 6 + 25);
    }

    #[test]
    fn names_become_dns_labels_or_are_refused() {
        assert_eq!(dns_label("Hello_HTTP").as_deref(), Some("hello-http"));
        assert_eq!(dns_label("a.b").as_deref(), Some("a-b"));
        for bad in ["", "-x", "x-", "héllo", &"x".repeat(64)] {
            assert_eq!(dns_label(bad), None, "{bad}");
        }
    }
}
