//! Ctrl-C and SIGTERM: the first asks tempo to stop gracefully, a second quits at once.

use std::time::Duration;

use tempo_otel::Readiness;
use tokio_util::sync::CancellationToken;

use crate::shell::Shell;

/// How a serving command stops: `/readyz` turns 503 at the first signal, serving goes on for
/// `delay` (so that load balancers stop sending first), then `shutdown` is cancelled.
pub(crate) struct Drain {
    pub(crate) readiness: Readiness,
    pub(crate) delay: Duration,
}

impl Drain {
    /// The banner's line: what a shutdown signal does, in order.
    pub(crate) fn describe(&self) -> String {
        let delay = if self.delay.is_zero() {
            String::new()
        } else {
            format!(
                "serving {:?} more (`[http] shutdown-delay-ms`), then ",
                self.delay
            )
        };
        format!(
            "on SIGTERM or Ctrl-C, /readyz answers 503 at once; {delay}no new connections, and \
             requests in flight may finish"
        )
    }
}

/// Drains as `drain` says on the first Ctrl-C or SIGTERM, then cancels `shutdown`; exits the
/// process on the second.
pub(crate) async fn stop_on_signal(shell: Shell, shutdown: CancellationToken, drain: Drain) {
    if wait_for_signal().await.is_err() {
        tracing::warn!("cannot listen for Ctrl-C; stop tempo by killing it");
        return;
    }
    drain.readiness.set_draining();
    if !drain.delay.is_zero() {
        shell.status(
            "Draining",
            format!(
                "/readyz answers 503; serving {:?} more before stopping (Ctrl-C again to quit now)",
                drain.delay
            ),
        );
        tokio::select! {
            () = tokio::time::sleep(drain.delay) => {}
            _ = wait_for_signal() => std::process::exit(130),
        }
    }
    shutdown.cancel();
    shell.status(
        "Stopping",
        "no new connections; requests in flight may finish (Ctrl-C again to quit now)",
    );
    if wait_for_signal().await.is_ok() {
        std::process::exit(130);
    }
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
