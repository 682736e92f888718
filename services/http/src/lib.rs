//! `wasi:http` for tempo: a hyper server (HTTP/1.1 and HTTP/2, in cleartext or TLS) that runs each
//! request in an instance of the live component, and outgoing requests from guests.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tempo_http::{HttpConfig, HttpService};
//! use tempo_runtime_core::{EngineSettings, Runtime};
//!
//! # fn demo() -> anyhow::Result<()> {
//! let mut runtime = Runtime::new(EngineSettings::default().build()?);
//! runtime.add_service(Arc::new(HttpService::new(HttpConfig {
//!     listen: "127.0.0.1:0".parse()?,
//!     allowed_outbound_hosts: Some(vec!["https://api.example.com".into()]),
//!     ..HttpConfig::default()
//! })?));
//! # Ok(()) }
//! ```

mod bodies;
mod connection;
mod handler;
mod handler_p3;
mod instance;
mod metrics;
mod outbound;
mod preface;
mod server;
pub mod settings;
mod tls;
mod trace_context;
mod trigger;

pub use handler::{CLIENT_CERT_SUBJECT_HEADER, Prepared, REQUEST_ID_HEADER, STALE_HEADER};
pub use outbound::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, OwnAddresses};
pub use settings::{HttpArgs, HttpToml};
pub use tls::TlsFiles;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tempo_runtime_core::wasmtime::component::Linker;
use tempo_runtime_core::{AnyTrigger, InterfaceName, Service, State, WASI_VERSION};

use crate::instance::{InstanceHttp, http_view};

pub use crate::handler_p3::{IDLE_TIMEOUT, Reuse};

/// The WASI 0.3 version of wasi:http that wasmtime-wasi-http implements.
pub const WASI_HTTP_P3_VERSION: &str = "0.3.0";

/// Where and how the server listens.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// The address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// How long, after a shutdown signal, requests in flight may take to finish.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request's head (and may stay idle between requests).
    pub header_timeout: Duration,
    /// How long a client may leave a request body it is sending, or a response it is being sent,
    /// without progress before the connection fails.
    pub stall_timeout: Duration,
    /// The most connections open at once; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// The largest request body, in bytes: a larger announced one gets 413, a larger streamed one
    /// is cut off with an error the guest reads.
    pub max_body_bytes: u64,
    /// Where guests' outgoing requests may go (`[http] allowed-outbound-hosts`), or `None` for
    /// any public address.
    pub allowed_outbound_hosts: Option<Vec<String>>,
    /// How long an outgoing request may take to connect (DNS, TCP, TLS).
    pub outbound_connect_timeout: Duration,
    /// How long an outgoing request may wait for the response's head, and for each piece of its
    /// body.
    pub outbound_response_timeout: Duration,
    /// Other addresses of this tempo's (the admin server's) that guests may not reach unless
    /// a rule names them, shared with the host that binds them; the listener's own address is
    /// added once it is bound.
    pub own_addresses: OwnAddresses,
    /// How WASI 0.3 handlers' instances are reused (a WASI 0.2 handler gets a fresh instance
    /// for every request).
    pub reuse: Reuse,
    /// Serve HTTPS from these files instead of cleartext.
    pub tls: Option<TlsFiles>,
    /// The most requests (streams) an HTTP/2 connection has open at once.
    pub max_concurrent_streams: u32,
}

/// The default number of streams an HTTP/2 connection has open at once: 100.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;

/// The default number of requests a WASI 0.3 instance handles in its life.
pub const DEFAULT_INSTANCE_REUSE: usize = 128;

/// The default number of requests a WASI 0.3 instance handles at once.
pub const DEFAULT_INSTANCE_CONCURRENCY: usize = 16;

/// The default time a client has to send a request's head: 10 s.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The default time a body may stall: 30 s.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The default number of connections open at once: 10,000.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The default largest request body: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 << 20;

/// The default listen address, `127.0.0.1:8080`.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            shutdown_grace: Duration::from_secs(10),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allowed_outbound_hosts: None,
            outbound_connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            outbound_response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            own_addresses: OwnAddresses::default(),
            reuse: Reuse {
                requests: DEFAULT_INSTANCE_REUSE,
                concurrent: DEFAULT_INSTANCE_CONCURRENCY,
            },
            tls: None,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
        }
    }
}

/// The `wasi:http` service: outgoing requests on the import side, the server as its trigger.
pub struct HttpService {
    config: HttpConfig,
    provides: Vec<InterfaceName>,
    export: InterfaceName,
    /// The WASI 0.3 handler, served as the 0.2 one is.
    p3_export: [InterfaceName; 1],
    /// Guests' outgoing requests; the listener's address joins their own addresses once bound.
    outbound: Arc<outbound::Outbound>,
    /// The server's TLS, loaded when the service is made so that a bad file stops the start.
    tls: Option<Arc<tls::Tls>>,
}

impl HttpService {
    /// A service that will listen as `config` says once started; an outbound rule that does not
    /// parse, or TLS files that do not load, are an error naming them.
    pub fn new(config: HttpConfig) -> anyhow::Result<Self> {
        let tls = config
            .tls
            .clone()
            .map(tls::Tls::new)
            .transpose()?
            .map(Arc::new);
        let name = |interface: &str| {
            InterfaceName::known(&format!("wasi:http/{interface}@{WASI_VERSION}"))
        };
        let p3_name = |interface: &str| {
            InterfaceName::known(&format!("wasi:http/{interface}@{WASI_HTTP_P3_VERSION}"))
        };
        let policy = outbound::Policy::new(
            config.allowed_outbound_hosts.as_deref(),
            config.own_addresses.clone(),
        )
        .map_err(|err| anyhow::anyhow!("{}: {err}", settings::ALLOWED_OUTBOUND_HOSTS))?;
        let outbound = outbound::Outbound::new(
            policy,
            config.outbound_connect_timeout,
            config.outbound_response_timeout,
        );
        Ok(Self {
            config,
            provides: vec![
                name("types"),
                name("outgoing-handler"),
                p3_name("types"),
                p3_name("client"),
            ],
            export: name("incoming-handler"),
            p3_export: [p3_name("handler")],
            outbound: Arc::new(outbound),
            tls,
        })
    }
}

impl Service for HttpService {
    tempo_runtime_core::service_names!("wasi:http", self.provides);

    fn link(&self, linker: &mut Linker<State>) -> anyhow::Result<()> {
        use wasmtime_wasi_http::{WasiHttp, p2, p3};
        let options = p2::bindings::LinkOptions::default();
        p2::bindings::http::outgoing_handler::add_to_linker::<_, WasiHttp>(linker, http_view)?;
        p2::bindings::http::types::add_to_linker::<_, WasiHttp>(
            linker,
            &(&options).into(),
            http_view,
        )?;
        // WASI 0.3 host functions are async, which only an engine with `Concurrency::On` allows.
        if linker.engine().get_concurrency_support() {
            p3::bindings::http::client::add_to_linker::<_, WasiHttp>(linker, http_view)?;
            p3::bindings::http::types::add_to_linker::<_, WasiHttp>(linker, http_view)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let config = &self.config;
        let tls = match &self.tls {
            None => String::from("HTTP/1.1 and HTTP/2 (h2c) in cleartext"),
            Some(tls) => tls.describe(),
        };
        format!(
            "{tls}; up to {} connections ({} streams each on HTTP/2), request heads within {:?}, \
             bodies up to {} bytes stalling at most {:?}; {}",
            config.max_connections,
            config.max_concurrent_streams,
            config.header_timeout,
            config.max_body_bytes,
            config.stall_timeout,
            self.outbound.describe()
        )
    }

    fn init_instance(&self, state: &mut State) {
        // The work is read when a request goes out: a reused instance's requests continue each
        // request's own trace.
        let http = InstanceHttp::new(self.outbound.clone(), state.current_work().clone());
        state.parts_mut().insert(http);
    }

    fn trigger(self: Arc<Self>) -> Option<Arc<dyn AnyTrigger>> {
        Some(self)
    }
}
