//! The production edge through the real binary and real clients (curl, openssl, the h2 crate):
//! TLS, HTTP/2 by ALPN and in cleartext, mutual TLS, certificates that rotate, and bounds on
//! clients that stall or reset streams. Certificates are made here with the openssl CLI.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Served, assert_contains, stderr, tempo};

/// A CA, certificates it signed, and a stranger CA with a client of its own, in a temporary
/// folder.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(
            pki.path("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(pki.path("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for ca in ["ca", "stranger-ca"] {
            pki.openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                &format!("/CN={ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
        pki.issue("server", "/CN=localhost", "ca", 1001, "server.ext");
        pki.issue(
            "client",
            "/O=Tempo Tests/CN=client-one",
            "ca",
            7,
            "client.ext",
        );
        pki.issue("stranger", "/CN=stranger", "stranger-ca", 8, "client.ext");
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        tempo_test_fixtures::openssl(self.dir.path(), args);
    }

    /// `NAME.pem` and `NAME.key` (PKCS#8), a certificate for `subject` signed by `ca`.
    fn issue(&self, name: &str, subject: &str, ca: &str, serial: u32, extensions: &str) {
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            &serial.to_string(),
            "-days",
            "30",
            "-extfile",
            extensions,
            "-out",
            &format!("{name}.pem"),
        ]);
    }
}

/// `cargo tempo run` of the http fixture in `pki`'s folder, on a free port, with `args`.
fn run_in(pki: &Pki, args: &[&str]) -> Command {
    let mut command = tempo();
    command
        .current_dir(pki.dir.path())
        .arg("run")
        .arg(tempo_test_fixtures::http())
        .args(["--listen", "127.0.0.1:0"])
        .args(args);
    command
}

/// `cargo tempo run` of the http fixture over TLS with `pki`'s server certificate, and `env`.
fn serve_tls(pki: &Pki, env: &[(&str, &str)]) -> Served {
    let key = pki.path("server.key");
    let tls = [
        "--tls-cert",
        "server.pem",
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let mut command = run_in(pki, &tls);
    command.envs(env.iter().copied());
    let mut served = Served::spawn(command);
    let line = served.wait_for_stderr("Serving https://");
    let address = line.split_whitespace().last().unwrap();
    let port = address.rsplit(':').next().unwrap();
    // The certificate names `localhost`.
    served.url = format!("https://localhost:{port}");
    served
}

/// curl with the test CA trusted and `localhost` resolved to the loopback address; its exit
/// status, and what it wrote: the body, then the negotiated HTTP version after `|`.
fn curl(pki: &Pki, url: &str, args: &[&str]) -> (bool, String) {
    curl_in(pki.dir.path(), url, args)
}

/// [`curl`] run in `folder`, which holds `ca.pem`.
fn curl_in(folder: &Path, url: &str, args: &[&str]) -> (bool, String) {
    let port = url.rsplit(':').next().unwrap().split('/').next().unwrap();
    let output = Command::new("curl")
        .current_dir(folder)
        .args([
            "-sS",
            "--max-time",
            "120",
            "--cacert",
            "ca.pem",
            "--resolve",
        ])
        .arg(format!("localhost:{port}:127.0.0.1"))
        .args(["-w", "|%{http_version}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed");
    let mut said = common::stdout(&output);
    if !output.status.success() {
        said.push_str(&stderr(&output));
    }
    (output.status.success(), said)
}

#[test]
fn https_speaks_http1_and_http2_by_alpn_and_cleartext_speaks_h2c() {
    let pki = Pki::new();
    let served = serve_tls(&pki, &[]);
    let whoami = format!("{}/whoami", served.url);
    let mine = "scheme=https authority=localhost:";
    let (ok, said) = curl(&pki, &whoami, &["--http1.1"]);
    assert!(
        ok && said.starts_with(mine) && said.ends_with("|1.1"),
        "{said}"
    );
    // A client may not claim a certificate it did not show.
    let (ok, said) = curl(
        &pki,
        &whoami,
        &["--http2", "-H", "x-client-cert-subject: CN=admin"],
    );
    assert!(
        ok && said.contains("subjects=[]") && said.ends_with("|2"),
        "{said}"
    );
    let output = Command::new("openssl")
        .args(["s_client", "-alpn", "h2", "-connect"])
        .arg(
            served
                .url
                .trim_start_matches("https://")
                .replace("localhost", "127.0.0.1"),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_contains(&common::stdout(&output), "ALPN protocol: h2");
    assert_contains(&served.stderr(), "HTTP/2 and HTTP/1.1 by ALPN");

    let plain = Served::start(tempo_test_fixtures::http());
    let url = format!("{}/whoami", plain.url);
    let (ok, said) = curl(
        &pki,
        &url,
        &["--http2-prior-knowledge", "-H", "x-client-cert-subject: x"],
    );
    assert!(
        ok && said.starts_with("scheme=http authority=127.0.0.1:"),
        "{said}"
    );
    assert!(said.ends_with("subjects=[]\n|2"), "{said}");
    // An HTTP/2 header list over 16 KiB is refused, and the server goes on.
    let big = format!("x-big: {}", "a".repeat(20 << 10));
    let (_, said) = curl(
        &pki,
        &url,
        &[
            "--http2-prior-knowledge",
            "-H",
            &big,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ],
    );
    assert_contains(&said, "431");
    let (ok, said) = curl(&pki, &url, &["--http1.1"]);
    assert!(ok && said.ends_with("|1.1"), "{said}");
}

#[test]
fn mutual_tls_admits_only_clients_of_its_ca_and_tells_the_guest_who_they_are() {
    let pki = Pki::new();
    let served = serve_tls(&pki, &[("TEMPO_TLS_CLIENT_CA", "ca.pem")]);
    let whoami = format!("{}/whoami", served.url);
    let client = ["--cert", "client.pem", "--key", "client.key"];
    let forged = ["-H", "x-client-cert-subject: CN=admin"];
    let (ok, said) = curl(&pki, &whoami, &[&client[..], &forged[..]].concat());
    assert!(ok, "{said}");
    assert_contains(&said, r#"subjects=["CN=client-one,O=Tempo Tests"]"#);
    for (shown, why) in [
        (&[][..], "no certificate"),
        (
            &["--cert", "stranger.pem", "--key", "stranger.key"][..],
            "another CA's",
        ),
    ] {
        let (ok, said) = curl(&pki, &whoami, shown);
        assert!(!ok && !said.contains("scheme="), "{why}: {said}");
    }
    let (ok, said) = curl(&pki, &whoami, &client);
    assert!(ok && said.contains("client-one"), "{said}");
}

#[test]
fn tls_files_that_do_not_load_are_named_and_exit_1_and_an_expired_one_is_a_warning() {
    let pki = Pki::new();
    std::fs::write(pki.path("notes.txt"), "not a certificate\n").unwrap();
    for (cert, key, says) in [
        (
            "notes.txt",
            "server.key",
            "`notes.txt` holds no certificate",
        ),
        (
            "server.pem",
            "server.pem",
            "`server.pem` holds no private key",
        ),
        (
            "client.pem",
            "server.key",
            "the key `server.key` does not belong to the certificate `client.pem`",
        ),
        (
            "missing.pem",
            "server.key",
            "cannot read the TLS certificate `missing.pem`",
        ),
    ] {
        let output = run_in(&pki, &["--tls-cert", cert, "--tls-key", key])
            .output()
            .unwrap();
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{said}");
        assert!(said.contains(says), "{says:?} not in {said}");
        assert_eq!(
            said.lines()
                .filter(|line| line.starts_with("error"))
                .count(),
            1,
            "{said}"
        );
    }
    let output = run_in(&pki, &[])
        .env("TEMPO_TLS_CLIENT_CA", "ca.pem")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_contains(
        &stderr(&output),
        "`[http] tls-client-ca` needs the server's own certificate",
    );

    // A certificate that expired in 2020, from `openssl ca`, which can backdate.
    std::fs::write(
        pki.path("ca.cnf"),
        "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\n\
         certificate = ca.pem\nprivate_key = ca.key\nserial = serial.txt\ndefault_md = sha256\n\
         policy = any\nx509_extensions = ext\nunique_subject = no\n[any]\ncommonName = supplied\n\
         [ext]\nsubjectAltName = DNS:localhost\n",
    )
    .unwrap();
    std::fs::write(pki.path("index.txt"), "").unwrap();
    std::fs::write(pki.path("serial.txt"), "2001\n").unwrap();
    pki.openssl(&[
        "ca",
        "-batch",
        "-config",
        "ca.cnf",
        "-in",
        "server.csr",
        "-notext",
        "-startdate",
        "20200101000000Z",
        "-enddate",
        "20200102000000Z",
        "-out",
        "expired.pem",
    ]);
    let command = run_in(
        &pki,
        &["--tls-cert", "expired.pem", "--tls-key", "server.key"],
    );
    let mut served = Served::spawn(command);
    let warning = served.wait_for_stderr("warning");
    assert!(
        warning.contains("`expired.pem` expired on 2020-01-02"),
        "{}",
        served.stderr()
    );
}

/// A TCP connection to `address` that has sent `bytes` and then nothing.
fn stalled(address: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

/// Whether the server closes `stream`, waiting up to `wait`: a read that times out means it is
/// open.
fn closed_by_server(mut stream: &TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn a_stalled_handshake_holds_only_its_own_connection_and_only_until_the_header_timeout() {
    let pki = Pki::new();
    // With a long header timeout, stalled clients stay: another client is served meanwhile.
    let served = serve_tls(&pki, &[("TEMPO_HTTP_HEADER_TIMEOUT_MS", "600000")]);
    let address = served.url.replace("https://localhost", "127.0.0.1");
    // A TLS record header announcing a ClientHello of 512 bytes, and 5 of them.
    let half_hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03];
    let silent = stalled(&address, b"");
    let half = stalled(&address, &half_hello);
    let (ok, said) = curl(&pki, &format!("{}/whoami", served.url), &[]);
    assert!(ok && said.starts_with("scheme=https"), "{said}");
    // Both are still open: the server was not waiting on them to serve the other.
    for stream in [&silent, &half] {
        assert!(!closed_by_server(stream, Duration::from_millis(200)));
    }

    // With a short one, the server closes them: in the handshake, and before a cleartext
    // connection has said its protocol (half an HTTP/2 preface).
    let short = [("TEMPO_HTTP_HEADER_TIMEOUT_MS", "300")];
    let tls = serve_tls(&pki, &short);
    let tls_address = tls.url.replace("https://localhost", "127.0.0.1");
    assert!(closed_by_server(
        &stalled(&tls_address, b""),
        common::PATIENCE
    ));
    assert!(closed_by_server(
        &stalled(&tls_address, &half_hello),
        common::PATIENCE
    ));
    let plain = Served::start_with(tempo_test_fixtures::http(), &short);
    let plain_address = plain.url.trim_start_matches("http://");
    assert!(closed_by_server(
        &stalled(plain_address, b"PRI * HTTP/2.0\r\n"),
        common::PATIENCE
    ));
    assert!(closed_by_server(
        &stalled(plain_address, b""),
        common::PATIENCE
    ));
    assert_eq!(common::get(&format!("{}/", plain.url)).0, 200);
    // An HTTP/2 connection that has had no stream for the header timeout is told GOAWAY and
    // closed, as an idle HTTP/1 one is.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ended = runtime.block_on(async {
        let io = tokio::net::TcpStream::connect(plain_address).await.unwrap();
        let (client, connection) = h2::client::handshake(io).await.unwrap();
        let connection = tokio::spawn(connection);
        let request = http::Request::get(format!("{}/", plain.url))
            .body(())
            .unwrap();
        let (response, _) = client
            .ready()
            .await
            .unwrap()
            .send_request(request, true)
            .unwrap();
        let status = response.await.unwrap().status();
        let ended = tokio::time::timeout(common::PATIENCE, connection).await;
        (
            status,
            ended
                .expect("the idle connection was never closed")
                .unwrap(),
        )
    });
    assert_eq!(ended.0, 200);
    assert!(ended.1.is_ok(), "{:?}", ended.1);
}

#[test]
fn a_rapid_reset_burst_closes_that_connection_and_others_are_served() {
    let mut served = Served::start_with(
        tempo_test_fixtures::http(),
        &[("RUST_LOG", "tempo_http=debug")],
    );
    let address = served.url.trim_start_matches("http://").to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ended = runtime.block_on(async {
        let io = tokio::net::TcpStream::connect(&address).await.unwrap();
        let (mut client, connection) = h2::client::handshake(io).await.unwrap();
        let connection = tokio::spawn(connection);
        // Open a stream and cancel it at once, again and again (CVE-2023-44487).
        for _ in 0..10_000 {
            let request = http::Request::get(format!("http://{address}/"))
                .body(())
                .unwrap();
            client = match client.ready().await {
                Ok(ready) => ready,
                Err(_) => break,
            };
            let Ok((_, mut stream)) = client.send_request(request, false) else {
                break;
            };
            stream.send_reset(h2::Reason::CANCEL);
        }
        connection.await.unwrap()
    });
    // The server says GOAWAY (ENHANCE_YOUR_CALM) and closes: the client sees either.
    let err = ended.expect_err("the server closes a connection that resets streams in a loop");
    assert!(
        err.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || err.is_io(),
        "{err}"
    );
    // hyper's bound, not a write error, ended it.
    let said = served.wait_for_stderr("connection ended with an error");
    assert_contains(&said, "excessive load generating behavior");
    assert_eq!(common::get(&format!("{}/", served.url)).0, 200);
}

/// Replaces `pki`'s server certificate and key with a new pair of serial `serial`, as a renewal
/// does: each file written whole to a temporary name, then renamed over the old one.
fn renew(pki: &Pki, serial: u32) {
    pki.issue("renewed", "/CN=localhost", "ca", serial, "server.ext");
    for (from, to) in [("renewed.key", "server.key"), ("renewed.pem", "server.pem")] {
        std::fs::rename(pki.path(from), pki.path(to)).unwrap();
    }
}

/// The serial number of the certificate a new TLS connection to `address` gets, as openssl
/// prints it (`serial=3EA`).
fn served_serial(pki: &Pki, address: &str) -> String {
    let handshake = Command::new("openssl")
        .args(["s_client", "-connect", address])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let serial = Command::new("openssl")
        .current_dir(pki.dir.path())
        .args(["x509", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(&handshake.stdout)?;
            child.wait_with_output()
        })
        .unwrap();
    common::stdout(&serial).trim().to_owned()
}

#[test]
fn rotated_files_reach_new_handshakes_under_load_and_a_bad_pair_keeps_the_old() {
    let pki = Pki::new();
    let mut served = serve_tls(&pki, &[]);
    let address = served.url.replace("https://localhost", "127.0.0.1");
    assert_eq!(served_serial(&pki, &address), "serial=03E9");

    // New connections, one request each, for as long as the rotation takes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, url, folder) = (stop.clone(), served.url.clone(), pki.path(""));
        std::thread::spawn(move || {
            let (mut done, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || done < 20 {
                let (ok, said) = curl_in(&folder, &format!("{url}/"), &[]);
                if !ok {
                    failed.push(said);
                }
                done += 1;
            }
            (done, failed)
        })
    };
    renew(&pki, 1002);
    served.wait_for_stderr("new TLS connections get");
    assert_eq!(served_serial(&pki, &address), "serial=03EA");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (done, failed) = load.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {done} requests failed: {failed:?}",
        failed.len()
    );

    // A certificate file that no longer loads: the old pair stays, and the log says why.
    std::fs::write(pki.path("server.pem"), "garbage\n").unwrap();
    served.wait_for_stderr("keeping the TLS certificate");
    assert_eq!(served_serial(&pki, &address), "serial=03EA");
    // SIGHUP reads the files again too.
    served.signal(libc::SIGHUP);
    served.wait_for_stderr("SIGHUP: keeping the TLS certificate");
    assert!(
        served
            .stderr()
            .contains("`server.pem` holds no certificate"),
        "{}",
        served.stderr()
    );
    renew(&pki, 1003);
    served.signal(libc::SIGHUP);
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while served_serial(&pki, &address) != "serial=03EB" {
        assert!(std::time::Instant::now() < deadline, "{}", served.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_lets_an_http2_stream_in_flight_finish_then_exits_0() {
    let pki = Pki::new();
    let (mut served, admin) = Served::with_admin(
        tempo_test_fixtures::http(),
        &[
            ("TEMPO_ALLOWED_OUTBOUND_HOSTS", "http://127.0.0.1:*"),
            ("TEMPO_HTTP_SHUTDOWN_DELAY_MS", "500"),
        ],
    );
    let gate = tempo_test_fixtures::Gate::start();
    let url = format!("{}/hold?url={}", served.url, gate.url);
    let folder = pki.path("");
    let held = std::thread::spawn(move || curl_in(&folder, &url, &["--http2-prior-knowledge"]));
    gate.wait_for(1);
    served.signal(libc::SIGTERM);
    served.wait_for_stderr("Draining");
    assert_eq!(
        common::get(&format!("http://{admin}/readyz")),
        (503, "draining\n".to_owned())
    );
    served.wait_for_stderr("Stopping");
    gate.release();
    let (ok, said) = held.join().unwrap();
    assert!(ok, "{said}");
    assert_eq!(said, "http-fixture:held\nhttp-fixture:released:200\n|2");
    assert_eq!(served.wait(), Some(0));
}
