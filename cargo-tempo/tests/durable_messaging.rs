//! Durable subscriptions through the real binary and a real NATS: messages outlive a tempo
//! process killed in the middle of them, and a message that always fails ends on the dead-letter
//! subject after its attempts. On a three-node cluster, neither the death of the node tempo is
//! connected to nor that of a tempo process loses an answered write or a published message.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{PATIENCE, Served, assert_contains, folder_with};
use futures::{StreamExt as _, TryStreamExt as _};
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
    let folder = folder_with(
        "tempo.toml",
        "[messaging]\nmax-deliver = 3\nretry-delay-ms = 100\ndead-letter = \"dead.jobs\"\n",
    );
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
        let headers = poison_is_dead_lettered(&client, &mut dead, "3").await;
        assert_eq!(
            headers.get("Tempo-Original-Subject").unwrap().as_str(),
            "jobs.poison"
        );
        let reason = headers.get("Tempo-Dead-Letter-Reason").unwrap().as_str();
        assert_contains(reason, "asked to fail");
    });
}

/// Publishes `fail` to `jobs.poison` through JetStream and waits for it on `dead`, a subscription
/// to the dead-letter subject; checks that it came after `attempts` attempts, and returns its
/// headers.
async fn poison_is_dead_lettered(
    client: &async_nats::Client,
    dead: &mut async_nats::Subscriber,
    attempts: &str,
) -> async_nats::HeaderMap {
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
    assert_eq!(headers.get("Tempo-Deliveries").unwrap().as_str(), attempts);
    headers
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

/// One tempo process of the SDK fixture on the cluster at `nats`: `PUT /kv/{key}` writes to a
/// bucket of three replicas, and `jobs.>` is handled durably (`incr KEY` counts in the bucket).
fn cluster_member(folder: &Path, nats: &str) -> Served {
    let mut served = Served::launch_in(
        folder,
        tempo_test_fixtures::sdk(),
        &[
            ("NATS_ADDR", nats),
            ("TEMPO_NATS_REPLICAS", "3"),
            ("TEMPO_SUBSCRIBE", "jobs.>"),
            ("TEMPO_MESSAGING_DURABLE", "true"),
            ("TEMPO_DEADLINE_MS", "5000"),
        ],
    );
    served.wait_for_stderr("Serving durable messages on jobs.>");
    served.wait_for_serving();
    served
}

/// The HTTP writes of the cluster scenario: one at a time, to each live process in turn.
#[derive(Default)]
struct Writes {
    next: usize,
    /// The ids of the documents whose `PUT` was answered 2xx.
    answered: Vec<usize>,
    /// Which process failed a write, when, and what it answered.
    failed: Vec<(usize, Instant, String)>,
    /// The longest an answered write took.
    slowest: Duration,
}

impl Writes {
    /// Writes to `members` (process number, URL) in turn until each has answered `streak` writes
    /// in a row.
    fn until_each_answers(&mut self, members: &[(usize, &str)], streak: usize) {
        let mut runs = vec![0; members.len()];
        let start = Instant::now();
        while runs.iter().any(|&run| run < streak) {
            assert!(start.elapsed() < PATIENCE, "writes never came back");
            for ((process, url), run) in members.iter().zip(&mut runs) {
                let id = self.next;
                self.next += 1;
                let sent = Instant::now();
                let answer = common::client()
                    .put(format!("{url}/kv/d{id}"))
                    .body(format!("{{\"n\":{id}}}"))
                    .timeout(Duration::from_secs(30))
                    .send()
                    .map_err(|err| err.to_string())
                    .and_then(|response| {
                        let status = response.status();
                        let body = response.text().unwrap_or_default();
                        if status.is_success() {
                            Ok(())
                        } else {
                            Err(format!("{status}: {body}"))
                        }
                    });
                if let Err(why) = answer {
                    self.failed.push((*process, Instant::now(), why));
                    *run = 0;
                    std::thread::sleep(Duration::from_millis(100));
                } else {
                    self.answered.push(id);
                    self.slowest = self.slowest.max(sent.elapsed());
                    *run += 1;
                }
            }
        }
    }
}

/// Publishes `incr seen.N` to `jobs.work` through JetStream, N from 0, every 20 ms until `stop`
/// is set; a publish that JetStream did not acknowledge is sent again with the same message id
/// (JetStream drops the copy if the first had arrived). Returns how many were acknowledged and
/// how many publishes were sent again.
fn publish_jobs(
    urls: Vec<String>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let tokio = tokio::runtime::Runtime::new().unwrap();
        tokio.block_on(async {
            let client = async_nats::connect(urls).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let (mut acknowledged, mut again) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let publish = async_nats::jetstream::message::PublishMessage::build()
                    .payload(format!("incr seen.{acknowledged}").into())
                    .message_id(format!("job-{acknowledged}"));
                let sent = match js.send_publish("jobs.work", publish).await {
                    Ok(ack) => ack.await.map(drop),
                    Err(err) => Err(err),
                };
                if sent.is_ok() {
                    acknowledged += 1;
                } else {
                    again += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (acknowledged, again)
        })
    })
}

/// Moves the leadership of every stream on the cluster, and of the consumers of tempo's streams,
/// to node `n0` (a stepdown that prefers it), so that killing n0 makes each elect a new leader.
async fn lead_from_n0(urls: Vec<String>) {
    let client = async_nats::connect(urls).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let names: Vec<String> = js.stream_names().try_collect().await.unwrap();
    for name in names {
        let mut stream = js.get_stream(&name).await.unwrap();
        let mut groups = vec![(format!("$JS.API.STREAM.LEADER.STEPDOWN.{name}"), None)];
        if name.starts_with("TEMPO_") {
            let consumers: Vec<String> = stream.consumer_names().try_collect().await.unwrap();
            groups.extend(consumers.into_iter().map(|consumer| {
                (
                    format!("$JS.API.CONSUMER.LEADER.STEPDOWN.{name}.{consumer}"),
                    Some(consumer),
                )
            }));
        }
        for (stepdown, consumer) in groups {
            let start = Instant::now();
            loop {
                let cluster = match &consumer {
                    None => stream.info().await.unwrap().cluster.clone(),
                    Some(consumer) => stream.consumer_info(consumer).await.unwrap().cluster,
                };
                if cluster.and_then(|cluster| cluster.leader).as_deref() == Some("n0") {
                    break;
                }
                assert!(start.elapsed() < PATIENCE, "{stepdown} never moved to n0");
                let preferred = r#"{"placement":{"preferred":"n0"}}"#;
                let _ = client.request(stepdown.clone(), preferred.into()).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[test]
fn on_a_three_node_cluster_a_node_and_a_process_die_and_nothing_answered_or_published_is_lost() {
    let mut cluster = tempo_test_fixtures::NatsCluster::start(3);
    let folder = tempfile::tempdir().unwrap();
    // Six attempts, 0.5 s before the first retry: 15.5 s of retries, longer than the cluster
    // takes to choose new leaders.
    std::fs::write(
        folder.path().join("tempo.toml"),
        "[messaging]\nmax-deliver = 6\nretry-delay-ms = 500\ndead-letter = \"dead.jobs\"\n",
    )
    .unwrap();
    // Every process is given node 0 only (it learns the others from the cluster).
    let node = cluster.url(0);
    let mut members: Vec<Served> = (0..3)
        .map(|_| cluster_member(folder.path(), &node))
        .collect();
    let urls: Vec<String> = members.iter().map(|member| member.url.clone()).collect();
    let all: Vec<(usize, &str)> = urls.iter().map(String::as_str).enumerate().collect();

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = publish_jobs(cluster.url_list(), stop.clone());
    let mut writes = Writes::default();
    writes.until_each_answers(&all, 10);
    assert!(
        writes.failed.is_empty(),
        "writes failed before any failure: {:?}",
        writes.failed
    );

    // The node every process is connected to, and which leads every stream and consumer, dies.
    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(lead_from_n0(cluster.url_list()));
    cluster.kill(0);
    let killed = Instant::now();
    writes.until_each_answers(&all, 20);
    let recovered = writes.failed.len();
    let window = writes
        .failed
        .last()
        .map_or(Duration::ZERO, |(_, when, _)| when.duration_since(killed));

    // Then a tempo process, with messages in hand.
    members[2].signal(libc::SIGKILL);
    let _ = members[2].wait();
    writes.until_each_answers(&all[..2], 10);
    // Both come back.
    cluster.restart(0);
    members[2] = cluster_member(folder.path(), &node);
    let url = members[2].url.clone();
    let all: Vec<(usize, &str)> = vec![all[0], all[1], (2, url.as_str())];
    writes.until_each_answers(&all, 10);
    stop.store(true, Ordering::Relaxed);
    let (published, published_again) = publisher.join().unwrap();
    assert_eq!(
        writes.failed.len(),
        recovered,
        "writes failed after every process had recovered from the node's death: {:?}",
        &writes.failed[recovered..]
    );

    // Every message JetStream took was handled at least once.
    let count = |id: usize| {
        let (status, body) = common::get(&format!("{url}/kv/seen.{id}"));
        (status == 200).then(|| body.trim().parse::<u64>().unwrap())
    };
    let start = Instant::now();
    let mut handled = vec![None; published];
    while let Some(missing) = handled.iter().position(Option::is_none) {
        handled[missing] = count(missing);
        if handled[missing].is_none() {
            assert!(
                start.elapsed() < PATIENCE,
                "message {missing} of {published} was never handled"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let twice = handled.iter().filter(|&&n| n > Some(1)).count();

    // A message that always fails is on the dead-letter subject after its six attempts.
    tokio.block_on(async {
        let client = async_nats::connect(cluster.url_list()).await.unwrap();
        let mut dead = client.subscribe("dead.jobs").await.unwrap();
        client.flush().await.unwrap();
        poison_is_dead_lettered(&client, &mut dead, "6").await;
    });

    // Every answered write is readable from every process.
    for (process, url) in &all {
        for id in &writes.answered {
            let (status, body) = common::get(&format!("{url}/kv/d{id}"));
            assert_eq!(
                (status, body.as_str()),
                (200, format!("{{\"n\":{id}}}").as_str()),
                "d{id} through process {process}"
            );
        }
    }
    // Each process lost its connection once, and said so once.
    for member in &members[..2] {
        let said = member.stderr();
        assert_eq!(said.matches("lost NATS at").count(), 1, "{said}");
        // Leader elections that failed calls: logged once, whatever the number of calls.
        let outages = said.matches("WARN JetStream could not answer").count();
        assert!(outages <= 1, "{said}");
        eprintln!("a surviving process logged {outages} JetStream outage(s)");
    }
    for (process, when, why) in &writes.failed {
        eprintln!(
            "process {process}, {:?} after the node's death: {why}",
            when.duration_since(killed)
        );
    }
    eprintln!(
        "{} writes answered (the slowest in {:?}); {recovered} failed, the last {window:?} after \
         the node's death; {published} messages published ({published_again} publishes sent \
         again), all handled, {twice} more than once",
        writes.answered.len(),
        writes.slowest
    );
}
