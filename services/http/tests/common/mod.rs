//! An in-process tempo HTTP server over a real component.

#![allow(dead_code, reason = "each test file uses part of this")]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tempo_http::{HttpConfig, HttpService};
use tempo_runtime_core::{
    Admission, EngineSettings, InstanceSettings, LiveComponent, Runtime, ServeWith, Version,
    artifact::Artifact,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A tempo HTTP server on a free port.
pub(crate) struct Server {
    pub(crate) runtime: Runtime,
    pub(crate) live: LiveComponent,
    pub(crate) url: String,
    pub(crate) shutdown: CancellationToken,
    pub(crate) serving: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    pub(crate) async fn start(component: &Path) -> Self {
        let engine = EngineSettings {
            cache_dir: None,
            ..EngineSettings::default()
        }
        .build()
        .unwrap();
        let mut runtime = Runtime::new(engine);
        runtime.add_service(Arc::new(
            HttpService::new(HttpConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                shutdown_grace: Duration::from_secs(30),
                // The tests' gate servers listen on loopback.
                allowed_outbound_hosts: Some(vec!["http://127.0.0.1:*".to_owned()]),
                ..HttpConfig::default()
            })
            .unwrap(),
        ));
        let version = prepare(&runtime, component);
        let trigger = version.triggers()[0].clone();
        let live = LiveComponent::new(version);
        let shutdown = CancellationToken::new();
        let slots = Admission::default().divide(&[trigger.demand()]).unwrap();
        let slots = slots.into_iter().next().unwrap();
        let with = ServeWith {
            live: live.clone(),
            slots,
            shutdown: shutdown.clone(),
        };
        let running = trigger.start(with).await.unwrap();
        let serving = tokio::spawn(running.serve);
        Self {
            runtime,
            live,
            url: running.address,
            shutdown,
            serving,
        }
    }
}

pub(crate) fn prepare(runtime: &Runtime, component: &Path) -> Version {
    let loaded = Artifact::read(component)
        .and_then(|file| file.load(runtime.engine(), false))
        .unwrap();
    let name = component
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    runtime
        .prepare(&loaded.component, InstanceSettings::named(name))
        .unwrap()
}

/// A test's HTTP client. reqwest needs rustls' process provider installed first, as tempo
/// installs it.
pub(crate) fn client() -> reqwest::Client {
    tempo_runtime_core::install_crypto_provider();
    reqwest::Client::new()
}

/// A GET of `url` with a [`client`].
pub(crate) async fn http_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    client().get(url).send().await
}
