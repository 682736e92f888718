//! Durable subscriptions through the real binary and a real NATS: messages outlive a tempo
//! process killed in the middle of them, and a message that always fails ends on the dead-letter
//! subject after its attempts.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{PATIENCE, Served};
use futures::StreamExt as _;
use tempo_test_fixtures::NatsServer;

const MESSAGES: usize = 10_000;

/// The messaging fixture handling `jobs.>` durably on `server`, in `folder`: three attempts, 100 ms
/// before the first retry, dead letters to `dead.jobs`.
fn durable_fixture(server: &NatsServer, folder: &Path) -> Served {
    let mut served = Served::launch_in(
        folder,
        tempo_test_fixtures::messaging(),
        &[
            ("NATS_ADDR", &server.url),
            ("TEMPO_SUBSCRIBE", "jobs.>"),
            ("TEMPO_MESSAGING_DURABLE", "true"),
            ("TEMPO_DEADLINE_MS", "5000"),
        ],
    );
    served.wait_for_stderr("Serving durable messages on jobs.>");
    served
}

#[test]
fn durable_messages_outlive_a_killed_process_and_a_poison_one_is_dead_lettered() {
    let server = NatsServer::start();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("tempo.toml"),
        "[messaging]\nmax-deliver = 3\nretry-delay-ms = 100\ndead-letter = \"dead.jobs\"\n",
    )
    .unwrap();
    let mut first = durable_fixture(&server, folder.path());
    assert!(
        first
            .stderr()
            .contains("up to 3 attempts, then `dead.jobs`"),
        "{}",
        first.stderr()
    );

    let tokio = tokio::runtime::Runtime::new().unwrap();
    let client = tokio.block_on(async { async_nats::connect(&server.url).await.unwrap() });
    let (mut done, mut dead) = tokio.block_on(async {
        let done = client.subscribe("done.>").await.unwrap();
        let dead = client.subscribe("dead.jobs").await.unwrap();
        client.flush().await.unwrap();
        (done, dead)
    });
    // Every message is in the stream (acknowledged by JetStream) before tempo is killed.
    tokio.block_on(async {
        let js = async_nats::jetstream::new(client.clone());
        let mut acks = Vec::new();
        for id in 0..MESSAGES {
            let ack = js
                .publish("jobs.work", format!("forward done.work {id}").into())
                .await
                .unwrap();
            acks.push(ack);
            if acks.len() == 500 {
                for ack in acks.drain(..) {
                    ack.await.unwrap();
                }
            }
        }
        for ack in acks {
            ack.await.unwrap();
        }
    });

    // Handled: id → how many times, and the attempt numbers the guest saw.
    let mut handled: BTreeMap<usize, usize> = BTreeMap::new();
    let mut redelivered = 0;
    let mut receive = |until: usize, handled: &mut BTreeMap<usize, usize>| {
        tokio.block_on(async {
            while handled.len() < until {
                let message = tokio::time::timeout(PATIENCE, done.next())
                    .await
                    .expect("handling stopped")
                    .unwrap();
                let id: usize = std::str::from_utf8(&message.payload)
                    .unwrap()
                    .parse()
                    .unwrap();
                *handled.entry(id).or_default() += 1;
                let attempt = message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get("tempo-delivery"))
                    .map(|value| value.as_str().to_owned());
                match attempt.as_deref() {
                    Some("1") => {}
                    Some(_) => redelivered += 1,
                    None => panic!("no attempt number on message {id}"),
                }
            }
        });
    };
    receive(MESSAGES / 5, &mut handled);
    first.signal(libc::SIGKILL);
    let _ = first.wait();
    let _second = durable_fixture(&server, folder.path());
    receive(MESSAGES, &mut handled);
    let twice = handled.values().filter(|&&count| count > 1).count();
    eprintln!(
        "{MESSAGES} messages handled after a SIGKILL at {}: {twice} twice or more, {redelivered} deliveries past the first",
        MESSAGES / 5
    );
    assert_eq!(handled.len(), MESSAGES);

    // A message whose handler always fails: three attempts, then the dead-letter subject.
    tokio.block_on(async {
        let js = async_nats::jetstream::new(client.clone());
        js.publish("jobs.poison", "fail".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let message = tokio::time::timeout(PATIENCE, dead.next())
            .await
            .expect("nothing reached the dead-letter subject")
            .unwrap();
        assert_eq!(&message.payload[..], b"fail");
        let headers = message.headers.unwrap();
        assert_eq!(headers.get("Tempo-Deliveries").unwrap().as_str(), "3");
        assert_eq!(
            headers.get("Tempo-Original-Subject").unwrap().as_str(),
            "jobs.poison"
        );
        let reason = headers.get("Tempo-Dead-Letter-Reason").unwrap().as_str();
        assert!(reason.contains("asked to fail"), "{reason}");
    });
}

#[test]
fn on_the_embedded_broker_durable_messages_are_handled_with_no_server() {
    let built = common::example("pub-sub", false);
    let mut served = Served::start_with(
        &built.wasm,
        &[
            ("TEMPO_SUBSCRIBE", "events.in,events.out"),
            ("TEMPO_MESSAGING_DURABLE", "true"),
        ],
    );
    served.wait_for_stderr("Serving durable messages on events.in, events.out");
    let response = common::client()
        .post(format!("{}/publish", served.url))
        .body("hello there")
        .send()
        .unwrap();
    assert_eq!(response.status(), 202);
    // The handler republishes to `events.out`, whose durable queue it handles too.
    let (stats, _) =
        common::wait_for_body(&format!("{}/stats", served.url), r#""last":"HELLO THERE""#);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["handled"], 1);
}
