//! Load for `bench/limits.sh`: `load-mix URL [REQUESTS] [CONCURRENCY] [MIX] [HALF_OPEN] [SECONDS]`.
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

    fn expected(self, outcome: Outcome) -> bool {
        use Outcome::{Cut, Status};
        matches!(
            (self, outcome),
            (Kind::Hello | Kind::Upload, Status(200))
                | (Kind::Download, Status(200) | Cut)
                | (Kind::Trap, Status(500))
                | (Kind::Loop, Status(500 | 504))
        )
    }
}

/// What became of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// A response with this status, its whole body received.
    Status(u16),
    /// A 200 whose body ended early (the server closed the connection mid-body).
    Cut,
    /// No response.
    Failed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Status(status) => write!(f, "{status}"),
            Outcome::Cut => f.write_str("cut"),
            Outcome::Failed => f.write_str("failed"),
        }
    }
}

/// What came back for each kind, and the hello latencies.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<(Kind, Outcome), usize>,
    hello_micros: Vec<u64>,
}

#[tokio::main]
#[allow(
    clippy::print_stdout,
    reason = "the table and the result line are the program's output"
)]
async fn main() -> anyhow::Result<()> {
    // reqwest needs rustls' process provider; tempo's is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first().cloned() else {
        bail!("usage: load-mix URL [REQUESTS] [CONCURRENCY] [full|hello] [HALF_OPEN] [SECONDS]");
    };
    let number = |i: usize, default: usize| -> anyhow::Result<usize> {
        args.get(i)
            .map_or(Ok(default), |n| n.parse().context("not a number"))
    };
    let requests = number(1, 100_000)?;
    let concurrency = number(2, 64)?;
    let mix = args.get(3).cloned().unwrap_or_else(|| "full".to_owned());
    let half_open = number(4, 0)?;
    let budget = Duration::from_secs(u64::try_from(number(5, 300)?)?);

    let stop_holding = tokio_util::sync::CancellationToken::new();
    let holders = hold_half_open(&url, half_open, stop_holding.clone());
    if half_open > 0 {
        // Let them connect before the measured load starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
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
                    if started.elapsed() > budget {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= requests {
                        return;
                    }
                    let kind = Kind::of(index, &mix);
                    let sent = Instant::now();
                    let outcome = send(&client, &url, kind, &upload).await;
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let mut tally = tally.lock().await;
                    *tally.outcomes.entry((kind, outcome)).or_default() += 1;
                    if kind == Kind::Hello && outcome == Outcome::Status(200) {
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
    let not_sent = requests.saturating_sub(next.load(Ordering::Relaxed));
    stop_holding.cancel();
    let mut closed_by_server = 0;
    for holder in holders {
        closed_by_server += holder.await?;
    }

    let mut tally = tally.lock().await;
    println!("{:<10} {:>7} {:>9}", "kind", "outcome", "requests");
    let (mut unexpected, mut cut) = (0, 0);
    for ((kind, outcome), count) in &tally.outcomes {
        let mark = if kind.expected(*outcome) {
            ""
        } else {
            unexpected += count;
            "  unexpected"
        };
        if *outcome == Outcome::Cut {
            cut += count;
        }
        let kind = format!("{kind:?}").to_lowercase();
        println!("{kind:<10} {:>7} {count:>9}{mark}", outcome.to_string());
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
        "result requests={requests} seconds={:.1} hello_p50_ms={p50:.2} hello_p99_ms={p99:.2} unexpected={unexpected} not_sent={not_sent} cut={cut} half_open={half_open} half_open_closed_by_server={closed_by_server}",
        elapsed.as_secs_f64()
    );
    if unexpected > 0 || not_sent > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Sends one request of `kind` and returns what became of it once its whole body has arrived.
async fn send(client: &reqwest::Client, url: &str, kind: Kind, upload: &bytes::Bytes) -> Outcome {
    let request = match kind {
        Kind::Hello => client.get(format!("{url}/")),
        Kind::Trap => client.get(format!("{url}/trap")),
        Kind::Loop => client.get(format!("{url}/loop")),
        Kind::Download => client.get(format!("{url}/download?mib={}", DOWNLOAD_BYTES >> 20)),
        Kind::Upload => client.post(format!("{url}/upload")).body(upload.clone()),
    };
    let Ok(response) = request.send().await else {
        return Outcome::Failed;
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(body) if kind == Kind::Download && status == 200 && body.len() != DOWNLOAD_BYTES => {
            Outcome::Cut
        }
        Ok(_) => Outcome::Status(status),
        Err(_) if status == 200 => Outcome::Cut,
        Err(_) => Outcome::Failed,
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
