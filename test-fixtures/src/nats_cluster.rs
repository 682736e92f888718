//! A real NATS cluster on loopback: `nats-server` nodes with cluster routes and JetStream, each
//! with its own store folder, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use crate::{free_port, poll, status_of};

/// One node: its ports, its store and configuration, and its process while it runs.
struct Node {
    port: u16,
    monitor_port: u16,
    config: PathBuf,
    child: Option<Child>,
}

/// Nodes of one cluster. [`kill`](NatsCluster::kill) and [`restart`](NatsCluster::restart) keep
/// a node's ports and store, as a crashed server coming back would.
pub struct NatsCluster {
    nodes: Vec<Node>,
    _folder: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes and waits until JetStream is up on each (a meta leader is elected).
    pub fn start(size: usize) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes: Vec<String> = cluster_ports
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect();
        let mut nodes = Vec::new();
        for (index, cluster_port) in cluster_ports.iter().enumerate() {
            let (port, monitor_port) = (free_port(), free_port());
            let store = folder.path().join(format!("n{index}"));
            let config = folder.path().join(format!("n{index}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: n{index}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor_port}\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: tempo-tests, listen: 127.0.0.1:{cluster_port}, routes: [{}] }}\n",
                    store.display(),
                    routes.join(", ")
                ),
            )
            .unwrap();
            nodes.push(Node {
                port,
                monitor_port,
                config,
                child: None,
            });
        }
        let mut cluster = Self {
            nodes,
            _folder: folder,
        };
        for index in 0..size {
            cluster.launch(index);
        }
        for index in 0..size {
            cluster.wait_until_healthy(index);
        }
        cluster
    }

    /// `nats://127.0.0.1:PORT` of node `index`.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].port)
    }

    /// Every node's URL, separated by commas (as `NATS_ADDR` takes a cluster).
    pub fn urls(&self) -> String {
        self.url_list().join(",")
    }

    /// Every node's URL (as `async_nats::connect` takes a cluster).
    pub fn url_list(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|index| self.url(index)).collect()
    }

    /// Kills node `index` with SIGKILL, as a crash would.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again on its ports and store, and waits until it is healthy.
    pub fn restart(&mut self, index: usize) {
        self.launch(index);
        self.wait_until_healthy(index);
    }

    fn launch(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        assert!(node.child.is_none(), "node {index} is running");
        let mut command = Command::new("nats-server");
        command.arg("-c").arg(&node.config);
        node.child = Some(crate::spawn_nats_server(command));
    }

    /// Waits until node `index`'s monitoring answers `/healthz` with 200: connected to its
    /// routes, JetStream current with the cluster's leader.
    fn wait_until_healthy(&self, index: usize) {
        let port = self.nodes[index].monitor_port;
        poll(Duration::from_millis(100), || {
            (status_of(port, "/healthz") == Some(200)).then_some(())
        })
        .unwrap_or_else(|| panic!("NATS node {index} never became healthy"));
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}
