//! wasi:messaging through the real binary: the embedded broker, and a real `nats-server` with
//! plain async-nats clients on the other side.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::HeaderMap;
use common::{PATIENCE, Served, assert_contains, edit_source, example, folder_with, get, tempo};
use futures::StreamExt as _;
use tempo_test_fixtures::{NatsServer, block_on, poll, poll_async};

/// `cargo tempo run` of the messaging fixture on NATS, subscribed to `fixture.>`, once it has
/// subscribed.
fn fixture_on(server: &NatsServer) -> Served {
    fixture_with(server, &[])
}

/// [`fixture_on`] with more variables.
fn fixture_with(server: &NatsServer, more: &[(&str, &str)]) -> Served {
    let mut env = vec![
        ("NATS_ADDR", server.url.as_str()),
        ("TEMPO_SUBSCRIBE", "fixture.>"),
    ];
    env.extend_from_slice(more);
    let mut served = Served::launch(tempo_test_fixtures::messaging(), &env);
    served.wait_for_stderr("Serving messages on fixture.>");
    served
}

/// A request from a plain client; `None` when no reply came within `timeout`.
async fn ask(client: &async_nats::Client, subject: &str, data: &str) -> Option<String> {
    let request = async_nats::Request::new()
        .payload(data.to_owned().into())
        .timeout(Some(Duration::from_secs(2)));
    let reply = client
        .send_request(subject.to_owned(), request)
        .await
        .ok()?;
    Some(String::from_utf8(reply.payload.to_vec()).unwrap())
}

#[test]
fn a_plain_request_reaches_the_handler_with_its_content_type_and_metadata() {
    let server = NatsServer::start();
    let served = fixture_on(&server);
    block_on(async {
        let client = server.client().await;
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", "text/plain");
        headers.insert("trace-id", "7");
        let reply = client
            .request_with_headers("fixture.echo", headers, "hi".into())
            .await
            .unwrap();
        assert_eq!(reply.payload, "echo: hi");
        let headers = reply.headers.unwrap();
        assert_eq!(headers.get("Content-Type").unwrap().as_str(), "text/plain");
        assert_eq!(headers.get("trace-id").unwrap().as_str(), "7");
        assert_eq!(headers.get("topic").unwrap().as_str(), "fixture.echo");
    });
    drop(served);
}

#[test]
fn a_guest_request_gathers_the_replies_of_plain_responders() {
    let server = NatsServer::start();
    let served = fixture_on(&server);
    block_on(async {
        let client = server.client().await;
        for answer in ["one", "two"] {
            let mut requests = client.subscribe("svc.numbers").await.unwrap();
            let responder = client.clone();
            tokio::spawn(async move {
                while let Some(request) = requests.next().await {
                    let reply_to = request.reply.unwrap();
                    responder.publish(reply_to, answer.into()).await.unwrap();
                }
            });
        }
        client.flush().await.unwrap();
        let reply = ask(&client, "fixture.ask", "ask svc.numbers 2").await;
        assert_eq!(reply.as_deref(), Some("2: one,two"));
        let reply = ask(&client, "fixture.ask", "ask svc.nobody 1").await;
        assert_eq!(
            reply.as_deref(),
            Some(r#"error: Error::Other("no one is subscribed to `svc.nobody`")"#)
        );
    });
    drop(served);
}

#[test]
fn guests_reach_no_nats_system_subject_whoever_names_it() {
    let server = NatsServer::start();
    let mut served = fixture_on(&server);
    block_on(async {
        let client = server.client().await;
        let js = async_nats::jetstream::new(client.clone());
        let kv = js
            .create_key_value(async_nats::jetstream::kv::Config {
                bucket: "default".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap();
        kv.put("k", "original".into()).await.unwrap();

        // A hostile sender's reply-to names a KV key, or another application's subject: the
        // guest's reply is refused.
        let mut sink = client.subscribe("fixture.sink").await.unwrap();
        let mut victim = client.subscribe("victim.orders").await.unwrap();
        for reply_to in ["$KV.default.k", "victim.orders"] {
            client
                .publish_with_reply("fixture.forged", reply_to, "overwrite".into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
        served.wait_for_stderr("`$KV.default.k` is a NATS system subject");
        served.wait_for_stderr("`victim.orders` is not an inbox");
        assert_eq!(kv.get("k").await.unwrap().unwrap(), "original");
        let stray = tokio::time::timeout(Duration::from_millis(200), victim.next()).await;
        assert!(
            stray.is_err(),
            "the guest answered a subject that is no inbox"
        );

        // The guest's own requests and sends to `$` subjects are refused.
        let reply = ask(&client, "fixture.ask", "ask $JS.API.STREAM.LIST 1").await;
        let reply = reply.unwrap();
        assert!(
            reply.contains("PermissionDenied") && reply.contains("system subject"),
            "{reply}"
        );
        let reply = ask(&client, "fixture.send", "send $KV.default.k ok").await;
        assert!(reply.unwrap().contains("system subject"));

        // Metadata that is no header name is the guest's error, not a host panic; a subject
        // longer than NATS carries is refused before it reaches the shared connection.
        let reply = ask(&client, "fixture.send", "send fixture.sink a:b").await;
        assert!(reply.unwrap().contains("not a valid header name"));
        let long = format!("fixture.{}", "x".repeat(5000));
        let reply = ask(&client, "fixture.send", &format!("send {long} ok")).await;
        assert!(reply.unwrap().contains("longer than the limit"));
        let reply = ask(&client, "fixture.send", "send fixture.sink trace-id").await;
        assert_eq!(reply.as_deref(), Some("sent"));
        let sent = tokio::time::timeout(PATIENCE, sink.next()).await.unwrap();
        assert_eq!(sent.unwrap().payload, "sent by the fixture");
    });
    let stderr = served.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_handler_past_its_deadline_is_stopped_and_the_next_message_handled() {
    let server = NatsServer::start();
    let mut served = fixture_with(
        &server,
        &[("TEMPO_DEADLINE_MS", "500"), ("TEMPO_ADMIN", "127.0.0.1:0")],
    );
    let admin = served.wait_for_admin();
    block_on(async {
        let client = server.client().await;
        assert_eq!(ask(&client, "fixture.a", "loop").await, None);
        assert_eq!(ask(&client, "fixture.a", "hi").await.unwrap(), "echo: hi");
    });
    let line = served.wait_for_stderr("ran past its deadline of 500ms");
    assert_contains(&line, "the message on `fixture.a` failed");

    // Each message is counted by its outcome (the reply may come before its count).
    let counted = |text: &str, outcome: &str| {
        let end = format!(",outcome=\"{outcome}\"}} 1");
        text.lines()
            .any(|line| line.starts_with("tempo_messages_handled_total{") && line.ends_with(&end))
    };
    let mut text = String::new();
    let both = poll(Duration::from_millis(100), || {
        text = get(&format!("http://{admin}/metrics")).1;
        (counted(&text, "timeout") && counted(&text, "ok")).then_some(())
    });
    assert!(both.is_some(), "messages not counted:\n{text}");
}

#[test]
fn a_guest_that_traps_on_a_message_is_logged_and_the_next_is_handled() {
    let server = NatsServer::start();
    let mut served = fixture_on(&server);
    block_on(async {
        let client = server.client().await;
        assert_eq!(ask(&client, "fixture.a", "trap").await, None);
        assert_eq!(ask(&client, "fixture.a", "fail").await, None);
        assert_eq!(ask(&client, "fixture.a", "hi").await.unwrap(), "echo: hi");
    });
    let line = served.wait_for_stderr("asked to fail");
    assert_contains(&line, "the message on `fixture.a` failed");
    assert_contains(&served.stderr(), "asked to trap");
}

#[test]
fn with_instance_reuse_an_instance_handles_n_messages_and_never_one_after_a_trap() {
    let server = NatsServer::start();
    let _served = fixture_with(&server, &[("TEMPO_MESSAGING_INSTANCE_REUSE", "3")]);
    block_on(async {
        let client = server.client().await;
        let mut counts = Vec::new();
        for _ in 0..4 {
            counts.push(ask(&client, "fixture.a", "count").await.unwrap());
        }
        // The guest's static counts what its instance handled: three, then a fresh instance.
        assert_eq!(counts, ["count: 1", "count: 2", "count: 3", "count: 1"]);
        // The instance that counted 1 traps on the next message; the one after is fresh.
        assert_eq!(ask(&client, "fixture.a", "trap").await, None);
        assert_eq!(
            ask(&client, "fixture.a", "count").await.unwrap(),
            "count: 1"
        );
        // A guest's error leaves its instance in use.
        assert_eq!(ask(&client, "fixture.a", "fail").await, None);
        assert_eq!(
            ask(&client, "fixture.a", "count").await.unwrap(),
            "count: 2"
        );
    });
}

#[test]
fn after_nats_restarts_the_subscription_resumes_without_restarting_tempo() {
    let mut server = NatsServer::start();
    let served = fixture_on(&server);
    block_on(async {
        let client = server.client().await;
        assert_eq!(
            ask(&client, "fixture.a", "before").await.unwrap(),
            "echo: before"
        );
    });

    server.stop();
    server.start_again();
    let reply = block_on(async {
        let client = &server.client().await;
        poll_async(Duration::from_millis(200), || {
            ask(client, "fixture.a", "after")
        })
        .await
    });
    assert_eq!(reply.as_deref(), Some("echo: after"), "{}", served.stderr());
    assert!(served.stderr().contains("lost NATS"), "{}", served.stderr());
}

/// `examples/pub-sub` served with `env`, once both its triggers are up.
fn pub_sub(env: &[(&str, &str)]) -> Served {
    let built = example("pub-sub", false);
    let mut env = env.to_vec();
    env.push(("TEMPO_SUBSCRIBE", "events.in,events.out"));
    let mut served = Served::start_with(&built.wasm, &env);
    served.wait_for_stderr("Serving messages on events.in, events.out");
    served
}

fn publish(served: &Served, body: &str) {
    let response = crate::common::client()
        .post(format!("{}/publish", served.url))
        .body(body.to_owned())
        .send()
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[test]
fn pub_sub_works_on_the_embedded_broker_with_no_server() {
    let served = pub_sub(&[]);
    assert!(
        served
            .stderr()
            .contains("wasi:messaging: send and request through the embedded broker"),
        "{}",
        served.stderr()
    );
    publish(&served, "hello there");
    // The handler republishes to `events.out`, where it handles the message again.
    let (stats, _) =
        common::wait_for_body(&format!("{}/stats", served.url), r#""last":"HELLO THERE""#);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["handled"], 1);
}

#[test]
fn request_reply_works_on_the_embedded_broker_and_on_nats() {
    let built = example("request-reply", false);
    let subscribe = ("TEMPO_SUBSCRIBE", "greet");
    let served = Served::start_with(&built.wasm, &[subscribe]);
    assert_eq!(
        get(&format!("{}/ask/Ada", served.url)),
        (200, "Hello, Ada!".to_owned())
    );
    drop(served);

    let server = NatsServer::start();
    let mut served = Served::start_with(&built.wasm, &[subscribe, ("NATS_ADDR", &server.url)]);
    served.wait_for_stderr("Serving messages on greet");
    assert_eq!(
        get(&format!("{}/ask/Grace", served.url)),
        (200, "Hello, Grace!".to_owned())
    );
    block_on(async {
        let client = server.client().await;
        assert_eq!(
            ask(&client, "greet", "Linus").await.unwrap(),
            "Hello, Linus!"
        );
    });
}

#[test]
fn on_nats_plain_clients_see_what_guests_publish_and_trigger_them() {
    let server = NatsServer::start();
    let served = pub_sub(&[("NATS_ADDR", &server.url)]);
    block_on(async {
        let client = server.client().await;
        let mut out = client.subscribe("events.out").await.unwrap();
        client.flush().await.unwrap();

        // A guest's publish (from an HTTP request) reaches a plain subscriber of events.in...
        let mut inbox = client.subscribe("events.in").await.unwrap();
        client.flush().await.unwrap();
        let http = served.url.clone();
        tokio::task::spawn_blocking(move || {
            let response = crate::common::client()
                .post(format!("{http}/publish"))
                .body("from http")
                .send()
                .unwrap();
            assert_eq!(response.status(), 202);
        })
        .await
        .unwrap();
        let published = inbox.next().await.unwrap();
        assert_eq!(published.payload, "from http");
        let out_message = out.next().await.unwrap();
        assert_eq!(out_message.payload, "FROM HTTP");

        // ...and a plain client's publish triggers the guest, which republishes.
        client
            .publish("events.in", "from a client".into())
            .await
            .unwrap();
        let out_message = out.next().await.unwrap();
        assert_eq!(out_message.payload, "FROM A CLIENT");
        let headers = out_message.headers.unwrap();
        assert_eq!(
            headers.get("transformed-from").unwrap().as_str(),
            "events.in"
        );
        assert_eq!(headers.get("Content-Type").unwrap().as_str(), "text/plain");
    });
}

#[test]
fn two_processes_in_one_queue_group_share_the_messages_none_lost_none_twice() {
    const MESSAGES: usize = 1000;
    let server = NatsServer::start();
    // Each process counts what it handled in its own embedded store.
    let env = [
        ("NATS_ADDR", server.url.as_str()),
        ("TEMPO_KEYVALUE", "embedded"),
    ];
    let first = pub_sub(&env);
    let second = pub_sub(&env);

    let received = block_on(async {
        let client = server.client().await;
        let mut out = client.subscribe("events.out").await.unwrap();
        client.flush().await.unwrap();
        for n in 0..MESSAGES {
            client
                .publish("events.in", format!("message {n}").into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
        let mut received = Vec::new();
        while received.len() < MESSAGES {
            let message = tokio::time::timeout(PATIENCE, out.next())
                .await
                .expect("the handlers stopped republishing")
                .unwrap();
            received.push(String::from_utf8(message.payload.to_vec()).unwrap());
        }
        received
    });
    let distinct: BTreeSet<&String> = received.iter().collect();
    assert_eq!(distinct.len(), MESSAGES, "some message was handled twice");

    let handled: Vec<u64> = [&first, &second]
        .iter()
        .map(|served| {
            let (_, body) = get(&format!("{}/stats", served.url));
            let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
            stats["handled"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(handled.iter().sum::<u64>(), MESSAGES as u64, "{handled:?}");
    assert!(
        handled.iter().all(|&n| n > 0),
        "one process did it all: {handled:?}"
    );
}

#[test]
fn a_handler_with_no_subscription_is_refused_with_where_to_set_one() {
    let output = tempo()
        .arg("run")
        .arg(tempo_test_fixtures::messaging())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_contains(
        &stderr,
        "subscribes to no subject: set `--subscribe`, `TEMPO_SUBSCRIBE`",
    );
}

#[test]
fn under_dev_a_reload_swaps_the_handler_and_keeps_the_subscription() {
    let server = NatsServer::start();
    let (_root, project) = common::example_copy("request-reply");
    let mut command = tempo();
    command
        .current_dir(&project)
        .args(["dev", "--listen", "127.0.0.1:0", "--target-dir"])
        .arg(common::scratch("examples"))
        .env("NATS_ADDR", &server.url);
    let mut dev = Served::spawn(command);
    dev.wait_for_serving();
    dev.wait_for_stderr("Serving messages on greet");
    assert_eq!(
        get(&format!("{}/ask/Ada", dev.url)),
        (200, "Hello, Ada!".to_owned())
    );

    edit_source(&project, "Hello, {name}!", "Welcome, {name}!");
    common::wait_for_body(&format!("{}/ask/Ada", dev.url), "Welcome, Ada!");
    // A plain client is answered by the new version, through the same subscription.
    block_on(async {
        let client = server.client().await;
        assert_eq!(
            ask(&client, "greet", "Linus").await.unwrap(),
            "Welcome, Linus!"
        );
    });
    assert_eq!(
        dev.stderr().matches("Serving messages on greet").count(),
        1,
        "{}",
        dev.stderr()
    );
}

#[test]
fn with_every_http_instance_held_requests_get_503_and_messages_are_still_handled() {
    let server = NatsServer::start();
    // Messages take their `concurrency` (64) of the 66 instances; HTTP has the other two.
    let served = pub_sub(&[
        ("NATS_ADDR", &server.url),
        ("TEMPO_MAX_INSTANCES", "66"),
        ("TEMPO_QUEUE_TIMEOUT_MS", "200"),
    ]);
    assert_contains(&served.stderr(), "at most 66 instances at once");

    // Two uploads that never finish hold both HTTP instances.
    let address = served.url.trim_start_matches("http://");
    let holders: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            use std::io::Write as _;
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream
                .write_all(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
                .unwrap();
            stream
        })
        .collect();

    // The next request waits its turn briefly, then is turned away: 503, never 500.
    let stats = format!("{}/stats", served.url);
    let refused = poll(Duration::from_millis(50), || {
        let response = crate::common::http_get(&stats).unwrap();
        if response.status() == 503 {
            return Some(response);
        }
        assert_eq!(response.status(), 200);
        None
    })
    .expect("never turned away");
    assert_eq!(refused.headers()["retry-after"], "1");

    // Messages have their own share: one is handled meanwhile.
    block_on(async {
        let client = server.client().await;
        let mut out = client.subscribe("events.out").await.unwrap();
        client.flush().await.unwrap();
        client
            .publish("events.in", "still handled".into())
            .await
            .unwrap();
        let shouted = tokio::time::timeout(PATIENCE, out.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(shouted.payload, "STILL HANDLED");
    });

    // Once the uploads go away, so do their instances.
    drop(holders);
    common::wait_for_body(&stats, r#""handled":1"#);
    assert_contains(&served.stderr(), "turning requests away with 503");
}

#[test]
fn on_shutdown_what_was_received_is_handled_and_the_queue_group_takes_the_rest() {
    let server = NatsServer::start();
    let env = [
        ("NATS_ADDR", server.url.as_str()),
        ("TEMPO_SUBSCRIBE", "fixture.>"),
    ];
    // One message at a time: the others wait in the process's subscription.
    let folder = folder_with("tempo.toml", "[messaging]\nconcurrency = 1\n");
    let mut first = Served::launch_in(folder.path(), tempo_test_fixtures::messaging(), &env);
    first.wait_for_stderr("Serving messages on fixture.>");

    let answered = block_on(async {
        let client = server.client().await;
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(inbox.clone()).await.unwrap();
        client.flush().await.unwrap();
        let send = |n: usize| {
            let (client, inbox) = (client.clone(), inbox.clone());
            async move {
                let data = format!("sleep 300 {n}");
                client
                    .publish_with_reply("fixture.work", inbox, data.into())
                    .await
                    .unwrap();
            }
        };
        for n in 0..10 {
            send(n).await;
        }
        client.flush().await.unwrap();
        let mut answered = BTreeSet::new();
        let mut next = async || {
            let reply = tokio::time::timeout(PATIENCE, replies.next())
                .await
                .expect("a message was lost")
                .unwrap();
            String::from_utf8(reply.payload.to_vec()).unwrap()
        };
        answered.insert(next().await);

        // A second member joins the queue group; the first is told to stop while it still holds
        // most of its messages. It handles them, and the group's other member gets the new ones.
        let mut second = Served::launch(tempo_test_fixtures::messaging(), &env);
        second.wait_for_stderr("Serving messages on fixture.>");
        first.signal(libc::SIGTERM);
        first.wait_for_stderr("Stopped");
        for n in 10..15 {
            send(n).await;
        }
        while answered.len() < 15 {
            answered.insert(next().await);
        }
        answered
    });
    let expected: BTreeSet<String> = (0..15).map(|n| format!("echo: sleep 300 {n}")).collect();
    assert_eq!(answered, expected);
    assert_eq!(first.wait(), Some(0), "{}", first.stderr());
}
