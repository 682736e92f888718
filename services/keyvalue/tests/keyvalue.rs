//! Every `wasi:keyvalue` function, exercised by a real guest against both backends; the embedded
//! store across restarts; NATS data read by a plain client, and NATS going away and coming back.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::Path;
use std::sync::Arc;

use tempo_keyvalue::{KeyValueBackend, KeyValueConfig, KeyValueService};
use tempo_runtime_core::wasmtime::component::Component;
use tempo_runtime_core::{
    EngineSettings, GuestStdio, InstanceSettings, Runtime, artifact::Artifact, run_command,
};
use tempo_test_fixtures::{NatsServer, exits_zero_eventually};

/// The size limit the tests configure, so that "one byte more" stays cheap.
const MAX_VALUE: usize = 4096;

/// A runtime with the keyvalue service, and the suite guest loaded on it.
struct Host {
    runtime: Runtime,
    guest: Component,
}

impl Host {
    async fn start(backend: KeyValueBackend) -> anyhow::Result<Self> {
        let config = KeyValueConfig {
            backend,
            buckets: vec!["default".into(), "second".into()],
            max_value_bytes: MAX_VALUE,
        };
        let service = KeyValueService::start(config).await?;
        let engine = EngineSettings {
            cache_dir: None,
            ..EngineSettings::default()
        }
        .build()?;
        let guest = Artifact::read(tempo_test_fixtures::keyvalue_suite())
            .and_then(|file| file.load(&engine, false))?
            .component;
        let mut runtime = Runtime::new(engine);
        runtime.add_service(Arc::new(service));
        Ok(Self { runtime, guest })
    }

    /// Runs the guest with `args` and returns its exit code.
    async fn run(&self, args: &[&str]) -> i32 {
        let settings = InstanceSettings {
            args: std::iter::once("keyvalue-suite")
                .chain(args.iter().copied())
                .map(String::from)
                .collect(),
            stdio: GuestStdio::Inherit,
            ..InstanceSettings::named("keyvalue-suite")
        };
        let version = self.runtime.prepare(&self.guest, settings).unwrap();
        run_command(&version).await.unwrap()
    }
}

fn embedded(dir: &Path) -> KeyValueBackend {
    KeyValueBackend::Embedded {
        path: dir.join("state").join("keyvalue.redb"),
    }
}

fn nats(server: &NatsServer) -> KeyValueBackend {
    KeyValueBackend::Nats(tempo_nats::NatsServer::new(server.url.clone()))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_function_works_on_the_embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(embedded(dir.path())).await.unwrap();
    assert_eq!(host.run(&["suite", "default", "4096"]).await, 0);
    assert_eq!(host.run(&["suite", "second", "4096"]).await, 0);
    assert!(dir.path().join("state/keyvalue.redb").is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = Host::start(embedded(dir.path())).await.unwrap();
    assert_eq!(first.run(&["set", "default", "greeting", "hello"]).await, 0);
    assert_eq!(first.run(&["incr", "second", "visits", "2", "2"]).await, 0);
    drop(first);

    let second = Host::start(embedded(dir.path())).await.unwrap();
    assert_eq!(
        second
            .run(&["expect", "default", "greeting", "hello"])
            .await,
        0
    );
    assert_eq!(second.run(&["incr", "second", "visits", "1", "3"]).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_tempo_on_the_same_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Host::start(embedded(dir.path())).await.unwrap();
    let err = Host::start(embedded(dir.path()))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("is in use by another tempo: give this one its own `--state-dir`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_names_are_checked() {
    let config = KeyValueConfig {
        buckets: vec!["has space".into()],
        ..KeyValueConfig::default()
    };
    let err = KeyValueService::start(config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        "`has space` cannot be a bucket name: use 1 to 128 letters, digits, `-` and `_`"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_function_works_on_nats() {
    let server = NatsServer::start();
    let host = Host::start(nats(&server)).await.unwrap();
    assert_eq!(host.run(&["suite", "default", "4096"]).await, 0);
    assert_eq!(host.run(&["suite", "second", "4096"]).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_nats_client_reads_what_the_guest_wrote() {
    let server = NatsServer::start();
    let host = Host::start(nats(&server)).await.unwrap();
    assert_eq!(host.run(&["set", "default", "greeting", "hello"]).await, 0);
    assert_eq!(host.run(&["set", "second", "user:42", "ada"]).await, 0);
    assert_eq!(host.run(&["incr", "default", "visits", "7", "7"]).await, 0);

    let js = server.jetstream().await;
    let default = js.get_key_value("default").await.unwrap();
    assert_eq!(default.get("greeting").await.unwrap().unwrap(), "hello");
    assert_eq!(default.get("visits").await.unwrap().unwrap(), "7");
    let second = js.get_key_value("second").await.unwrap();
    assert_eq!(second.get("user=3A42").await.unwrap().unwrap(), "ada");

    // A key too long for a NATS subject is the guest's error, before anything is sent: the
    // shared connection stays up for the next operation.
    let long_key = "k".repeat(5000);
    assert_eq!(host.run(&["set", "default", &long_key, "x"]).await, 2);
    assert_eq!(host.run(&["expect", "default", &long_key, "-"]).await, 2);
    assert_eq!(host.run(&["set", "default", "after", "fine"]).await, 0);
    assert_eq!(host.run(&["expect", "default", "after", "fine"]).await, 0);

    // And the other way round.
    default.put("from-outside", "42".into()).await.unwrap();
    assert_eq!(
        host.run(&["expect", "default", "from-outside", "42"]).await,
        0
    );
    assert_eq!(
        host.run(&["incr", "default", "from-outside", "1", "43"])
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_going_away_gives_errors_and_coming_back_heals_without_a_restart() {
    let mut server = NatsServer::start();
    let host = Host::start(nats(&server)).await.unwrap();
    assert_eq!(host.run(&["set", "default", "before", "kept"]).await, 0);

    server.stop();
    assert_eq!(
        host.run(&["set", "default", "during", "x"]).await,
        2,
        "a write with NATS down"
    );
    assert_eq!(
        host.run(&["expect", "default", "before", "kept"]).await,
        2,
        "a read with NATS down"
    );

    server.start_again();
    // The client reconnects on its own; keep asking until it has.
    let healed = exits_zero_eventually(|| host.run(&["set", "default", "after", "back"]));
    assert!(healed.await, "NATS never came back for the guest");
    assert_eq!(
        host.run(&["expect", "default", "before", "kept"]).await,
        0,
        "an acknowledged write was lost"
    );
    assert_eq!(host.run(&["expect", "default", "after", "back"]).await, 0);
}
