//! Every `wasi:blobstore` function, exercised by a real guest against both backends; the embedded
//! store across restarts; NATS data read by a plain client, and NATS going away and coming back;
//! guests trying to reach host files, symlinks and other applications' object stores.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::Arc;

use tempo_blobstore::{BlobstoreBackend, BlobstoreConfig, BlobstoreService};
use tempo_runtime_core::wasmtime::component::Component;
use tempo_runtime_core::{
    EngineSettings, GuestStdio, InstanceSettings, Runtime, artifact::Artifact, run_command,
};
use tempo_test_fixtures::{NatsServer, exits_zero_eventually};

/// The size limit the tests configure, so that "one byte more" stays cheap.
const MAX_OBJECT: usize = 64 * 1024;

/// A runtime with the blobstore service, and the suite guest loaded on it.
struct Host {
    runtime: Runtime,
    guest: Component,
}

impl Host {
    async fn start(backend: BlobstoreBackend) -> Self {
        Self::granting(backend, None).await
    }

    /// A host whose guests may use only `containers` (all, with `None`).
    async fn granting(backend: BlobstoreBackend, containers: Option<&[&str]>) -> Self {
        let config = BlobstoreConfig {
            backend,
            max_object_bytes: MAX_OBJECT,
            containers: containers.map(|names| names.iter().map(|n| n.to_string()).collect()),
        };
        let service = BlobstoreService::start(config).await.unwrap();
        let engine = EngineSettings {
            cache_dir: None,
            ..EngineSettings::default()
        }
        .build()
        .unwrap();
        let guest = Artifact::read(tempo_test_fixtures::blobstore_suite())
            .and_then(|file| file.load(&engine, false))
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
    let host = Host::start(BlobstoreBackend::Nats(tempo_nats::NatsServer::new(
        server.url.clone(),
    )))
    .await;
    assert_eq!(host.run(&["suite", "65536"]).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_nats_client_reads_what_the_guest_wrote_and_nats_outages_heal() {
    let mut server = NatsServer::start();
    let host = Host::start(BlobstoreBackend::Nats(tempo_nats::NatsServer::new(
        server.url.clone(),
    )))
    .await;
    assert_eq!(host.run(&["write", "photos", "cat.txt", "meow"]).await, 0);

    assert_eq!(server.object("photos", "cat.txt").await, b"meow");

    server.stop();
    assert_eq!(
        host.run(&["write", "photos", "dog.txt", "woof"]).await,
        2,
        "a write with NATS down"
    );
    server.start_again();
    let healed = exits_zero_eventually(|| host.run(&["write", "photos", "dog.txt", "woof"]));
    assert!(healed.await, "NATS never came back for the guest");
    assert_eq!(
        host.run(&["expect", "photos", "cat.txt", "meow"]).await,
        0,
        "an acknowledged write was lost"
    );
}

/// The names and contents of the files below `dir`, to tell that nothing there changed.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = tempo_test_fixtures::files_below(dir)
        .into_iter()
        .map(|path| {
            let contents = std::fs::read(&path).unwrap_or_default();
            (path, contents)
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn no_container_name_reaches_a_host_folder() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "host secret").unwrap();
    let before = snapshot(outside.path());
    let host = Host::start(embedded(dir.path())).await;
    let path = outside.path().to_str().unwrap();
    assert_eq!(host.run(&["escape", path]).await, 0);
    assert_eq!(snapshot(outside.path()), before, "the host folder changed");
    let state: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        state.len(),
        1,
        "only the blobstore folder is in the state folder"
    );
    assert_eq!(
        host.run(&["expect", "safe", "planted", "from the guest"])
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn symlinks_in_the_state_folder_are_refused_and_crash_leftovers_removed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "host secret").unwrap();
    let host = Host::start(embedded(dir.path())).await;
    assert_eq!(host.run(&["write", "docs", "note", "kept"]).await, 0);
    drop(host);

    let blobs = dir.path().join("blobstore");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), blobs.join("docs/link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), blobs.join("linked")).unwrap();
    std::fs::write(blobs.join("docs/.tmp-0123456789abcdef"), "half a write").unwrap();
    let before = snapshot(outside.path());

    let host = Host::start(embedded(dir.path())).await;
    assert!(
        !blobs.join("docs/.tmp-0123456789abcdef").exists(),
        "the unfinished write is removed at start"
    );
    // A symlinked object is neither read nor statted; a symlinked container is not opened.
    assert_eq!(
        host.run(&["expect", "docs", "link", "host secret"]).await,
        2
    );
    assert_eq!(
        host.run(&["expect", "linked", "secret.txt", "host secret"])
            .await,
        2
    );
    assert_eq!(
        host.run(&["write", "linked", "secret.txt", "overwritten"])
            .await,
        2
    );
    assert_eq!(
        host.run(&["write", "linked", "new.txt", "planted"]).await,
        2
    );
    // Writing the symlinked name replaces the link in the container, not what it points to.
    assert_eq!(host.run(&["write", "docs", "link", "replaced"]).await, 0);
    assert_eq!(host.run(&["expect", "docs", "link", "replaced"]).await, 0);
    assert_eq!(snapshot(outside.path()), before, "the host folder changed");
    assert_eq!(host.run(&["expect", "docs", "note", "kept"]).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_written_after_write_data_are_stored_by_finish() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start();
    for backend in [
        embedded(dir.path()),
        BlobstoreBackend::Nats(tempo_nats::NatsServer::new(server.url.clone())),
    ] {
        let host = Host::start(backend.clone()).await;
        assert_eq!(
            host.run(&["write-late", "late", "blob", "all of it"]).await,
            0
        );
        assert_eq!(
            host.run(&["expect", "late", "blob", "all of it"]).await,
            0,
            "{backend:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn guests_reach_only_granted_containers() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::granting(embedded(dir.path()), Some(&["photos"])).await;
    assert_eq!(host.run(&["write", "photos", "cat", "meow"]).await, 0);
    assert_eq!(host.run(&["write", "archive", "cat", "meow"]).await, 2);
    assert!(!dir.path().join("blobstore/archive").exists());

    // On NATS, another application's object store in the same account is not there for guests,
    // unless it is declared.
    let server = NatsServer::start();
    let other = server
        .jetstream()
        .await
        .create_object_store(async_nats::jetstream::object_store::Config {
            bucket: "billing".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    other.put("ledger", &mut &b"private"[..]).await.unwrap();
    let nats = BlobstoreBackend::Nats(tempo_nats::NatsServer::new(server.url.clone()));
    let host = Host::start(nats.clone()).await;
    assert_eq!(
        host.run(&["expect", "billing", "ledger", "private"]).await,
        2
    );
    assert_eq!(host.run(&["write", "billing", "ledger", "forged"]).await, 2);
    assert_eq!(
        host.run(&["write", "mine", "a", "b"]).await,
        0,
        "tempo's own stores work"
    );
    let host = Host::granting(nats, Some(&["billing", "mine"])).await;
    assert_eq!(
        host.run(&["expect", "billing", "ledger", "private"]).await,
        0
    );
    assert_eq!(host.run(&["expect", "mine", "a", "b"]).await, 0);
}
