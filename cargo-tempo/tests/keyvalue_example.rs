//! examples/keyvalue as a user meets it: counting visits under `cargo tempo dev` with no setup,
//! through an edit and a restart, and storing the same data in NATS JetStream when `NATS_ADDR`
//! is set.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;

use common::{
    PATIENCE, Served, assert_contains, edit_source, example, get, scratch, tempo, wait_for_body,
};
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

    edit_source(&project, "Welcome to the keyvalue example", "Welcome back");
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
    let url = format!("{}/docs/ada", served.url);
    assert_eq!(crate::common::put(&url, r#"{"name":"Ada"}"#), 201);

    tempo_test_fixtures::block_on(async {
        let bucket = server.jetstream().await.get_key_value("default").await;
        let bucket = bucket.unwrap();
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
    assert_contains(&body, "NATS");
    // The server itself is fine: a route that needs no store still answers.
    assert_eq!(get(&format!("{}/nowhere", served.url)).0, 404);

    server.start_again();
    let mut last = String::new();
    let body = tempo_test_fixtures::poll(std::time::Duration::from_millis(200), || {
        let (status, body) = get(&served.url);
        last.clone_from(&body);
        (status == 200).then_some(body)
    })
    .unwrap_or_else(|| panic!("never healed: {last}"));
    assert_eq!(
        visits(&body),
        2,
        "the count from before the outage was lost"
    );
}

/// `PUT /docs/{id}` of a small document; whether it was answered 2xx.
fn put_doc(url: &str, id: usize) -> bool {
    crate::common::client()
        .put(format!("{url}/docs/d{id}"))
        .body(format!("{{\"n\":{id}}}"))
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .is_ok_and(|response| response.status().is_success())
}

#[test]
fn on_a_three_node_cluster_every_answered_write_outlives_the_node_tempo_was_on() {
    let mut cluster = tempo_test_fixtures::NatsCluster::start(3);
    let built = example("keyvalue", false);
    // Given one node only: tempo learns the others from the cluster.
    let node = cluster.url(0);
    let (served, admin) = Served::with_admin(
        &built.wasm,
        &[("NATS_ADDR", &node), ("TEMPO_NATS_REPLICAS", "3")],
    );
    assert_contains(&served.stderr(), ", 3 replicas");

    let mut answered = Vec::new();
    for id in 0..20 {
        assert!(put_doc(&served.url, id), "write {id} before any failure");
        answered.push(id);
    }
    // The node tempo is connected to dies; writes go on until 20 more were answered.
    cluster.kill(0);
    let killed = std::time::Instant::now();
    let (mut failed, mut window, mut slowest) =
        (0, std::time::Duration::ZERO, std::time::Duration::ZERO);
    let mut id = 20;
    while answered.len() < 40 {
        assert!(killed.elapsed() < PATIENCE, "writes never came back");
        let sent = std::time::Instant::now();
        if put_doc(&served.url, id) {
            answered.push(id);
            slowest = slowest.max(sent.elapsed());
        } else {
            failed += 1;
            window = killed.elapsed();
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        id += 1;
    }
    eprintln!(
        "after the node's death: {failed} writes failed (the last {window:?} after it); the slowest answered took {slowest:?}"
    );
    // The loss of the connection was logged once and counted.
    let metrics = get(&format!("http://{admin}/metrics")).1;
    assert_contains(&metrics, "tempo_nats_events_total{event=\"disconnected\"");
    assert_eq!(
        served.stderr().matches("lost NATS at").count(),
        1,
        "{}",
        served.stderr()
    );
    cluster.restart(0);

    // Every answered write is there, through tempo and on each node.
    for id in &answered {
        let (status, body) = get(&format!("{}/docs/d{id}", served.url));
        assert_eq!(
            (status, body.as_str()),
            (200, format!("{{\"n\":{id}}}").as_str())
        );
    }
    let tokio = tokio::runtime::Runtime::new().unwrap();
    for index in 0..3 {
        tokio.block_on(async {
            let client = async_nats::connect(cluster.url(index)).await.unwrap();
            let bucket = async_nats::jetstream::new(client)
                .get_key_value("default")
                .await
                .unwrap();
            let status = bucket.status().await.unwrap();
            assert_eq!(status.info.config.num_replicas, 3);
            for id in &answered {
                assert!(
                    bucket.get(format!("docs.d{id}")).await.unwrap().is_some(),
                    "d{id} on n{index}"
                );
            }
        });
    }
    drop(served);

    // A bucket that exists keeps its replicas, with a warning once; a count larger than
    // JetStream keeps is refused in one line naming the setting.
    let served = Served::start_with(
        &built.wasm,
        &[("NATS_ADDR", &cluster.urls()), ("TEMPO_NATS_REPLICAS", "1")],
    );
    assert_eq!(get(&format!("{}/docs/d0", served.url)).0, 200);
    let warned = served.stderr();
    assert!(
        warned.contains(
            "the JetStream KV bucket `default` has 3 replica(s) and `[nats] replicas` asks for 1"
        ),
        "{warned}"
    );
    drop(served);
    let output = tempo()
        .env("NATS_ADDR", cluster.url(1))
        .env("TEMPO_NATS_REPLICAS", "7")
        .arg("run")
        .arg(&built.wasm)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        common::stderr(&output).contains(
            "`TEMPO_NATS_REPLICAS` or `[nats] replicas` in tempo.toml is 7: JetStream keeps 1 to 5 replicas"
        ),
        "{}",
        common::stderr(&output)
    );
}

#[test]
fn more_replicas_than_the_server_has_is_one_line_naming_the_setting() {
    let server = NatsServer::start();
    let built = example("keyvalue", false);
    let output = tempo()
        .env("NATS_ADDR", &server.url)
        .env("TEMPO_NATS_REPLICAS", "3")
        .arg("run")
        .arg(&built.wasm)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let said = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains("cannot create the JetStream KV bucket `default`")
            && said.contains("with 3 replicas (`[nats] replicas`)")
            && said.contains("not supported in non-clustered mode"),
        "{said}"
    );
}
