//! Ctrl-C and SIGTERM: the first asks tempo to stop gracefully, a second quits at once.

use tokio_util::sync::CancellationToken;

use crate::shell::Shell;

/// Cancels `shutdown` on the first Ctrl-C or SIGTERM and exits the process on the second.
pub(crate) async fn stop_on_signal(shell: Shell, shutdown: CancellationToken) {
    for signal in 0.. {
        if wait_for_signal().await.is_err() {
            tracing::warn!("cannot listen for Ctrl-C; stop tempo by killing it");
            return;
        }
        if signal > 0 {
            std::process::exit(130);
        }
        shutdown.cancel();
        shell.status(
            "Stopping",
            "no new connections; requests in flight may finish (Ctrl-C again to quit now)",
        );
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
