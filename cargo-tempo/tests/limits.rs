//! Limits through the real binary: a looping guest is stopped at its deadline and its core
//! freed, a waiting one too, a memory-hungry one fails alone, an oversized body is refused
//! before any guest runs, a client that never finishes its headers is disconnected, idle
//! connections hold nothing and past the connection cap new ones wait rather than fail, a client
//! that stalls its upload or stops reading its download is cut off, and after all of it the server
//! still answers.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Served, get};
use tempo_test_fixtures::Gate;

/// The CPU time the process has used so far (user and system), from `/proc`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // /proc counts in USER_HZ, which Linux fixes at 100 per second for user space.
    Duration::from_millis(ticks * 10)
}

fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn a_guest_or_client_that_overreaches_fails_alone_and_the_server_goes_on() {
    let mut served = Served::start_with(
        tempo_test_fixtures::http(),
        &[
            ("TEMPO_DEADLINE_MS", "1000"),
            ("TEMPO_MEMORY_MIB", "64"),
            ("TEMPO_HTTP_MAX_BODY_BYTES", "1000"),
            ("TEMPO_HTTP_HEADER_TIMEOUT_MS", "1000"),
            ("TEMPO_ALLOWED_OUTBOUND_HOSTS", "http://127.0.0.1:*"),
            ("TEMPO_MAX_RESOURCES", "100"),
        ],
    );
    assert!(
        served
            .stderr()
            .contains("deadline 1s, 64 MiB of memory, 100 resources per instance"),
        "{}",
        served.stderr()
    );
    let pid = served.pid();

    // A guest that computes for ever: 504, and its core is free again.
    let started = Instant::now();
    let (status, body) = get(&format!("{}/loop", served.url));
    assert_eq!(status, 504, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the deadline never came"
    );
    served.wait_for_stderr("ran past its deadline of 1s");
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(2));
    let burnt = cpu_time(pid) - before;
    assert!(
        burnt < Duration::from_millis(1000),
        "still computing: {burnt:?} of CPU in 2 s"
    );

    // A guest waiting on something that never comes: 504 before its response starts, the
    // connection closed after.
    let gate = Gate::start();
    let (status, _) = get(&format!("{}/fetch?url={}", served.url, gate.url));
    assert_eq!(status, 504);
    let held = crate::common::http_get(format!("{}/hold?url={}", served.url, gate.url)).unwrap();
    assert_eq!(held.status(), 200);
    assert!(
        held.text().is_err(),
        "a cut-off body must not read as complete"
    );

    // Memory past the limit fails that request alone; the host stays small.
    let (status, _) = get(&format!("{}/alloc?mib=512", served.url));
    assert_eq!(status, 500);
    served.wait_for_stderr("over its limit of 64 MiB");
    assert_eq!(get(&format!("{}/alloc?mib=16", served.url)).0, 200);
    let rss = resident_bytes(pid);
    assert!(rss < 400 << 20, "tempo holds {} MiB", rss >> 20);

    // Host resources past the limit stop that instance alone.
    assert_eq!(get(&format!("{}/resources?n=50", served.url)).0, 200);
    assert_eq!(get(&format!("{}/resources?n=1000", served.url)).0, 500);
    served.wait_for_stderr("held more than 100 host resources");

    // An announced body over the limit is refused before any guest runs.
    let client = crate::common::client();
    let refused = client
        .post(format!("{}/echo", served.url))
        .body(vec![b'x'; 2000])
        .send()
        .unwrap();
    assert_eq!(refused.status(), 413);

    // A client that sends half its headers and waits is disconnected.
    let address = served.url.trim_start_matches("http://");
    let mut slow = std::net::TcpStream::connect(address).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    let read = slow.read_to_end(&mut answer);
    assert!(read.is_ok(), "not disconnected: {read:?}");

    assert_eq!(
        get(&format!("{}/", served.url)).0,
        200,
        "the server goes on"
    );
}

/// Sends `head` (and whatever body bytes it ends with) on a new connection to `address`.
fn send_partial(address: &str, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Asserts that the server ended `stream`'s connection without a complete response body.
fn assert_cut_off(stream: &mut TcpStream) {
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok()
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the connection was not ended: {read:?}"
    );
    assert!(
        !answer.contains("\r\n0\r\n\r\n"),
        "a complete body: {answer}"
    );
}

#[test]
fn idle_connections_hold_nothing_and_past_the_cap_new_ones_wait() {
    let (served, admin) = Served::with_admin(
        tempo_test_fixtures::http(),
        &[
            ("TEMPO_HTTP_MAX_CONNECTIONS", "1001"),
            ("TEMPO_HTTP_HEADER_TIMEOUT_MS", "20000"),
        ],
    );
    let address = served.url.trim_start_matches("http://").to_owned();

    // A thousand connections that send nothing: a request on one more is still answered.
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    assert_eq!(get(&format!("{}/", served.url)).0, 200);

    // At the cap, accepting pauses: the next request waits in the backlog (counted), and is
    // answered once a connection closes.
    idle.push(TcpStream::connect(&address).unwrap());
    let waiting = std::thread::spawn({
        let url = served.url.clone();
        move || get(&format!("{url}/")).0
    });
    let started = Instant::now();
    loop {
        let (_, metrics) = get(&format!("http://{admin}/metrics"));
        let counted = metrics.lines().any(|line| {
            line.starts_with("tempo_limits_hit_total") && line.contains("limit=\"connections\"")
        });
        if counted {
            break;
        }
        assert!(
            started.elapsed() < common::PATIENCE,
            "the cap was never hit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    idle.truncate(idle.len() - 10);
    assert_eq!(waiting.join().unwrap(), 200);

    // The idle connections are closed by the server at the header timeout, not left open.
    let mut first = idle.swap_remove(0);
    first
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut nothing = Vec::new();
    assert!(first.read_to_end(&mut nothing).is_ok(), "still open");
}

#[test]
fn a_client_that_stalls_its_upload_or_its_download_is_cut_off() {
    // A deadline far away, so that only the stall timeout can end these requests in time.
    let served = Served::start_with(
        tempo_test_fixtures::http(),
        &[
            ("TEMPO_HTTP_STALL_TIMEOUT_MS", "1000"),
            ("TEMPO_HTTP_MAX_BODY_BYTES", "100000000"),
            ("TEMPO_DEADLINE_MS", "600000"),
        ],
    );
    let address = served.url.trim_start_matches("http://");

    // An upload that stops halfway: the guest's read fails after the stall timeout (long
    // before the 60 s deadline) and the client is told, by an unfinished response.
    let mut upload = send_partial(
        address,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nten bytes.",
    );
    assert_cut_off(&mut upload);

    // A body that comes in pieces, each wait under the stall timeout, is read whole: the
    // stall timer is armed afresh at each wait, not counted from the first.
    let mut trickle = send_partial(
        address,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\nConnection: close\r\n\r\n",
    );
    for piece in ["ten bytes.", "ten bytes.", "ten bytes."] {
        std::thread::sleep(Duration::from_millis(500));
        trickle.write_all(piece.as_bytes()).unwrap();
    }
    let mut answer = Vec::new();
    trickle.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("ten bytes.").count(), 3, "{answer}");

    // One that stalls after a piece that came late is still cut off at the stall timeout.
    let mut late = send_partial(
        address,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
    );
    std::thread::sleep(Duration::from_millis(500));
    late.write_all(b"ten bytes.").unwrap();
    assert_cut_off(&mut late);

    // A download the client does not read: the server's writes back up, then (the guest no
    // longer reading) so does this upload. The server closes the connection after the stall
    // timeout, which fails this write; had it waited on the client, the write would time out.
    let size = 48 << 20;
    let mut download = send_partial(
        address,
        &format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"),
    );
    download
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let written = download.write_all(&vec![b'x'; size]);
    let err = written.expect_err("48 MiB went through a client that reads nothing");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "the server did not close the stalled connection: {err}"
    );

    assert_eq!(
        get(&format!("{}/", served.url)).0,
        200,
        "the server goes on"
    );
}
