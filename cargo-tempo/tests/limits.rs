//! Limits through the real binary: a looping guest is stopped at its deadline and its core
//! freed, a waiting one too, a memory-hungry one fails alone, an oversized body is refused
//! before any guest runs, a client that never finishes its headers is disconnected, and after
//! all of it the server still answers.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::io::{Read as _, Write as _};
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
        ],
    );
    assert!(
        served
            .stderr()
            .contains("deadline 1s, 64 MiB of memory per instance"),
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
    let held = reqwest::blocking::get(format!("{}/hold?url={}", served.url, gate.url)).unwrap();
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

    // An announced body over the limit is refused before any guest runs.
    let client = reqwest::blocking::Client::new();
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
