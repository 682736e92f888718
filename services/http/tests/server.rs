//! The server's behaviour: keep-alive, outgoing requests, traps, graceful shutdown.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;
use tempo_test_fixtures::{Gate, read_head};

fn host_port(url: &str) -> &str {
    url.trim_start_matches("http://")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_many_requests() {
    let server = Server::start(tempo_test_fixtures::http()).await;
    let address = host_port(&server.url).to_owned();
    let answers = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut answers = Vec::new();
        for path in ["/one", "/two", "/three"] {
            write!(stream, "GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").unwrap();
            answers.push(read_chunked_response(&mut stream));
        }
        answers
    })
    .await
    .unwrap();
    assert_eq!(
        answers,
        [
            "http-fixture /one\n",
            "http-fixture /two\n",
            "http-fixture /three\n"
        ]
    );
}

/// Reads one `transfer-encoding: chunked` response and returns its body.
fn read_chunked_response(stream: &mut TcpStream) -> String {
    let head = read_head(stream);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let mut body = Vec::new();
    loop {
        let size_line = read_line(stream);
        let size = usize::from_str_radix(size_line.trim(), 16).unwrap();
        let mut chunk = vec![0; size + 2];
        stream.read_exact(&mut chunk).unwrap();
        if size == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..size]);
    }
    String::from_utf8(body).unwrap()
}

fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while !line.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).unwrap();
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_makes_outgoing_requests() {
    let server = Server::start(tempo_test_fixtures::http()).await;
    let gate = Gate::start();
    gate.release();
    let body = common::http_get(format!("{}/fetch?url={}", server.url, gate.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "200 ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_answers_500_and_the_server_goes_on() {
    let server = Server::start(tempo_test_fixtures::http()).await;
    let trapped = common::http_get(format!("{}/trap", server.url))
        .await
        .unwrap();
    assert_eq!(trapped.status(), 500);
    assert!(
        trapped
            .text()
            .await
            .unwrap()
            .contains("the component failed")
    );
    let next = common::http_get(format!("{}/next", server.url))
        .await
        .unwrap();
    assert_eq!(next.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_lets_requests_in_flight_finish() {
    let server = Server::start(tempo_test_fixtures::http()).await;
    let gate = Gate::start();
    let held = common::client()
        .get(format!("{}/hold?url={}", server.url, gate.url))
        .send()
        .await
        .unwrap();
    let waiting = gate.clone();
    tokio::task::spawn_blocking(move || waiting.wait_for(1))
        .await
        .unwrap();

    server.shutdown.cancel();
    // The listener closes while the held request is still in flight.
    let address = host_port(&server.url).to_owned();
    let refused = tokio::task::spawn_blocking(move || {
        for _ in 0..200 {
            if TcpStream::connect(&address).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    });
    assert!(refused.await.unwrap(), "still accepting after shutdown");
    assert!(!server.serving.is_finished());

    gate.release();
    assert_eq!(
        held.text().await.unwrap(),
        "http-fixture:held\nhttp-fixture:released:200\n"
    );
    server.serving.await.unwrap().unwrap();
}
