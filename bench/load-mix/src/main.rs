//! Load for `bench/limits.sh`: `load-mix URL [REQUESTS] [CONCURRENCY] [MIX] [HALF_OPEN]`.
//!
//! Sends REQUESTS (default 100000) requests, CONCURRENCY (64) at a time, to a server of the
//! http-fixture test guest. MIX `full` (the default) sends, of every 100 requests: 1 to `/loop`
//! (computes until the server's deadline), 2 to `/trap`, 5 uploads of 3 MiB to `/upload`, 5
//! downloads of 4 MiB from `/download?mib=4`, and 87 hellos to `/`; MIX `hello` sends hellos only.
//! With HALF_OPEN > 0, that many connections send half a request head and then hold still, for
//! the whole run, each replaced when the server closes it (a slowloris). Prints a table of outcomes per kind, the hello latencies, and
//! one `result` line; exits non-zero if any outcome was unexpected (anything but 200, and 500 for
//! traps, 500 or 504 for loops).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Mutex;

/// What one request asks of the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Hello,
    Upload,
    Download,
    Trap,
    Loop,
}

const UPLOAD_BYTES: usize = 3 << 20;
const DOWNLOAD_BYTES: usize = 4 << 20;

impl Kind {
    /// The kind of the `index`th request of `mix`.
    fn of(index: usize, mix: &str) -> Kind {
        if mix == "hello" {
            return Kind::Hello;
        }
        // Spread over each hundred rather than bunched, so every stretch of the run is mixed.
        match index % 100 {
            50 => Kind::Loop,
            25 | 75 => Kind::Trap,
            n if n % 20 == 3 => Kind::Upload,
            n if n % 20 == 13 => Kind::Download,
            _ => Kind::Hello,
        }
    }

    fn expected(self, status: u16) -> bool {
        match self {
            Kind::Hello | Kind::Upload | Kind::Download => status == 200,
            Kind::Trap => status == 500,
            Kind::Loop => status == 500 || status == 504,
        }
    }
}

/// What came back for each kind: statuses (0 for a transport error) and hello latencies.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<(Kind, u16), usize>,
    hello_micros: Vec<u64>,
}

#[tokio::main]
#[allow(
    clippy::print_stdout,
    reason = "the table and the result line are the program's output"
)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first().cloned() else {
        bail!("usage: load-mix URL [REQUESTS] [CONCURRENCY] [full|hello] [HALF_OPEN]");
    };
    let number = |i: usize, default: usize| -> anyhow::Result<usize> {
        args.get(i)
            .map_or(Ok(default), |n| n.parse().context("not a number"))
    };
    let requests = number(1, 100_000)?;
    let concurrency = number(2, 64)?;
    let mix = args.get(3).cloned().unwrap_or_else(|| "full".to_owned());
    let half_open = number(4, 0)?;

    let stop_holding = tokio_util::sync::CancellationToken::new();
    let holders = hold_half_open(&url, half_open, stop_holding.clone());
    if half_open > 0 {
        // Let them connect before the measured load starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()?;
    let upload = bytes::Bytes::from(vec![b'u'; UPLOAD_BYTES]);
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, mix, upload) =
                (client.clone(), url.clone(), mix.clone(), upload.clone());
            let (next, tally) = (next.clone(), tally.clone());
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= requests {
                        return;
                    }
                    let kind = Kind::of(index, &mix);
                    let sent = Instant::now();
                    let status = send(&client, &url, kind, &upload).await;
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let mut tally = tally.lock().await;
                    *tally.outcomes.entry((kind, status)).or_default() += 1;
                    if kind == Kind::Hello && status == 200 {
                        tally.hello_micros.push(micros);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed();
    stop_holding.cancel();
    let mut closed_by_server = 0;
    for holder in holders {
        closed_by_server += holder.await?;
    }

    let mut tally = tally.lock().await;
    println!("{:<10} {:>7} {:>9}", "kind", "status", "requests");
    let mut unexpected = 0;
    for ((kind, status), count) in &tally.outcomes {
        let mark = if kind.expected(*status) {
            ""
        } else {
            unexpected += count;
            "  unexpected"
        };
        let kind = format!("{kind:?}").to_lowercase();
        println!("{kind:<10} {status:>7} {count:>9}{mark}");
    }
    tally.hello_micros.sort_unstable();
    let percentile = |p: f64| -> f64 {
        let samples = &tally.hello_micros;
        if samples.is_empty() {
            return f64::NAN;
        }
        let rank = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[rank] as f64 / 1000.0
    };
    let (p50, p99) = (percentile(0.50), percentile(0.99));
    println!(
        "result requests={requests} seconds={:.1} hello_p50_ms={p50:.2} hello_p99_ms={p99:.2} unexpected={unexpected} half_open={half_open} half_open_closed_by_server={closed_by_server}",
        elapsed.as_secs_f64()
    );
    if unexpected > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Sends one request of `kind` and returns its status once the whole body has arrived (0 if
/// the request failed, or a download came back short).
async fn send(client: &reqwest::Client, url: &str, kind: Kind, upload: &bytes::Bytes) -> u16 {
    let request = match kind {
        Kind::Hello => client.get(format!("{url}/")),
        Kind::Trap => client.get(format!("{url}/trap")),
        Kind::Loop => client.get(format!("{url}/loop")),
        Kind::Download => client.get(format!("{url}/download?mib={}", DOWNLOAD_BYTES >> 20)),
        Kind::Upload => client.post(format!("{url}/upload")).body(upload.clone()),
    };
    let Ok(response) = request.send().await else {
        return 0;
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(body) if kind == Kind::Download && status == 200 && body.len() != DOWNLOAD_BYTES => 0,
        Ok(_) => status,
        Err(_) => 0,
    }
}

/// Keeps `count` connections open that send half a request head and then nothing; when the
/// server closes one, another takes its place. Stops at `stop`; returns how many were closed by
/// the server.
fn hold_half_open(
    url: &str,
    count: usize,
    stop: tokio_util::sync::CancellationToken,
) -> Vec<tokio::task::JoinHandle<usize>> {
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    (0..count)
        .map(|_| {
            let (address, stop) = (address.clone(), stop.clone());
            tokio::spawn(async move {
                let mut closed = 0;
                loop {
                    let held = async {
                        let mut stream = tokio::net::TcpStream::connect(&address).await?;
                        stream
                            .write_all(b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
                            .await?;
                        let mut rest = Vec::new();
                        stream.read_to_end(&mut rest).await
                    };
                    tokio::select! {
                        () = stop.cancelled() => return closed,
                        _ = held => closed += 1,
                    }
                    // A refused connection (the server at its cap) is retried, not spun on.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect()
}
