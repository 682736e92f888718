//! WASI 0.3 components through the real binary. HTTP handlers (`wasi:http/handler@0.3.0`) are
//! served like WASI 0.2 ones (routes, bodies streamed both ways, outgoing requests under the same
//! rules, tempo's services, the limits, a trap answered with a 500 while serving goes on), with
//! their instances reused; `wasi:cli/run@0.3.0` programs run.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};

use common::{
    Served, assert_contains, compile, get, get_with_request_id, run_program, scratch, stderr,
};

/// A loopback server answering its first request with a 204.
fn answer_once() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = [0u8; 1024];
        let _ = stream.read(&mut head).unwrap();
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    });
    url
}

#[test]
fn a_wasi_p3_handler_is_served_with_its_instances_reused() {
    let allowed = answer_once();
    let (mut served, admin) = Served::with_admin(
        tempo_test_fixtures::http_p3(),
        &[
            ("TEMPO_ALLOWED_OUTBOUND_HOSTS", &allowed),
            ("TEMPO_HTTP_INSTANCE_REUSE", "3"),
        ],
    );
    let url = &served.url.clone();

    let (status, body, echoed) = get_with_request_id(&format!("{url}/hello"), Some("p3-1"));
    assert_eq!(
        (status, body.as_str(), echoed.as_str()),
        (200, "p3 /hello", "p3-1")
    );
    // An instance takes up to 3 requests (the first one was /hello), then a fresh one comes.
    let counts: Vec<String> = (0..4).map(|_| get(&format!("{url}/count")).1).collect();
    assert_eq!(counts, ["2", "3", "1", "2"]);
    // A 0.3 component imports tempo's services as 0.2 ones do: the count outlives instances.
    assert_eq!(get(&format!("{url}/hits")), (200, "1".into()));
    assert_eq!(get(&format!("{url}/hits")), (200, "2".into()));

    // Bodies stream both ways, past what one write carries.
    let data: Vec<u8> = (0..2 * 1024 * 1024 + 3)
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    let echoed = crate::common::client()
        .post(format!("{url}/echo"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(echoed.status(), 200);
    assert_eq!(echoed.bytes().unwrap().as_ref(), data.as_slice());
    let (status, streamed) = get(&format!("{url}/stream?500"));
    assert_eq!((status, streamed.len()), (200, 500_000));
    assert!(streamed.starts_with(&"a".repeat(1000)) && streamed.ends_with(&"f".repeat(1000)));

    // A trap is the request's 500, logged with its id; the server goes on.
    let (status, _, _) = get_with_request_id(&format!("{url}/trap"), Some("p3-trap"));
    assert_eq!(status, 500);
    served.wait_for_stderr("the fixture traps on purpose");
    let failed = served.wait_for_stderr("GET /trap failed");
    assert_contains(&failed, "p3-trap");
    assert_eq!(
        served.stderr().matches("ERROR").count(),
        1,
        "{}",
        served.stderr()
    );
    // An instance that trapped is never reused: the next request finds a fresh one.
    assert_eq!(get(&format!("{url}/count")), (200, "1".into()));
    assert_eq!(get(&format!("{url}/after")), (200, "p3 /after".into()));

    // Outgoing requests through wasi:http 0.3 meet the same rules: loopback only when allowed.
    assert_eq!(
        get(&format!("{url}/fetch?{allowed}/")),
        (200, "fetched 204".into())
    );
    let (status, _) = get(&format!("{url}/fetch?http://{admin}/healthz"));
    assert_eq!(status, 500);
    served.wait_for_stderr(&format!("a guest's request to {admin} was denied"));

    let (_, metrics) = get(&format!("http://{admin}/metrics"));
    for expected in [
        "tempo_http_requests_total{component=\"http_p3_fixture\",status=\"200\"} 12",
        "tempo_http_requests_total{component=\"http_p3_fixture\",status=\"500\"} 2",
        "tempo_traps_total{component=\"http_p3_fixture\"} 1",
    ] {
        assert!(metrics.contains(expected), "no {expected:?} in:\n{metrics}");
    }
}

/// An instance that takes several requests at once tells them apart: what its guest prints for
/// one request carries that request's id, also once another request has begun on it.
#[test]
fn a_reused_instance_logs_each_request_under_its_own_id() {
    let mut served = Served::start(tempo_test_fixtures::http_p3());
    let url = served.url.clone();
    // The first request's handler prints, then waits for a body the client holds back...
    let mut first = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    first
        .write_all(
            b"POST /log?first HTTP/1.1\r\nhost: tempo\r\nx-request-id: p3-first\r\n\
              content-length: 4\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
    served.wait_for_stderr("[http_p3_fixture p3-first] first begins as request 1 ");
    // ...while a second request begins and ends on the same instance...
    let (status, _, _) = get_with_request_id(&format!("{url}/log?second"), Some("p3-second"));
    assert_eq!(status, 200);
    served.wait_for_stderr("[http_p3_fixture p3-second] second begins as request 2 ");
    served.wait_for_stderr("[http_p3_fixture p3-second] second ends");
    // ...then the first one's body comes, and what it prints next is still its own.
    first.write_all(b"body").unwrap();
    let mut answer = String::new();
    first.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let ended = served.wait_for_stderr("first ends");
    assert_contains(&ended, "[http_p3_fixture p3-first] first ends");
}

/// A request whose response ended whole is never blamed when its instance fails later: here the
/// instance is stopped when another request's task calls the host past that request's deadline.
#[test]
fn an_instance_stopped_later_blames_no_request_that_had_succeeded() {
    let mut served = Served::start_with(
        tempo_test_fixtures::http_p3(),
        &[("TEMPO_DEADLINE_MS", "1000")],
    );
    let url = served.url.clone();
    // The first request's handler waits for a body the client holds back...
    let mut late = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    late.write_all(
        b"POST /log?late HTTP/1.1\r\nhost: tempo\r\nx-request-id: p3-late\r\n\
          content-length: 4\r\n\r\n",
    )
    .unwrap();
    served.wait_for_stderr("late begins as request 1 ");
    // ...while a second one begins and ends whole on the same instance.
    let (status, _, _) = get_with_request_id(&format!("{url}/log?done"), Some("p3-done"));
    assert_eq!(status, 200);
    served.wait_for_stderr("done begins as request 2 ");
    // The first is answered 504 at its deadline; its body comes after, and its task prints.
    let mut head = [0u8; 12];
    late.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 504");
    let _ = late.write_all(b"body");
    // Once its instance is stopped, a fresh one answers: the first request it has counted.
    let started = std::time::Instant::now();
    while get(&format!("{url}/count")) != (200, "1".to_owned()) {
        assert!(
            started.elapsed() < common::PATIENCE,
            "the instance was never stopped"
        );
    }
    let stderr = served.stderr();
    assert!(
        !stderr
            .lines()
            .any(|line| line.contains("ERROR") && line.contains("p3-done")),
        "{stderr}"
    );
}

#[test]
fn a_wasi_p3_handler_compiles_to_a_bin_that_runs() {
    let folder = scratch("http-p3-bin");
    std::fs::create_dir_all(&folder).unwrap();
    let bin = folder.join("http_p3_fixture.bin");
    compile(tempo_test_fixtures::http_p3(), &bin);
    // The `.bin` is compiled with async support, and `run` builds the engine it needs.
    let mut served = Served::start(&bin);
    assert_eq!(
        get(&format!("{}/from-bin", served.url)),
        (200, "p3 /from-bin".into())
    );
    served.signal(libc::SIGTERM);
    assert_eq!(served.wait(), Some(0));
}

#[test]
fn a_wasi_p3_handler_meets_the_deadline_and_the_memory_limit() {
    let (mut served, admin) = Served::with_admin(
        tempo_test_fixtures::http_p3(),
        &[("TEMPO_DEADLINE_MS", "1000"), ("TEMPO_MEMORY_MIB", "32")],
    );
    let url = &served.url.clone();
    // A guest that computes for ever is stopped at its deadline.
    let (status, _, _) = get_with_request_id(&format!("{url}/spin"), Some("p3-spin"));
    assert_eq!(status, 504);
    let stopped = served.wait_for_stderr("GET /spin failed");
    assert_contains(&stopped, "p3-spin");
    // One that allocates past its memory limit fails alone.
    assert_eq!(
        get(&format!("{url}/alloc?4")),
        (200, (4u64 << 20).to_string())
    );
    let (status, _) = get(&format!("{url}/alloc?64"));
    assert_eq!(status, 500);
    served.wait_for_stderr("memory");
    assert_eq!(get(&format!("{url}/after")), (200, "p3 /after".into()));
    // One stopped after its response has started: the body ends with an error, not cleanly.
    // (Last: until it is stopped, its instance holds up what is queued for it.)
    let cut = crate::common::http_get(format!("{url}/stream-then-spin")).unwrap();
    assert_eq!(cut.status(), 200);
    assert!(cut.bytes().is_err(), "a cut-off body read as whole");
    // Each failure is logged once, by whoever knows why, and counted once.
    served.wait_for_stderr("GET /stream-then-spin failed");
    let errors = served.stderr().matches("ERROR").count();
    assert_eq!(errors, 3, "{}", served.stderr());
    let (_, metrics) = get(&format!("http://{admin}/metrics"));
    for (limit, count) in [("deadline", 2), ("memory", 1)] {
        let expected = format!(
            "tempo_limits_hit_total{{component=\"http_p3_fixture\",limit=\"{limit}\"}} {count}"
        );
        assert!(
            metrics.contains(&expected),
            "no {expected:?} in:\n{metrics}"
        );
    }
}

#[test]
fn a_wasi_p3_program_runs_and_its_exit_code_is_tempos() {
    let run = |args: &[&str]| run_program(tempo_test_fixtures::cli_p3(), args);
    let output = run(&["one", "two"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(common::stdout(&output), "p3 args: one two\n");
    let output = run(&["fail"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}
