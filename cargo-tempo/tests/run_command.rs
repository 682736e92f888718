//! `cargo tempo run` and `cargo tempo compile` through the real binary.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;

use common::{
    Served, assert_contains, compile, get, get_with_request_id, hello_http, run_program, stderr,
    stdout, tempo,
};
use tempo_test_fixtures::Gate;

#[test]
fn serves_the_example_built_as_wasm() {
    let built = hello_http(false);
    let served = Served::start(&built.wasm);
    let (status, body) = get(&format!("{}/some/path?x=1", served.url));
    assert_eq!(status, 200);
    assert_eq!(body, "Hello from tempo! You asked for /some/path?x=1\n");
}

#[test]
fn release_build_gives_a_bin_that_serves_the_same() {
    let built = hello_http(true);
    let bin = built.bin.as_ref().expect("--release printed no .bin");
    assert_eq!(bin.with_extension("wasm"), built.wasm);
    let served = Served::start(bin);
    assert_eq!(
        get(&format!("{}/from-bin", served.url)),
        (
            200,
            "Hello from tempo! You asked for /from-bin\n".to_owned()
        )
    );
    assert_contains(&served.stderr(), "Linked wasi:http");
}

#[test]
fn compile_writes_a_bin_that_serves() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("app.wasm");
    std::fs::copy(tempo_test_fixtures::http(), &wasm).unwrap();

    let explicit = dir.path().join("out").join("custom.bin");
    std::fs::create_dir_all(explicit.parent().unwrap()).unwrap();
    let output = compile(&wasm, &explicit);
    assert_contains(&stderr(&output), "Precompiled");

    let output = tempo().arg("compile").arg(&wasm).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let default = dir.path().join("app.bin");
    for bin in [explicit.clone(), default] {
        let served = Served::start(&bin);
        assert_eq!(
            get(&format!("{}/x", served.url)),
            (200, "http-fixture /x\n".to_owned())
        );
    }

    // Native code runs only from a `*.bin`: a renamed copy is refused unless the user says so.
    let disguised = dir.path().join("disguised.wasm");
    std::fs::copy(&explicit, &disguised).unwrap();
    let err = refused(&disguised);
    assert!(
        err.contains("holds precompiled native code") && err.contains("--allow-precompiled"),
        "{err}"
    );
    let mut command = tempo();
    command
        .current_dir(dir.path())
        .arg("run")
        .arg(&disguised)
        .args(["--allow-precompiled", "--listen", "127.0.0.1:0"]);
    let mut served = Served::spawn(command);
    served.wait_for_serving();
    assert_eq!(get(&format!("{}/y", served.url)).0, 200);
    let output = tempo()
        .arg("compile")
        .arg(&wasm)
        .args(["-o", "app.wasm"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_contains(&stderr(&output), "`-o app.wasm`");
}

/// Runs `cargo tempo run FILE` on a file that must be refused and returns the one line it printed.
fn refused(file: &Path) -> String {
    let output = tempo().arg("run").arg(file).output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "more than one line:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn bad_inputs_get_one_sentence_and_a_failure_code() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(
        refused(&write("random.bin", &random))
            .contains("is not a WebAssembly component nor a tempo `.bin`")
    );
    assert!(refused(&write("core.wasm", b"\0asm\x01\0\0\0")).contains(
        "is a core WebAssembly module, not a component: build it for wasm32-wasip2 (`cargo tempo build`)"
    ));
    assert!(refused(&dir.path().join("absent.wasm")).contains("cannot read"));

    let bin = dir.path().join("good.bin");
    compile(tempo_test_fixtures::http(), &bin);
    let bytes = std::fs::read(&bin).unwrap();
    assert!(refused(&write("truncated.bin", &bytes[..bytes.len() / 3])).contains("is truncated"));
    let mut doctored = bytes.clone();
    let middle = doctored.len() / 2;
    doctored[middle] ^= 0xff;
    assert!(refused(&write("doctored.bin", &doctored)).contains("is corrupted"));

    let engine = tempo_runtime_core::wasmtime::Engine::default();
    let elf = engine
        .precompile_component(&std::fs::read(tempo_test_fixtures::http()).unwrap())
        .unwrap();
    assert!(
        refused(&write("plain.cwasm", &elf)).contains("was precompiled by wasmtime, not by tempo")
    );
}

#[test]
fn compile_refuses_what_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let output = tempo().arg("compile").arg(&core).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_contains(&stderr(&output), "is a core WebAssembly module");
    assert!(!dir.path().join("core.bin").exists());
}

#[test]
fn a_trap_answers_500_and_the_next_request_200() {
    let mut served = Served::start(tempo_test_fixtures::http());
    let (status, body) = get(&format!("{}/trap", served.url));
    assert_eq!(status, 500);
    assert!(body.len() < 200, "{body}");
    served.wait_for_stderr("GET /trap failed");
    assert_eq!(get(&format!("{}/after", served.url)).0, 200);
}

#[test]
fn guest_output_is_logged_with_the_component_name_and_request_id() {
    let mut served = Served::start(tempo_test_fixtures::http());
    let (status, _, id) = get_with_request_id(&format!("{}/stdout", served.url), None);
    assert_eq!(status, 200);
    served.wait_for_stderr(&format!(
        "[http_fixture {id}] hello on stdout from http-fixture"
    ));
    served.wait_for_stderr(&format!(
        "[http_fixture {id}] hello on stderr from http-fixture"
    ));
}

#[test]
fn a_cli_program_gets_its_arguments_and_its_exit_code_passes_through() {
    let run = |args: &[&str]| run_program(tempo_test_fixtures::cli(), args);
    let output = run(&["hello", "world"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "args: cli-fixture hello world\n");
    assert_eq!(stderr(&output), "cli-fixture on stderr\n");

    assert_eq!(run(&["exit", "7"]).status.code(), Some(7));
    assert_eq!(run(&["fail"]).status.code(), Some(1));
    let trapped = run(&["trap"]);
    assert_eq!(trapped.status.code(), Some(134));
    assert_contains(&stderr(&trapped), "error: `cli-fixture` trapped");
}

#[test]
fn a_guest_sees_no_host_environment_or_folders() {
    let output = tempo()
        .arg("run")
        .arg(tempo_test_fixtures::cli())
        .args(["--", "env"])
        .env("TEMPO_SECRET", "hunter2")
        .output()
        .unwrap();
    assert!(stdout(&output).contains("env: []"), "{}", stdout(&output));
    let output = run_program(tempo_test_fixtures::cli(), &["fs"]);
    assert_contains(&stdout(&output), "fs: denied");
}

#[test]
fn an_import_nobody_provides_is_named() {
    let err = refused(tempo_test_fixtures::missing_import());
    assert_contains(
        &err,
        "imports an interface that no tempo service provides: tempo-fixtures:missing/greeter@0.1.0",
    );
}

#[test]
fn a_component_that_is_neither_served_nor_run_is_refused_with_its_exports_and_missing_imports() {
    let err = refused(tempo_test_fixtures::library_only());
    assert_contains(
        &err,
        "exports no handler tempo serves (wasi:http/incoming-handler, wasi:http/handler, wasi:messaging/incoming-handler) and no wasi:cli/run to run; it exports tempo-fixtures:library/api@0.1.0; it also imports what no tempo service provides: tempo-fixtures:library/host@0.1.0",
    );
}

#[test]
fn a_trap_after_the_response_has_started_is_logged_and_the_body_cut_off() {
    let mut served = Served::start(tempo_test_fixtures::http());
    let response = crate::common::client()
        .get(format!("{}/trap-late", served.url))
        .header("x-request-id", "late-trap-1")
        .send();
    // The head may or may not have left before the connection was closed; the body never ends
    // as if it were whole.
    if let Ok(response) = response {
        assert_eq!(response.status(), 200);
        assert!(response.text().is_err(), "a cut-off body read as whole");
    }
    let line = served.wait_for_stderr("GET /trap-late failed");
    assert_contains(&line, "late-trap-1");
    assert!(served.stderr().contains("trap late"), "{}", served.stderr());
    assert_eq!(get(&format!("{}/", served.url)).0, 200);
}

#[test]
fn a_busy_listen_address_names_the_flag() {
    let first = Served::start(tempo_test_fixtures::http());
    let address = first.url.trim_start_matches("http://");
    let output = tempo()
        .arg("run")
        .arg(tempo_test_fixtures::http())
        .args(["--listen", address])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!(
            "cannot listen on {address} (`--listen`, `TEMPO_LISTEN` or `[http] listen` in tempo.toml)"
        )),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_bad_variable_is_named_and_an_empty_one_is_unset() {
    let output = tempo()
        .arg("run")
        .arg(tempo_test_fixtures::http())
        .env("TEMPO_LISTEN", "nowhere")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_contains(
        &stderr(&output),
        "`TEMPO_LISTEN=nowhere`: invalid value 'nowhere' for '--listen",
    );
    let output = tempo()
        .args(["run", "missing.wasm"])
        .env("TEMPO_LISTEN", "")
        .env("TEMPO_MAX_INSTANCES", "")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_contains(&stderr(&output), "cannot read `missing.wasm`");
}

/// A rolling deploy's stop: `/readyz` fails at the first SIGTERM while tempo goes on serving for
/// the shutdown delay; then it stops accepting, lets the request in flight finish and exits 0.
#[test]
fn sigterm_fails_readiness_serves_through_the_delay_then_finishes_what_is_in_flight() {
    let (mut served, admin) = Served::with_admin(
        tempo_test_fixtures::http(),
        &[
            ("TEMPO_ALLOWED_OUTBOUND_HOSTS", "http://127.0.0.1:*"),
            ("TEMPO_HTTP_SHUTDOWN_DELAY_MS", "5000"),
        ],
    );
    let banner = served.wait_for_stderr("Shutdown");
    assert_contains(&banner, "serving 5s more");
    let probe = |path: &str| get(&format!("http://{admin}{path}"));
    assert_eq!(probe("/readyz"), (200, "ready\n".to_owned()));
    assert_eq!(probe("/livez"), (200, "ok\n".to_owned()));
    let gate = Gate::start();
    let url = format!("{}/hold?url={}", served.url, gate.url);
    let held = std::thread::spawn(move || get(&url));
    gate.wait_for(1);

    served.signal(libc::SIGTERM);
    served.wait_for_stderr("Draining");
    assert_eq!(probe("/readyz"), (503, "draining\n".to_owned()));
    assert_eq!(probe("/livez").0, 200);
    // Until the delay is over, new requests are served as before.
    assert_eq!(get(&format!("{}/during-the-delay", served.url)).0, 200);
    served.wait_for_stderr("Stopping");
    let address = served.url.trim_start_matches("http://").to_owned();
    let refused = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::net::TcpStream::connect(&address).is_err()
    });
    assert!(refused, "still accepting after SIGTERM");

    gate.release();
    assert_eq!(
        held.join().unwrap(),
        (
            200,
            "http-fixture:held\nhttp-fixture:released:200\n".to_owned()
        )
    );
    assert_eq!(served.wait(), Some(0));
    assert!(served.stderr().contains("Stopped"), "{}", served.stderr());
}

/// Sends `request` as written on a connection of its own; the answer, until the server closes.
fn raw(address: &str, request: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn a_request_needs_one_host_and_tempos_headers_are_tempos() {
    let served = Served::start(tempo_test_fixtures::http());
    let address = served.url.trim_start_matches("http://");
    for (request, status) in [
        ("GET / HTTP/1.0\r\n\r\n", " 400 "),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            " 400 ",
        ),
        (
            "GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
            " 400 ",
        ),
        ("GET / HTTP/1.0\r\nHost: tempo.test\r\n\r\n", " 200 "),
        (
            "GET / HTTP/1.1\r\nHost: tempo.test\r\nConnection: close\r\n\r\n",
            " 200 ",
        ),
    ] {
        let answer = raw(address, request);
        let line = answer.lines().next().unwrap_or_default();
        assert!(line.contains(status), "{request:?}: {answer}");
    }
    // A guest cannot answer as if its build were stale, nor name the request.
    let response = crate::common::http_get(format!("{}/forge", served.url)).unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-tempo-stale").is_none());
    assert_ne!(response.headers()["x-request-id"], "forged");
    assert_eq!(get(&format!("{}/after", served.url)).0, 200);
}

#[test]
fn outgoing_requests_reach_public_hosts_and_only_the_listed_others() {
    let gate = Gate::start();
    gate.release();
    let gate_port = gate
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let fetch = |served: &Served, url: &str| get(&format!("{}/fetch?url={url}", served.url));

    // By default: loopback (by address or by a name resolving to it), the cloud metadata address
    // and tempo itself are denied before any connection is made.
    let mut served = Served::start(tempo_test_fixtures::http());
    assert!(
        served
            .stderr()
            .contains("outgoing requests to public addresses"),
        "{}",
        served.stderr()
    );
    for url in [
        gate.url.clone(),
        format!("http://localhost:{gate_port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::ffff:169.254.169.254]/".to_owned(),
        format!("{}/x", served.url),
    ] {
        let (status, body) = fetch(&served, &url);
        assert!(
            status == 502 && body.contains("HttpRequestDenied"),
            "{url}: {status} {body}"
        );
    }
    served.wait_for_stderr("allowed-outbound-hosts");

    // 0.0.0.0 connects to whatever listens here: tempo counts it as its own address, so even a
    // rule for every address reaches tempo only through one that names its port. So is the
    // admin server's, bound on a port only known once it listens.
    let (everything, admin) = Served::with_admin(
        tempo_test_fixtures::http(),
        &[("TEMPO_ALLOWED_OUTBOUND_HOSTS", "http://0.0.0.0/0:*")],
    );
    let own_port = everything.url.rsplit(':').next().unwrap().to_owned();
    for own in [
        format!("http://0.0.0.0:{own_port}/x"),
        format!("http://127.0.0.1:{own_port}/x"),
        format!("http://{admin}/metrics"),
    ] {
        let (status, body) = fetch(&everything, &own);
        assert!(
            status == 502 && body.contains("HttpRequestDenied"),
            "{own}: {status} {body}"
        );
    }
    let gate_by_zero = format!("http://0.0.0.0:{gate_port}/");
    assert_eq!(
        fetch(&everything, &gate_by_zero),
        (200, "200 ok".to_owned())
    );

    // Listed, the gate is reached, also through a name that resolves to the listed address.
    let listed = format!("http://127.0.0.1:{gate_port}");
    let served = Served::start_with(
        tempo_test_fixtures::http(),
        &[("TEMPO_ALLOWED_OUTBOUND_HOSTS", &listed)],
    );
    assert_eq!(fetch(&served, &gate.url), (200, "200 ok".to_owned()));
    let by_name = format!("http://localhost:{gate_port}/");
    assert_eq!(fetch(&served, &by_name).1, "200 ok");
    let (status, body) = fetch(&served, "http://169.254.169.254/");
    assert!(
        status == 502 && body.contains("HttpRequestDenied"),
        "{status} {body}"
    );

    // A rule that does not parse is one line naming the setting.
    let output = tempo()
        .arg("run")
        .arg(tempo_test_fixtures::http())
        .args(["--allow-outbound", "api.example.com"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("allowed-outbound-hosts") && err.contains("SCHEME://HOST"),
        "{err}"
    );
}
