//! What bench/messaging.sh runs on the NATS side:
//!
//! - `msg-direct respond URL SUBJECT`: a plain async-nats responder doing the work of the
//!   messaging test fixture's echo (read the data, content type and headers, reply `echo: DATA`
//!   with them and a `topic` header), in the same queue group a tempo handler would join;
//! - `msg-direct drive URL SUBJECT COUNT WINDOW`: COUNT requests with WINDOW in flight at once;
//!   prints the rate at which replies came back;
//! - `msg-direct durable-prepare URL SUBJECT`: a fresh JetStream stream for SUBJECT (interest
//!   retention, no consumer yet), for the responder to bind to;
//! - `msg-direct durable-respond URL SUBJECT`: a plain async-nats durable pull consumer doing the
//!   work of the fixture's `forward OUT ID` (publish ID to OUT, then acknowledge);
//! - `msg-direct durable-drive URL SUBJECT OUT COUNT`: publishes COUNT `forward OUT N` messages
//!   to the stream, waits for every N on OUT and for the stream to be empty (every message
//!   acknowledged), and prints the rate.

#![allow(
    clippy::print_stdout,
    reason = "what it prints is what the bench script reads"
)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;

/// The stream the durable rows share.
const STREAM: &str = "BENCH_DURABLE";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["respond", url, subject] => respond(url, subject).await,
        ["drive", url, subject, count, window] => {
            drive(url, subject, count.parse()?, window.parse()?).await
        }
        ["durable-prepare", url, subject] => durable_prepare(url, subject).await,
        ["durable-respond", url, subject] => durable_respond(url, subject).await,
        ["durable-drive", url, subject, out, count] => {
            durable_drive(url, subject, out, count.parse()?).await
        }
        _ => bail!(
            "usage: msg-direct respond URL SUBJECT | drive URL SUBJECT COUNT WINDOW | \
             durable-prepare URL SUBJECT | durable-respond URL SUBJECT | \
             durable-drive URL SUBJECT OUT COUNT"
        ),
    }
}

async fn respond(url: &str, subject: &str) -> anyhow::Result<()> {
    let client = async_nats::connect(url).await?;
    let mut requests = client
        .queue_subscribe(subject.to_owned(), "msg-direct".to_owned())
        .await?;
    client.flush().await?;
    println!("Serving messages on {subject}");
    while let Some(request) = requests.next().await {
        let Some(reply_to) = request.reply else {
            continue;
        };
        let mut headers = request.headers.unwrap_or_else(HeaderMap::new);
        headers.insert("topic", request.subject.as_str());
        let mut echo = b"echo: ".to_vec();
        echo.extend_from_slice(&request.payload);
        client
            .publish_with_headers(reply_to, headers, echo.into())
            .await?;
    }
    Ok(())
}

async fn drive(url: &str, subject: &str, count: usize, window: usize) -> anyhow::Result<()> {
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(30)))
        .connect(url)
        .await?;
    let request = |n: usize| {
        let client = client.clone();
        async move {
            let mut headers = HeaderMap::new();
            headers.insert("Content-Type", "text/plain");
            let reply = client
                .request_with_headers(subject.to_owned(), headers, format!("message {n}").into())
                .await
                .with_context(|| format!("request {n}"))?;
            anyhow::ensure!(reply.payload.starts_with(b"echo: "), "a wrong reply");
            anyhow::Ok(())
        }
    };
    let start = Instant::now();
    let mut replies = futures::stream::iter(0..count)
        .map(request)
        .buffer_unordered(window);
    while let Some(reply) = replies.next().await {
        reply?;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{count} requests in {seconds:.2}s: {:.0} msgs/s",
        count as f64 / seconds
    );
    Ok(())
}

async fn durable_prepare(url: &str, subject: &str) -> anyhow::Result<()> {
    let js = jetstream::new(async_nats::connect(url).await?);
    let _ = js.delete_stream(STREAM).await;
    js.create_stream(stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![subject.to_owned()],
        retention: stream::RetentionPolicy::Interest,
        ..stream::Config::default()
    })
    .await?;
    Ok(())
}

async fn durable_respond(url: &str, subject: &str) -> anyhow::Result<()> {
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(STREAM).await?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("msg-direct".to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            filter_subject: subject.to_owned(),
            ..consumer::pull::Config::default()
        })
        .await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(64)
        .messages()
        .await?;
    println!("Serving durable messages on {subject}");
    while let Some(message) = messages.next().await {
        let message = message.map_err(|err| anyhow::anyhow!("{err}"))?;
        let text = std::str::from_utf8(&message.payload)?;
        if let ["forward", out, id] = text.split(' ').collect::<Vec<_>>().as_slice() {
            client
                .publish((*out).to_owned(), id.to_string().into())
                .await?;
        }
        message
            .ack()
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))?;
    }
    Ok(())
}

async fn durable_drive(url: &str, subject: &str, out: &str, count: usize) -> anyhow::Result<()> {
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client.clone());
    let mut handled = client.subscribe(out.to_owned()).await?;
    client.flush().await?;
    let start = Instant::now();
    let publish = async {
        let mut acks = Vec::new();
        for n in 0..count {
            acks.push(
                js.publish(subject.to_owned(), format!("forward {out} {n}").into())
                    .await?,
            );
            if acks.len() == 256 {
                for ack in acks.drain(..) {
                    ack.await?;
                }
            }
        }
        for ack in acks {
            ack.await?;
        }
        anyhow::Ok(())
    };
    let receive = async {
        let mut seen = HashSet::new();
        while seen.len() < count {
            let message = tokio::time::timeout(Duration::from_secs(60), handled.next())
                .await
                .context("handling stopped")?
                .context("the subscription ended")?;
            seen.insert(message.payload);
        }
        anyhow::Ok(())
    };
    let (published, received) = tokio::join!(publish, receive);
    published?;
    received?;
    // Every message acknowledged: with interest retention the stream is then empty.
    let mut stream = js.get_stream(STREAM).await?;
    while stream.info().await?.state.messages > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{count} durable messages handled and acknowledged in {seconds:.2}s: {:.0} msgs/s",
        count as f64 / seconds
    );
    Ok(())
}
