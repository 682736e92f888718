//! Guests' outgoing requests: resolved by tempo, each address checked against the [`policy`],
//! and sent over a connection to exactly the address that was checked, so a DNS answer that
//! changes between the check and the connection (rebinding) reaches nothing new. Connecting and
//! waiting for the response have finite timeouts, which a guest may shorten but not lengthen.

mod machine;
mod policy;

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use crate::bodies::CheckedBody;
use http::uri::Scheme as UriScheme;
use http_body_util::BodyExt as _;
use tempo_runtime_core::OnceSet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

pub use policy::OwnAddresses;
pub(crate) use policy::Policy;
use policy::{Scheme, Target};

/// The default for how long connecting (DNS, TCP, TLS) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default for how long the response's head, and then each piece of its body, may take.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// What every instance's outgoing requests share.
pub(crate) struct Outbound {
    pub(crate) policy: Policy,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    /// Hosts whose denial was logged already, so a guest cannot flood the log.
    denied: OnceSet,
}

impl Outbound {
    pub(crate) fn new(
        policy: Policy,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Self {
        Self {
            policy,
            connect_timeout,
            response_timeout,
            denied: OnceSet::default(),
        }
    }

    /// The banner's line.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}; connect timeout {:?}, response timeout {:?}",
            self.policy.describe(),
            self.connect_timeout,
            self.response_timeout
        )
    }

    fn log_denied(&self, host: &str, port: u16) {
        if self.denied.first(&format!("{host}:{port}")) {
            tracing::warn!(
                "a guest's request to {host}:{port} was denied; list it in {} to allow it",
                crate::settings::ALLOWED_OUTBOUND_HOSTS.how_to_set()
            );
        }
    }

    /// Resolves the request's host, keeps the addresses the policy permits and connects to the
    /// first that answers.
    async fn connect(&self, target: &Target<'_>) -> Result<TcpStream, Error> {
        let addresses: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, target.port)],
            Err(_) => tokio::net::lookup_host((target.host, target.port))
                .await
                .map_err(|_| Error::DnsError {
                    rcode: None,
                    info_code: None,
                })?
                .collect(),
        };
        let permitted: Vec<SocketAddr> = addresses
            .into_iter()
            .filter(|address| self.policy.permits(target, address.ip()))
            .collect();
        if permitted.is_empty() {
            self.log_denied(target.host, target.port);
            return Err(Error::HttpRequestDenied);
        }
        let mut last = Error::ConnectionRefused;
        for address in permitted {
            match TcpStream::connect(address).await {
                Ok(stream) => return Ok(stream),
                Err(err) => last = Error::Connect(err),
            }
        }
        Err(last)
    }

    /// Sends `request` as the policy allows, with the timeouts.
    async fn send(
        self: Arc<Self>,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(http::Response<WasiBody>, ConnectionTask), Error> {
        let shorter =
            |ours: Duration, theirs: Option<Duration>| theirs.map_or(ours, |t| t.min(ours));
        let connect_timeout = shorter(
            self.connect_timeout,
            options.and_then(|o| o.connect_timeout),
        );
        let first_byte_timeout = shorter(
            self.response_timeout,
            options.and_then(|o| o.first_byte_timeout),
        );
        let between_bytes_timeout = shorter(
            self.response_timeout,
            options.and_then(|o| o.between_bytes_timeout),
        )
        .max(Duration::from_millis(1));

        let uri = request.uri().clone();
        let scheme = match uri.scheme() {
            Some(scheme) if *scheme == UriScheme::HTTPS => Scheme::Https,
            Some(scheme) if *scheme == UriScheme::HTTP => Scheme::Http,
            _ => return Err(Error::HttpProtocolError),
        };
        let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or_else(|| if scheme == Scheme::Https { 443 } else { 80 });
        let target = Target {
            scheme,
            host: &host,
            port,
        };

        let connecting = async {
            let stream = self.connect(&target).await?;
            let stream: Box<dyn Stream> = match scheme {
                Scheme::Http => Box::new(stream),
                Scheme::Https => Box::new(tls(&host, stream).await?),
            };
            hyper::client::conn::http1::Builder::new()
                .handshake::<_, WasiBody>(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(Error::from)
        };
        let (mut sender, connection) = tokio::time::timeout(connect_timeout, connecting)
            .await
            .map_err(|_| Error::ConnectionTimeout)??;
        let connection = ConnectionTask::spawn(connection);

        // The request line carries only the path: the host travels in the Host header.
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)?;
        let response = response.map(|incoming| {
            CheckedBody::new(incoming, u64::MAX, between_bytes_timeout).boxed_unsync()
        });
        Ok((response, connection))
    }
}

/// A TCP or TLS stream.
trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// TLS to `host` over `stream`, verified against the web's root certificates.
async fn tls(
    host: &str,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::from(ip),
        Err(_) => rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(Error::InvalidDnsNameError)?,
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(Error::Tls)
}

/// The task that drives a connection's I/O; its outcome is the request's I/O outcome.
struct ConnectionTask(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl ConnectionTask {
    fn spawn<T>(connection: hyper::client::conn::http1::Connection<T, WasiBody>) -> Self
    where
        T: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
    {
        Self(tokio::spawn(connection))
    }
}

impl Future for ConnectionTask {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(Pin::new(&mut self.0).poll(cx)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Error::from(err)),
            Err(_) => Err(Error::ConnectionTerminated),
        })
    }
}

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        // Nobody reads the response any more: the connection goes with it.
        self.0.abort();
    }
}

/// The hooks of one instance: outgoing requests through [`Outbound`], carrying the trace of
/// the request or message the instance handles.
#[derive(Clone)]
pub(crate) struct GuestHttpHooks {
    pub(crate) outbound: Arc<Outbound>,
    pub(crate) work: tempo_runtime_core::CurrentWork,
}

impl WasiHttpHooks for GuestHttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        let mut request = request;
        crate::trace_context::inject(&self.work.trace(), request.headers_mut());
        let outbound = self.outbound.clone();
        Box::new(async move {
            let (response, connection) = outbound.send(request, options).await?;
            Ok((
                response,
                Box::new(connection) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}
