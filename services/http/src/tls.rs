//! TLS for the server: a certificate chain and key read from PEM files (and read again when they
//! change, or on SIGHUP), ALPN `h2` and `http/1.1`, and client certificates checked against a CA
//! when one is given.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, anyhow, bail};
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, InconsistentKeys, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use x509_cert::der::Decode as _;

/// The files TLS is served from (`--tls-cert`, `--tls-key`, `[http] tls-client-ca`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM: the server's certificate first, then its intermediates.
    pub cert: PathBuf,
    /// The private key, PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
    /// The CA certificates (PEM) a client's certificate must chain to; `None` asks for none.
    pub client_ca: Option<PathBuf>,
}

/// The largest PEM file read: a certificate chain or key is a few KiB.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// A warning is given for a certificate that expires sooner than this: 14 days.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// A certificate chain and its key, loaded and checked to belong together.
pub(crate) struct Identity {
    key: Arc<CertifiedKey>,
    /// The leaf certificate's subject, serial number and end of validity, to report.
    pub(crate) subject: String,
    pub(crate) serial: String,
    pub(crate) not_after: SystemTime,
}

impl Identity {
    /// Reads `files`' certificate and key; an error names the file and what is wrong with it.
    pub(crate) fn load(files: &TlsFiles, provider: &CryptoProvider) -> anyhow::Result<Self> {
        let cert_pem = read_pem(&files.cert, "TLS certificate")?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| anyhow!("`{}` is not a PEM file: {err}", files.cert.display()))?;
        let Some(leaf) = chain.first() else {
            bail!(
                "`{}` holds no certificate (a PEM `BEGIN CERTIFICATE` block)",
                files.cert.display()
            );
        };
        let parsed = x509_cert::Certificate::from_der(leaf).map_err(|err| {
            anyhow!(
                "`{}`: its first certificate is not X.509: {err}",
                files.cert.display()
            )
        })?;
        let tbs = &parsed.tbs_certificate;
        let (subject, serial, not_after) = (
            tbs.subject.to_string(),
            tbs.serial_number.to_string(),
            tbs.validity.not_after.to_system_time(),
        );
        let key_pem = read_pem(&files.key, "TLS key")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| {
            anyhow!(
                "`{}` holds no private key (a PEM PKCS#8, PKCS#1 or SEC1 key): {err}",
                files.key.display()
            )
        })?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|err| anyhow!("`{}` is not a usable key: {err}", files.key.display()))?;
        let key = CertifiedKey::new(chain, signing);
        match key.keys_match() {
            Ok(()) | Err(TlsError::InconsistentKeys(InconsistentKeys::Unknown)) => {}
            Err(TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => bail!(
                "the key `{}` does not belong to the certificate `{}`",
                files.key.display(),
                files.cert.display()
            ),
            Err(err) => bail!("`{}` cannot be used: {err}", files.cert.display()),
        }
        Ok(Self {
            key: Arc::new(key),
            subject,
            serial,
            not_after,
        })
    }

    /// What the banner says of this certificate when it is expired or expires soon.
    pub(crate) fn expiry_warning(&self, file: &Path) -> Option<String> {
        let until = date(self.not_after);
        match self.not_after.duration_since(SystemTime::now()) {
            Err(_) => Some(format!(
                "the TLS certificate `{}` expired on {until}: clients will refuse it",
                file.display()
            )),
            Ok(left) if left < EXPIRY_WARNING => Some(format!(
                "the TLS certificate `{}` expires on {until}, in {} day(s)",
                file.display(),
                left.as_secs() / 86_400
            )),
            Ok(_) => None,
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` (serial {}, valid until {})",
            self.subject,
            self.serial,
            date(self.not_after)
        )
    }
}

fn date(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// The file at `path`, read whole; an error names it as `what`.
fn read_pem(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let fail =
        |err: &dyn fmt::Display| anyhow!("cannot read the {what} `{}`: {err}", path.display());
    let size = std::fs::metadata(path).map_err(|err| fail(&err))?.len();
    if size > MAX_PEM_BYTES {
        return Err(fail(&format_args!(
            "it has {size} bytes, more than a PEM file of certificates or keys ({MAX_PEM_BYTES})"
        )));
    }
    std::fs::read(path).map_err(|err| fail(&err))
}

/// The server's TLS: the acceptor new connections go through, and the identity it presents,
/// which [`Tls::reload`] replaces.
pub(crate) struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<ArcSwap<Identity>>,
    acceptor: TlsAcceptor,
}

/// Hands every handshake the identity loaded last.
struct Current(Arc<ArcSwap<Identity>>);

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the current TLS identity")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().key.clone())
    }
}

/// The protocols offered by ALPN, most preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl Tls {
    /// Loads `files` and builds the server's TLS configuration (TLS 1.3 and 1.2); an error names
    /// the file at fault.
    pub(crate) fn new(files: TlsFiles) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let identity = Identity::load(&files, &provider)?;
        let current = Arc::new(ArcSwap::from_pointee(identity));
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("cannot set up TLS 1.3 and 1.2")?;
        let builder = match &files.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider.clone())?),
        };
        let mut config = builder.with_cert_resolver(Arc::new(Current(current.clone())));
        config.alpn_protocols = ALPN.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(Self {
            files,
            provider,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// What the banner says of TLS.
    pub(crate) fn describe(&self) -> String {
        let clients = match &self.files.client_ca {
            None => String::new(),
            Some(ca) => format!(", client certificates required, from `{}`", ca.display()),
        };
        format!(
            "TLS 1.3/1.2 with {} from `{}` (read again when it changes or on SIGHUP), \
             HTTP/2 and HTTP/1.1 by ALPN{clients}",
            self.identity(),
            self.files.cert.display()
        )
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    pub(crate) fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The identity new handshakes get.
    pub(crate) fn identity(&self) -> Arc<Identity> {
        self.current.load_full()
    }

    /// Reads the certificate and key again: a pair that loads replaces the current one for new
    /// handshakes (connections open keep theirs); one that does not is logged and the current
    /// one kept.
    pub(crate) fn reload(&self, why: &str) {
        match Identity::load(&self.files, &self.provider) {
            Ok(identity) => {
                let old = self.current.load();
                if old.key.cert == identity.key.cert {
                    tracing::debug!("{why}: the TLS certificate is unchanged");
                    return;
                }
                tracing::info!(
                    target: tempo_runtime_core::NOTICE_LOG_TARGET,
                    "{why}: new TLS connections get {identity}"
                );
                if let Some(warning) = identity.expiry_warning(&self.files.cert) {
                    tracing::warn!("{warning}");
                }
                self.current.store(Arc::new(identity));
            }
            Err(err) => tracing::warn!(
                "{why}: keeping the TLS certificate {}, since the files do not load: {err:#}",
                self.current.load()
            ),
        }
    }

    /// Reloads on SIGHUP and whenever the folders holding the certificate or the key change
    /// (cert-manager swaps a mounted Secret's folder, certbot rewrites the files), until
    /// `shutdown`. Changes that come together are read once.
    pub(crate) async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let (changed, mut changes) = tokio::sync::mpsc::channel::<()>(1);
        let watcher = watch_folders(&self.files, changed);
        if let Err(err) = &watcher {
            tracing::warn!(
                "the TLS files will be read again on SIGHUP only: cannot watch them: {err:#}"
            );
        }
        let mut hangups =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(hangups) => Some(hangups),
                Err(err) => {
                    tracing::warn!("cannot listen for SIGHUP: {err}");
                    None
                }
            };
        loop {
            let why = tokio::select! {
                () = shutdown.cancelled() => break,
                Some(()) = changes.recv() => {
                    // A renewal writes several files: read them once it is done.
                    tokio::time::sleep(SETTLE).await;
                    while changes.try_recv().is_ok() {}
                    "the TLS files changed"
                }
                Some(()) = async { hangups.as_mut()?.recv().await } => "SIGHUP",
            };
            self.reload(why);
        }
        drop(watcher);
    }
}

/// How long after a change the files are read, so that a renewal's writes are all done.
const SETTLE: Duration = Duration::from_millis(200);

/// Watches the folders of `files`' certificate and key, sending on `changed` at each change.
fn watch_folders(
    files: &TlsFiles,
    changed: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|event| !event.kind.is_access()) {
            // Full means a reload is already due.
            let _ = changed.try_send(());
        }
    })?;
    let mut folders: Vec<&Path> = [&files.cert, &files.key]
        .into_iter()
        .map(|file| file.parent().unwrap_or(Path::new(".")))
        .map(|folder| {
            if folder.as_os_str().is_empty() {
                Path::new(".")
            } else {
                folder
            }
        })
        .collect();
    folders.dedup();
    for folder in folders {
        watcher
            .watch(folder, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("`{}`", folder.display()))?;
    }
    Ok(watcher)
}

/// A verifier that requires a client certificate chained to the CAs in `file`.
fn client_verifier(
    file: &Path,
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let pem = read_pem(file, "client CA file")?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|err| anyhow!("`{}` is not a PEM file: {err}", file.display()))?;
        roots.add(cert).map_err(|err| {
            anyhow!(
                "`{}` holds a certificate that is not a CA: {err}",
                file.display()
            )
        })?;
    }
    if roots.is_empty() {
        bail!(
            "`{}` holds no CA certificate (a PEM `BEGIN CERTIFICATE` block)",
            file.display()
        );
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|err| anyhow!("`{}` cannot verify clients: {err}", file.display()))
}

/// The subject of a verified client's certificate (RFC 4514), as a header value: bytes a header
/// cannot hold are written `\xNN`.
pub(crate) fn client_subject(certificate: &CertificateDer<'_>) -> Option<http::HeaderValue> {
    let parsed = x509_cert::Certificate::from_der(certificate).ok()?;
    let subject = parsed.tbs_certificate.subject.to_string();
    let mut safe = String::with_capacity(subject.len());
    for byte in subject.bytes() {
        if (0x20..0x7f).contains(&byte) {
            safe.push(char::from(byte));
        } else {
            safe.push_str(&format!("\\x{byte:02x}"));
        }
    }
    http::HeaderValue::from_str(&safe).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempo_test_fixtures::openssl;

    fn files(folder: &Path, cert: &str, key: &str) -> TlsFiles {
        TlsFiles {
            cert: folder.join(cert),
            key: folder.join(key),
            client_ca: None,
        }
    }

    #[test]
    fn pkcs8_pkcs1_and_sec1_keys_load_and_a_key_of_another_certificate_is_named() {
        let folder = tempfile::tempdir().unwrap();
        let dir = folder.path();
        // PKCS#1 (RSA), SEC1 (EC) and PKCS#8 (Ed25519), each with a certificate of its own.
        openssl(dir, &["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
        openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ec.key",
            ],
        );
        openssl(dir, &["genpkey", "-algorithm", "ed25519", "-out", "ed.key"]);
        for (key, header) in [
            ("rsa", "BEGIN RSA PRIVATE KEY"),
            ("ec", "BEGIN EC PRIVATE KEY"),
            ("ed", "BEGIN PRIVATE KEY"),
        ] {
            let pem = std::fs::read_to_string(dir.join(format!("{key}.key"))).unwrap();
            assert!(pem.contains(header), "{key}: {pem}");
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-key",
                    &format!("{key}.key"),
                    "-subj",
                    "/CN=localhost",
                    "-days",
                    "1",
                    "-out",
                    &format!("{key}.pem"),
                ],
            );
            let provider = rustls::crypto::ring::default_provider();
            let identity = Identity::load(
                &files(dir, &format!("{key}.pem"), &format!("{key}.key")),
                &provider,
            );
            let identity = identity.unwrap_or_else(|err| panic!("{key}: {err:#}"));
            assert_eq!(identity.subject, "CN=localhost");
            // It expires within a day: the banner says so.
            let warning = identity.expiry_warning(Path::new("x.pem")).unwrap();
            assert!(warning.contains("in 0 day(s)"), "{warning}");
        }
        let err = Tls::new(files(dir, "rsa.pem", "ec.key")).err().unwrap();
        assert!(
            err.to_string()
                .contains("ec.key` does not belong to the certificate"),
            "{err}"
        );
    }
}
