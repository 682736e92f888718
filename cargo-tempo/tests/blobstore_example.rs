//! examples/blobstore as a user meets it: files uploaded and downloaded over HTTP, whole or by
//! range, in a folder with no setup, and in a NATS JetStream object store when `NATS_ADDR` is set.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use common::{Served, example};
use tempo_test_fixtures::NatsServer;

/// 100 kB that are not all alike.
fn payload() -> Vec<u8> {
    (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

#[test]
fn files_go_up_and_come_down_whole_or_by_range() {
    let served = Served::start(&example("blobstore", false).wasm);
    let client = crate::common::client();
    let url = format!("{}/files/photo.jpg", served.url);
    let data = payload();

    let put = client.put(&url).body(data.clone()).send().unwrap();
    assert_eq!(put.status(), 201);
    let got = client.get(&url).send().unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().unwrap().as_ref(), data.as_slice());

    let part = client
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().unwrap().as_ref(), &data[10..=19]);
    assert_eq!(
        client
            .get(&url)
            .header("range", "bytes=999999-")
            .send()
            .unwrap()
            .status(),
        416
    );

    let list = client
        .get(format!("{}/files", served.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(list, r#"{"files":[{"name":"photo.jpg","size":100000}]}"#);
    assert_eq!(client.delete(&url).send().unwrap().status(), 204);
    assert_eq!(client.get(&url).send().unwrap().status(), 404);
}

#[test]
fn with_nats_addr_the_files_are_in_a_jetstream_object_store() {
    let server = NatsServer::start();
    let served = Served::start_with(
        &example("blobstore", false).wasm,
        &[("NATS_ADDR", &server.url)],
    );
    assert!(
        served
            .stderr()
            .contains("wasi:blobstore: NATS JetStream object stores at"),
        "{}",
        served.stderr()
    );
    let data = payload();
    let url = format!("{}/files/photo.jpg", served.url);
    assert_eq!(crate::common::put(&url, data.clone()), 201);

    let stored = tempo_test_fixtures::block_on(server.object("files", "photo.jpg"));
    assert_eq!(stored, data);
}
