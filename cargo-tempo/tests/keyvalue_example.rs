//! examples/keyvalue as a user meets it: counting visits under `cargo tempo dev` with no setup,
//! through an edit and a restart, and storing the same data in NATS JetStream when `NATS_ADDR`
//! is set.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;

use common::{PATIENCE, Served, example, get, scratch, tempo, wait_for_body};
use tempo_test_fixtures::NatsServer;

/// The number in `"visits":N` of a body.
fn visits(body: &str) -> u64 {
    let at = body
        .find("\"visits\":")
        .unwrap_or_else(|| panic!("no visits in {body}"))
        + "\"visits\":".len();
    body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// `cargo tempo dev` in `project`, once it serves.
fn dev(project: &Path) -> Served {
    let mut command = tempo();
    command
        .current_dir(project)
        .args(["dev", "--listen", "127.0.0.1:0", "--target-dir"])
        .arg(scratch("examples"));
    let mut dev = Served::spawn(command);
    dev.wait_for_serving();
    dev
}

#[test]
fn the_count_survives_an_edit_and_a_restart_of_dev() {
    let (_root, project) = common::example_copy("keyvalue");

    let mut first = dev(&project);
    assert_eq!(visits(&get(&first.url).1), 1);
    assert_eq!(visits(&get(&first.url).1), 2);

    let source = project.join("src/lib.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(
        &source,
        text.replace("Welcome to the keyvalue example", "Welcome back"),
    )
    .unwrap();
    let (body, _) = wait_for_body(&first.url, "Welcome back");
    let after_reload = visits(&body);
    assert!(
        after_reload > 2,
        "the count restarted after the reload: {body}"
    );

    first.signal(libc::SIGINT);
    assert_eq!(first.wait(), Some(0));
    let second = dev(&project);
    assert_eq!(
        visits(&get(&second.url).1),
        after_reload + 1,
        "the count did not survive the restart"
    );
    assert!(project.join(".tempo/keyvalue.redb").is_file());
}

#[test]
fn with_nats_addr_the_data_is_in_jetstream_for_any_client() {
    let server = NatsServer::start();
    let built = example("keyvalue", false);
    let served = Served::start_with(&built.wasm, &[("NATS_ADDR", &server.url)]);
    assert!(
        served
            .stderr()
            .contains("wasi:keyvalue: NATS JetStream KV at"),
        "{}",
        served.stderr()
    );

    assert_eq!(visits(&get(&served.url).1), 1);
    let put = crate::common::client()
        .put(format!("{}/docs/ada", served.url))
        .body(r#"{"name":"Ada"}"#)
        .send()
        .unwrap();
    assert_eq!(put.status(), 201);

    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async {
        let client = async_nats::connect(&server.url).await.unwrap();
        let bucket = async_nats::jetstream::new(client)
            .get_key_value("default")
            .await
            .unwrap();
        assert_eq!(bucket.get("visits").await.unwrap().unwrap(), "1");
        assert_eq!(
            bucket.get("docs.ada").await.unwrap().unwrap(),
            r#"{"name":"Ada"}"#
        );
    });
}

#[test]
fn while_nats_is_down_requests_fail_cleanly_and_tempo_serves_on() {
    let mut server = NatsServer::start();
    let built = example("keyvalue", false);
    let served = Served::start_with(&built.wasm, &[("NATS_ADDR", &server.url)]);
    assert_eq!(visits(&get(&served.url).1), 1);

    server.stop();
    let (status, body) = get(&served.url);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("NATS"), "{body}");
    // The server itself is fine: a route that needs no store still answers.
    assert_eq!(get(&format!("{}/nowhere", served.url)).0, 404);

    server.start_again();
    let start = std::time::Instant::now();
    let body = loop {
        let (status, body) = get(&served.url);
        if status == 200 {
            break body;
        }
        assert!(start.elapsed() < PATIENCE, "never healed: {body}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        visits(&body),
        2,
        "the count from before the outage was lost"
    );
}
