//! Waiting for what a test expects to happen soon. The bound is a guard against a test that
//! hangs, never a measure of time: a slow machine waits longer and still passes.

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a test waits for what should happen soon (a server starting, a client
/// reconnecting, a line appearing) before it fails.
pub const PATIENCE: Duration = Duration::from_secs(300);

/// Asks `probe` every `every` until it answers `Some`, and returns that answer; `None` once
/// [`PATIENCE`] has passed without one. The caller's panic names what never happened.
pub fn poll<T>(every: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(answer) = probe() {
            return Some(answer);
        }
        if start.elapsed() >= PATIENCE {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// [`poll`] for an async `probe`, sleeping on tokio's timer between the asks.
pub async fn poll_async<T, F>(every: Duration, mut probe: impl FnMut() -> F) -> Option<T>
where
    F: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(answer) = probe().await {
            return Some(answer);
        }
        if start.elapsed() >= PATIENCE {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Runs `program` (a guest run to its exit code) every 200 ms until it exits with 0, as a guest
/// does once a server it needs is back; whether that happened within [`PATIENCE`].
pub async fn exits_zero_eventually<F>(mut program: impl FnMut() -> F) -> bool
where
    F: Future<Output = i32>,
{
    let every = Duration::from_millis(200);
    let exited = poll_async(every, || {
        let run = program();
        async move { (run.await == 0).then_some(()) }
    });
    exited.await.is_some()
}

/// The status of `GET path` on `127.0.0.1:port` over plain HTTP/1.1, if a server answers
/// within five seconds.
pub fn status_of(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Runs `future` to its end on a new multi-threaded tokio runtime, for a synchronous test that
/// talks to a server through an async client.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_the_first_answer() {
        let mut asked = 0;
        let answer = poll(Duration::from_millis(1), || {
            asked += 1;
            (asked == 3).then_some(asked)
        });
        assert_eq!(answer, Some(3));
    }

    #[test]
    fn nothing_listening_has_no_status() {
        assert_eq!(status_of(crate::free_port(), "/"), None);
    }
}
