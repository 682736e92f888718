//! Running the real `cargo-tempo` binary: one-shot commands, servers, and the example built once.

#![allow(dead_code, reason = "each test file uses part of this")]

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempo_test_fixtures::poll;

/// The binary under test, with colors off, no inherited log settings, and no shutdown delay
/// (a test that stops tempo need not wait for load balancers; the one that tests the delay
/// sets it).
pub(crate) fn tempo() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-tempo"));
    command
        .env("CARGO_TERM_COLOR", "never")
        .env("TEMPO_HTTP_SHUTDOWN_DELAY_MS", "0")
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

/// `cargo tempo run COMPONENT -- ARGS` to its end: a program's output and exit code.
pub(crate) fn run_program(component: &Path, args: &[&str]) -> Output {
    let mut command = tempo();
    command.arg("run").arg(component).arg("--").args(args);
    command.output().unwrap()
}

/// Rewrites the crate's `src/lib.rs` in `project`, replacing `from` with `to`.
pub(crate) fn edit_source(project: &Path, from: &str, to: &str) {
    let path = project.join("src/lib.rs");
    let source = std::fs::read_to_string(&path).unwrap();
    assert!(source.contains(from), "{from:?} not in the source");
    std::fs::write(&path, source.replace(from, to)).unwrap();
}

/// `PUT url` with `body`; the status.
pub(crate) fn put(url: &str, body: impl Into<reqwest::blocking::Body>) -> u16 {
    client()
        .put(url)
        .body(body)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// `cargo tempo compile COMPONENT -o BIN`, which must succeed; its output.
pub(crate) fn compile(component: &Path, bin: &Path) -> Output {
    let output = tempo()
        .arg("compile")
        .args([component, Path::new("-o"), bin])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

/// A fresh folder holding the file `name` with `contents` (a `tempo.toml`, say).
pub(crate) fn folder_with(name: &str, contents: &str) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join(name), contents).unwrap();
    folder
}

/// Asserts that `text` holds `needle`, showing both when it does not.
#[track_caller]
pub(crate) fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected `{needle}` in:\n{text}");
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// What `cargo tempo build` of an example printed on stdout.
pub(crate) struct Built {
    pub(crate) wasm: PathBuf,
    pub(crate) bin: Option<PathBuf>,
}

/// Builds examples/hello-http through the binary, once per test process and profile.
pub(crate) fn hello_http(release: bool) -> &'static Built {
    example("hello-http", release)
}

/// Builds `examples/NAME` through the binary, once per test process, example and profile.
pub(crate) fn example(name: &str, release: bool) -> &'static Built {
    static BUILT: Mutex<Vec<(String, bool, &'static Built)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if let Some((_, _, done)) = built.iter().find(|(n, r, _)| n == name && *r == release) {
        return done;
    }
    let mut command = tempo();
    command
        .current_dir(workspace().join("examples").join(name))
        .arg("build")
        .arg("--target-dir")
        .arg(scratch("examples"));
    if release {
        command.arg("--release");
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "build of {name} failed:\n{}",
        stderr(&output)
    );
    let paths: Vec<PathBuf> = stdout(&output).lines().map(PathBuf::from).collect();
    let wasm = paths
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "wasm"));
    let bin = paths
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "bin"));
    let done: &'static Built = Box::leak(Box::new(Built {
        wasm: wasm.expect("no .wasm printed").clone(),
        bin: bin.cloned(),
    }));
    built.push((name.to_owned(), release, done));
    done
}

/// A `cargo tempo run` process serving on a free port; killed when dropped.
pub(crate) struct Served {
    child: Child,
    /// The folder it runs in, so its state stays out of the repository.
    _folder: Option<tempfile::TempDir>,
    pub(crate) url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// How long a test waits for something tempo should do (a first build compiles dependencies);
/// only a guard against hanging, never a measure of speed.
pub(crate) const PATIENCE: Duration = tempo_test_fixtures::PATIENCE;

impl Served {
    /// `cargo tempo run COMPONENT --listen 127.0.0.1:0` in a fresh folder, once it serves.
    pub(crate) fn start(component: &Path) -> Self {
        Self::start_with(component, &[])
    }

    /// [`Served::start`] with these environment variables.
    pub(crate) fn start_with(component: &Path, env: &[(&str, &str)]) -> Self {
        let mut served = Self::launch(component, env);
        served.wait_for_serving();
        served
    }

    /// [`Served::start_with`] with its admin server on a free port too; returns the admin
    /// server's address beside it.
    pub(crate) fn with_admin(component: &Path, env: &[(&str, &str)]) -> (Self, String) {
        let env = [env, &[("TEMPO_ADMIN", "127.0.0.1:0")]].concat();
        let mut served = Self::start_with(component, &env);
        let admin = served.wait_for_admin();
        (served, admin)
    }

    /// `cargo tempo run COMPONENT --listen 127.0.0.1:0` in a fresh folder, with these
    /// environment variables, without waiting for anything.
    pub(crate) fn launch(component: &Path, env: &[(&str, &str)]) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let mut served = Self::launch_in(folder.path(), component, env);
        served._folder = Some(folder);
        served
    }

    /// [`Served::launch`] in `folder`, where it reads `tempo.toml` and `.env`.
    pub(crate) fn launch_in(folder: &Path, component: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = tempo();
        command
            .current_dir(folder)
            .arg("run")
            .arg(component)
            .args(["--listen", "127.0.0.1:0"])
            .envs(env.iter().copied());
        Self::spawn(command)
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
            _folder: None,
            url: String::new(),
            stdout,
            stderr,
        }
    }

    /// The process id of the running tempo.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory, in bytes.
    #[allow(dead_code, reason = "not every test binary measures memory")]
    pub(crate) fn resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// Waits for the `Serving http://…` line and takes the address from it.
    pub(crate) fn wait_for_serving(&mut self) {
        let line = self.wait_for_stderr("Serving http://");
        self.url = line.split_whitespace().last().unwrap().to_owned();
    }

    /// Waits for the `Metrics http://HOST:PORT/metrics` line and returns `HOST:PORT`, the admin
    /// address.
    pub(crate) fn wait_for_admin(&mut self) -> String {
        let line = self.wait_for_stderr("Metrics http://");
        let url = line.split_whitespace().last().unwrap();
        url.trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .to_owned()
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
        let child = &mut self.child;
        let status = poll(Duration::from_millis(20), || child.try_wait().unwrap());
        match status {
            Some(status) => status.code(),
            None => panic!("tempo did not exit; stderr:\n{}", self.stderr()),
        }
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
    let line = poll(Duration::from_millis(20), || {
        if let Some(line) = buffer.lock().unwrap().lines().find(|l| l.contains(needle)) {
            return Some(line.to_owned());
        }
        if let Ok(Some(status)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "tempo exited ({status}) before printing {needle:?}:\n{}",
                buffer.lock().unwrap()
            );
        }
        None
    });
    line.unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", buffer.lock().unwrap()))
}

/// A test's HTTP client. reqwest needs rustls' process provider installed first, as tempo
/// installs it.
pub(crate) fn client() -> reqwest::blocking::Client {
    client_builder().build().unwrap()
}

/// A builder of [`client`]s.
pub(crate) fn client_builder() -> reqwest::blocking::ClientBuilder {
    tempo_runtime_core::install_crypto_provider();
    reqwest::blocking::Client::builder()
}

/// A GET of `url` with a [`client`].
pub(crate) fn http_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::blocking::Response> {
    client().get(url).send()
}

/// A GET with a real HTTP client; returns the status and body.
pub(crate) fn get(url: &str) -> (u16, String) {
    let response = http_get(url).unwrap();
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}

/// A GET with a real HTTP client, sending `x-request-id: id` if given; returns the status, the
/// body and the response's `x-request-id`.
pub(crate) fn get_with_request_id(url: &str, id: Option<&str>) -> (u16, String, String) {
    let mut request = client().get(url);
    if let Some(id) = id {
        request = request.header("x-request-id", id);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let echoed = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, response.text().unwrap(), echoed)
}

/// Copies `examples/NAME` (manifest, lock file, sources) into `into`.
pub(crate) fn copy_example(name: &str, into: &Path) {
    let example = workspace().join("examples").join(name);
    std::fs::create_dir_all(into.join("src")).unwrap();
    for file in ["Cargo.toml", "Cargo.lock", "src/lib.rs", "tempo.toml"] {
        if example.join(file).exists() {
            std::fs::copy(example.join(file), into.join(file)).unwrap();
        }
    }
}

/// A copy of `examples/NAME` at `ROOT/examples/NAME` beside copies of `sdk/` and `wit/`, the
/// shape the example's `../../sdk` expects; returns ROOT (removed when dropped) and the copy.
pub(crate) fn example_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("examples").join(name);
    copy_example(name, &project);
    for folder in ["sdk", "wit"] {
        let from = workspace().join(folder);
        for entry in tempo_test_fixtures::files_below(&from) {
            let target = root
                .path()
                .join(folder)
                .join(entry.strip_prefix(&from).unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&entry, target).unwrap();
        }
    }
    (root, project)
}

/// GETs `url` until the body contains `needle` and returns that body and the response's
/// `x-tempo-stale` header.
pub(crate) fn wait_for_body(url: &str, needle: &str) -> (String, Option<String>) {
    let mut last = String::new();
    let found = poll(Duration::from_millis(20), || {
        let response = http_get(url).ok()?;
        let stale = response
            .headers()
            .get("x-tempo-stale")
            .map(|value| value.to_str().unwrap().to_owned());
        last = response.text().unwrap_or_default();
        last.contains(needle).then(|| (last.clone(), stale))
    });
    found.unwrap_or_else(|| panic!("{url} never answered {needle:?}; last answer: {last:?}"))
}
