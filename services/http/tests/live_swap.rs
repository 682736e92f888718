//! Swapping the live component while requests are in flight.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use common::{Server, prepare};
use tempo_test_fixtures::Gate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_completes_on_the_version_it_started_with() {
    let server = Server::start(tempo_test_fixtures::http()).await;
    let gate = Gate::start();
    let client = common::client();

    // Four requests start on v1 and stay in flight until the gate opens.
    let held: Vec<_> = (0..4)
        .map(|_| {
            let request = client.get(format!("{}/hold?url={}", server.url, gate.url));
            tokio::spawn(async move { request.send().await?.text().await })
        })
        .collect();
    let waiting = gate.clone();
    tokio::task::spawn_blocking(move || waiting.wait_for(4))
        .await
        .unwrap();

    // The swap returns at once, with the requests still held.
    let v2 = prepare(&server.runtime, tempo_test_fixtures::http_v2());
    let replaced = server.live.swap(v2);
    assert_eq!(replaced.name(), "http_fixture");

    // New requests run on v2 while v1's are in flight.
    let answer = client
        .get(format!("{}/after", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "http-fixture-v2 /after\n");

    gate.release();
    for request in held {
        let body = request.await.unwrap().unwrap();
        assert_eq!(body, "http-fixture:held\nhttp-fixture:released:200\n");
    }

    server.shutdown.cancel();
    server.serving.await.unwrap().unwrap();
}
