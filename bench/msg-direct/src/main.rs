//! What bench/messaging.sh runs on the NATS side:
//!
//! - `msg-direct respond URL SUBJECT`: a plain async-nats responder doing the work of the
//!   messaging test fixture's echo (read the data, content type and headers, reply `echo: DATA`
//!   with them and a `topic` header), in the same queue group a tempo handler would join;
//! - `msg-direct drive URL SUBJECT COUNT WINDOW`: COUNT requests with WINDOW in flight at once;
//!   prints the rate at which replies came back.

#![allow(
    clippy::print_stdout,
    reason = "what it prints is what the bench script reads"
)]

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::HeaderMap;
use futures::StreamExt as _;

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
        _ => bail!("usage: msg-direct respond URL SUBJECT | drive URL SUBJECT COUNT WINDOW"),
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
