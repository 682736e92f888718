//! Every `wasi:blobstore` function, exercised by a real guest against both backends; the embedded
//! store across restarts; NATS data read by a plain client, and NATS going away and coming back.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tempo_blobstore::{BlobstoreBackend, BlobstoreConfig, BlobstoreService};
use tempo_runtime_core::wasmtime::component::Component;
use tempo_runtime_core::{
    EngineSettings, GuestStdio, InstanceSettings, Runtime, artifact, run_command,
};
use tempo_test_fixtures::NatsServer;

/// The size limit the tests configure, so that "one byte more" stays cheap.
const MAX_OBJECT: usize = 64 * 1024;

/// A runtime with the blobstore service, and the suite guest loaded on it.
struct Host {
    runtime: Runtime,
    guest: Component,
}

impl Host {
    async fn start(backend: BlobstoreBackend) -> Self {
        let config = BlobstoreConfig {
            backend,
            max_object_bytes: MAX_OBJECT,
        };
        let service = BlobstoreService::start(config).await.unwrap();
        let engine = EngineSettings {
            cache_dir: None,
            ..EngineSettings::default()
        }
        .build()
        .unwrap();
        let guest = artifact::load(&engine, tempo_test_fixtures::blobstore_suite())
            .unwrap()
            .component;
        let mut runtime = Runtime::new(engine);
        runtime.add_service(Arc::new(service));
        Self { runtime, guest }
    }

    /// Runs the guest with `args` and returns its exit code.
    async fn run(&self, args: &[&str]) -> i32 {
        let settings = InstanceSettings {
            args: std::iter::once("blobstore-suite")
                .chain(args.iter().copied())
                .map(String::from)
                .collect(),
            stdio: GuestStdio::Inherit,
            ..InstanceSettings::named("blobstore-suite")
        };
        let version = self.runtime.prepare(&self.guest, settings).unwrap();
        run_command(&version).await.unwrap()
    }
}

fn embedded(dir: &std::path::Path) -> BlobstoreBackend {
    BlobstoreBackend::Embedded {
        dir: dir.join("blobstore"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_function_works_on_the_embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(embedded(dir.path())).await;
    assert_eq!(host.run(&["suite", "65536"]).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_objects_are_files_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = Host::start(embedded(dir.path())).await;
    assert_eq!(
        first
            .run(&["write", "docs", "notes/today.txt", "hello"])
            .await,
        0
    );
    drop(first);
    let path = dir.path().join("blobstore/docs/notes%2Ftoday.txt");
    assert_eq!(std::fs::read_to_string(path).unwrap(), "hello");
    let second = Host::start(embedded(dir.path())).await;
    assert_eq!(
        second
            .run(&["expect", "docs", "notes/today.txt", "hello"])
            .await,
        0
    );
    assert_eq!(second.run(&["expect", "docs", "other", "-"]).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_function_works_on_nats() {
    let server = NatsServer::start();
    let host = Host::start(BlobstoreBackend::Nats {
        url: server.url.clone(),
    })
    .await;
    assert_eq!(host.run(&["suite", "65536"]).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_nats_client_reads_what_the_guest_wrote_and_nats_outages_heal() {
    use tokio::io::AsyncReadExt as _;

    let mut server = NatsServer::start();
    let host = Host::start(BlobstoreBackend::Nats {
        url: server.url.clone(),
    })
    .await;
    assert_eq!(host.run(&["write", "photos", "cat.txt", "meow"]).await, 0);

    let client = async_nats::connect(&server.url).await.unwrap();
    let store = async_nats::jetstream::new(client)
        .get_object_store("photos")
        .await
        .unwrap();
    let mut object = store.get("cat.txt").await.unwrap();
    let mut text = String::new();
    object.read_to_string(&mut text).await.unwrap();
    assert_eq!(text, "meow");

    server.stop();
    assert_eq!(
        host.run(&["write", "photos", "dog.txt", "woof"]).await,
        2,
        "a write with NATS down"
    );
    server.start_again();
    let start = Instant::now();
    while host.run(&["write", "photos", "dog.txt", "woof"]).await != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "NATS never came back for the guest"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        host.run(&["expect", "photos", "cat.txt", "meow"]).await,
        0,
        "an acknowledged write was lost"
    );
}
