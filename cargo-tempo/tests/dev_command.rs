//! `cargo tempo dev` through the real binary, on temporary copies of examples/hello-http and
//! on a crate made from the http-p3 template.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use common::{Served, edit_source, scratch, tempo, wait_for_body};

/// A copy of examples/hello-http in a fresh folder.
fn copy_example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_example("hello-http", dir.path());
    dir
}

fn dev(project: &Path, extra: &[&str]) -> Served {
    let mut command = tempo();
    command
        .current_dir(project)
        .args(["dev", "--listen", "127.0.0.1:0"])
        .args(extra);
    Served::spawn(command)
}

/// Clients sending requests back to back, one reusing its connection and one opening a new
/// connection for each request, counting every answer that is not a 200.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(url: &str) -> Self {
        let load = Self {
            stop: Arc::default(),
            ok: Arc::default(),
            failures: Arc::default(),
            threads: Vec::new(),
        };
        let clients = [
            crate::common::client(),
            crate::common::client_builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        ];
        let threads = clients
            .into_iter()
            .map(|client| {
                let (url, stop, ok, failures) = (
                    url.to_owned(),
                    load.stop.clone(),
                    load.ok.clone(),
                    load.failures.clone(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match client.get(&url).send() {
                            Ok(response) if response.status() == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(response) => failures
                                .lock()
                                .unwrap()
                                .push(format!("status {}", response.status())),
                            Err(err) => failures.lock().unwrap().push(err.to_string()),
                        }
                    }
                })
            })
            .collect();
        Self { threads, ..load }
    }

    /// Stops the clients and checks that every answer was a 200, and that there were some.
    fn finish_without_failures(self) {
        let (ok, failures) = self.finish();
        assert!(
            failures.is_empty(),
            "{} failed requests: {failures:?}",
            failures.len()
        );
        assert!(ok > 0);
    }

    /// Stops the clients and returns (answers that were 200, failures).
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

#[test]
fn edits_reload_the_running_server_without_a_failed_request() {
    let project = copy_example();
    let root = project.path();
    let mut dev = dev(root, &[]);
    dev.wait_for_serving();
    let url = format!("{}/page", dev.url);
    assert_eq!(
        wait_for_body(&url, "Hello from tempo! You asked for /page").1,
        None
    );

    let load = Load::start(&url);

    edit_source(root, "Hello from tempo!", "Hello v2!");
    assert_eq!(wait_for_body(&url, "Hello v2!").1, None);
    dev.wait_for_stderr("Reloaded hello-http in");

    // A broken edit: v2 goes on serving, and says so.
    edit_source(root, "struct HelloHttp;", "struct HelloHttp;\nfn broken( {");
    dev.wait_for_stderr("warning: the build failed; still serving the last good build");
    let (_, stale) = wait_for_body(&url, "Hello v2!");
    assert_eq!(
        stale.as_deref(),
        Some("the build failed; serving the last good build")
    );

    edit_source(root, "struct HelloHttp;\nfn broken( {", "struct HelloHttp;");
    edit_source(root, "Hello v2!", "Hello v3!");
    assert_eq!(wait_for_body(&url, "Hello v3!").1, None);

    // Writes under target/ start no build; the next real edit is the only change seen.
    std::fs::write(root.join("target/tempo-test-touch"), "x").unwrap();
    let depfile = root.join("target/wasm32-wasip2/debug/hello_http.d");
    let mut contents = std::fs::read(&depfile).unwrap();
    contents.push(b'\n');
    std::fs::write(&depfile, contents).unwrap();
    edit_source(root, "Hello v3!", "Hello v4!");
    assert_eq!(wait_for_body(&url, "Hello v4!").1, None);

    load.finish_without_failures();
    let changes: Vec<String> = dev
        .stderr()
        .lines()
        .filter(|l| l.contains("Changed"))
        .map(str::to_owned)
        .collect();
    assert!(!changes.is_empty());
    // An edit that lands while a build runs restarts it, and says so; either way the
    // only file ever named is the source.
    assert!(
        changes.iter().all(|line| {
            let line = line.trim_start();
            line == "Changed src/lib.rs" || line == "Changed src/lib.rs; restarting the build"
        }),
        "{changes:?}"
    );

    dev.signal(libc::SIGINT);
    assert_eq!(dev.wait(), Some(0));
    assert!(dev.stderr().contains("Stopped"), "{}", dev.stderr());
}

#[test]
fn a_failed_first_build_keeps_watching_and_serves_at_the_first_success() {
    let project = copy_example();
    let root = project.path();
    edit_source(root, "struct HelloHttp;", "struct HelloHttp;\nfn broken( {");
    let target = scratch("dev-first-build");
    let mut dev = dev(root, &["--target-dir", target.to_str().unwrap()]);
    dev.wait_for_stderr("warning: the build failed; waiting for a change");
    assert!(!dev.stderr().contains("Serving"));

    edit_source(root, "struct HelloHttp;\nfn broken( {", "struct HelloHttp;");
    dev.wait_for_serving();
    wait_for_body(
        &format!("{}/x", dev.url),
        "Hello from tempo! You asked for /x",
    );
}

#[test]
fn a_build_overtaken_by_an_edit_is_cancelled_and_edits_coalesce() {
    let project = copy_example();
    let root = project.path();
    // A build script that takes 4 s whenever the source changes keeps each build in progress
    // long enough to be overtaken.
    std::fs::write(
        root.join("build.rs"),
        "fn main() {\n    println!(\"cargo:rerun-if-changed=src/lib.rs\");\n    std::thread::sleep(std::time::Duration::from_secs(4));\n}\n",
    )
    .unwrap();
    let target = scratch("dev-overtaken");
    let mut dev = dev(root, &["--target-dir", target.to_str().unwrap()]);
    dev.wait_for_serving();
    let url = format!("{}/", dev.url);

    edit_source(root, "Hello from tempo!", "Hello first!");
    dev.wait_for_stderr("Changed src/lib.rs");
    edit_source(root, "Hello first!", "Hello second!");
    dev.wait_for_stderr("Changed src/lib.rs; restarting the build");
    wait_for_body(&url, "Hello second!");
    dev.wait_for_stderr("Reloaded hello-http");
    let reloads = dev.stderr().matches("Reloaded hello-http").count();
    assert_eq!(reloads, 1, "{}", dev.stderr());
}

#[test]
fn a_wasi_p3_component_is_swapped_and_requests_in_flight_finish_on_their_version() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p3-dev");
    let created = tempo()
        .args(["new", "p3-dev", "--template", "http-p3", "--path"])
        .arg(&project)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", common::stderr(&created));
    // The target folder the template test builds in: wasip3 compiles once.
    let target = scratch("examples");
    let mut dev = dev(&project, &["--target-dir", target.to_str().unwrap()]);
    dev.wait_for_serving();
    let hello = format!("{}/hello/Ada", dev.url);
    assert_eq!(wait_for_body(&hello, "Hello, Ada!").1, None);

    let load = Load::start(&hello);
    // A response still being written when the new version comes: 60 lines, 200 ms apart.
    let in_flight = crate::common::http_get(format!("{}/countdown?60", dev.url)).unwrap();
    assert_eq!(in_flight.status(), 200);
    edit_source(&project, "liftoff", "touchdown");
    edit_source(&project, "Hello, {name}!", "Hi, {name}!");
    assert_eq!(wait_for_body(&hello, "Hi, Ada!").1, None);
    dev.wait_for_stderr("Reloaded p3-dev in");

    // The old version's instance finished the response it had begun.
    let text = in_flight.text().unwrap();
    assert!(
        text.starts_with("60\n59\n") && text.ends_with("1\nliftoff\n"),
        "{text}"
    );
    let countdown = crate::common::http_get(format!("{}/countdown?1", dev.url)).unwrap();
    assert_eq!(countdown.text().unwrap(), "1\ntouchdown\n");
    load.finish_without_failures();

    dev.signal(libc::SIGINT);
    assert_eq!(dev.wait(), Some(0));
}
