//! Running the real `cargo-tempo` binary: one-shot commands, servers, and the example built once.

#![allow(dead_code, reason = "each test file uses part of this")]

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The binary under test, with colors off and no inherited log settings.
pub(crate) fn tempo() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-tempo"));
    command
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("RUST_LOG");
    command
}

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A folder under the workspace's target folder that survives between test runs.
pub(crate) fn scratch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// What `cargo tempo build` of examples/hello-http printed on stdout.
pub(crate) struct Built {
    pub(crate) wasm: PathBuf,
    pub(crate) bin: Option<PathBuf>,
}

/// Builds examples/hello-http through the binary, once per test process and profile.
pub(crate) fn hello_http(release: bool) -> &'static Built {
    static DEBUG: OnceLock<Built> = OnceLock::new();
    static RELEASE: OnceLock<Built> = OnceLock::new();
    let cell = if release { &RELEASE } else { &DEBUG };
    cell.get_or_init(|| {
        let mut command = tempo();
        command
            .current_dir(workspace().join("examples/hello-http"))
            .arg("build")
            .arg("--target-dir")
            .arg(scratch("examples"));
        if release {
            command.arg("--release");
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "build failed:\n{}",
            stderr(&output)
        );
        let paths: Vec<PathBuf> = stdout(&output).lines().map(PathBuf::from).collect();
        let wasm = paths
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == "wasm"));
        let bin = paths
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == "bin"));
        Built {
            wasm: wasm.expect("no .wasm printed").clone(),
            bin: bin.cloned(),
        }
    })
}

/// A `cargo tempo run` process serving on a free port; killed when dropped.
pub(crate) struct Served {
    child: Child,
    pub(crate) url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// How long a test waits for something tempo should do (a first build compiles dependencies);
/// only a guard against hanging, never a measure of speed.
pub(crate) const PATIENCE: Duration = Duration::from_secs(300);

impl Served {
    /// `cargo tempo run COMPONENT --listen 127.0.0.1:0`, once it serves.
    pub(crate) fn start(component: &Path) -> Self {
        let mut command = tempo();
        command
            .arg("run")
            .arg(component)
            .args(["--listen", "127.0.0.1:0"]);
        let mut served = Self::spawn(command);
        served.wait_for_serving();
        served
    }

    /// Starts `command`, collecting its output, without waiting for anything.
    pub(crate) fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Self {
            child,
            url: String::new(),
            stdout,
            stderr,
        }
    }

    /// Waits for the `Serving http://…` line and takes the address from it.
    pub(crate) fn wait_for_serving(&mut self) {
        let line = self.wait_for_stderr("Serving http://");
        self.url = line.split_whitespace().last().unwrap().to_owned();
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub(crate) fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        #[allow(unsafe_code)]
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "kill failed");
    }

    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a line of stderr contains `needle` and returns that line.
    pub(crate) fn wait_for_stderr(&mut self, needle: &str) -> String {
        wait_for_line(&self.stderr, needle, &mut self.child)
    }

    /// Waits until a line of stdout contains `needle` and returns that line.
    pub(crate) fn wait_for_stdout(&mut self, needle: &str) -> String {
        wait_for_line(&self.stdout, needle, &mut self.child)
    }

    /// Waits for the process to exit and returns its exit code.
    pub(crate) fn wait(&mut self) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("tempo did not exit; stderr:\n{}", self.stderr());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buffer = Arc::new(Mutex::new(String::new()));
    let writer = buffer.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut buffer = writer.lock().unwrap();
            buffer.push_str(&line);
            buffer.push('\n');
        }
    });
    buffer
}

fn wait_for_line(buffer: &Mutex<String>, needle: &str, child: &mut Child) -> String {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if let Some(line) = buffer.lock().unwrap().lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "tempo exited ({status}) before printing {needle:?}:\n{}",
                buffer.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no line with {needle:?} in:\n{}", buffer.lock().unwrap());
}

/// A GET with a real HTTP client; returns the status and body.
pub(crate) fn get(url: &str) -> (u16, String) {
    let response = reqwest::blocking::get(url).unwrap();
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}
