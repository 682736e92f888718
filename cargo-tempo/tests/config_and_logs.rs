//! wasi:config and guest logs through the real binary: a guest reads exactly the values its
//! deployment declares, never a host variable, and every line it logs carries the request id.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::{Served, assert_contains, folder_with, get, get_with_request_id as request};

#[test]
fn guest_log_lines_carry_the_request_id() {
    let mut served = Served::start(tempo_test_fixtures::config());
    let url = format!("{}/log", served.url);

    let (status, _, echoed) = request(&url, Some("checkout-42"));
    assert_eq!((status, echoed.as_str()), (200, "checkout-42"));
    served.wait_for_stderr("[config_fixture checkout-42] fixture: logged at info");
    served.wait_for_stderr("[config_fixture checkout-42] warn logged at warn");
    served.wait_for_stderr("[config_fixture checkout-42] printed on stdout");

    // Without one from the client, the id is made up, sent back and logged the same.
    let (_, _, generated) = request(&url, None);
    assert_eq!(generated.len(), 16, "{generated}");
    served.wait_for_stderr(&format!("[config_fixture {generated}] printed on stdout"));

    // An id that could forge log lines is replaced.
    let (_, _, replaced) = request(&url, Some("two words"));
    assert_ne!(replaced, "two words");

    // Control characters a guest writes are shown escaped, never obeyed: no forged line, no
    // terminal sequence, no bidi override reaches the terminal.
    let (status, _, _) = request(&format!("{}/forge", served.url), Some("forger"));
    assert_eq!(status, 200);
    served.wait_for_stderr(
        r"[config_fixture forger] ctx\u{1b}[31m: first\r\n[other-app 0000] forged by logging",
    );
    served.wait_for_stderr(
        r"[config_fixture forger] \u{1b}[2Jprinted\r[other-app 0000] forged by stdout \u{202e}txt.exe",
    );
    let stderr = served.stderr();
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{202e}') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    assert!(
        !stderr.lines().any(|line| line.starts_with("[other-app")),
        "{stderr}"
    );
}

#[test]
fn a_guest_reads_declared_config_and_nothing_of_the_host() {
    let folder = folder_with(
        "tempo.toml",
        "[config]\ngreeting = \"from tempo.toml\"\ncolour = \"overridden by .env\"\nretries = 3\n",
    );
    std::fs::write(
        folder.path().join(".env"),
        "TEMPO_CONFIG_COLOUR=blue\nDOTENV_SECRET=not-for-guests\n",
    )
    .unwrap();
    let env = [
        ("TEMPO_CONFIG_API_TOKEN", "from the environment"),
        ("HOST_SECRET", "hunter2"),
    ];
    let mut served = Served::launch_in(folder.path(), tempo_test_fixtures::config(), &env);
    served.wait_for_serving();
    served.wait_for_stderr("Linked wasi:config: 4 value(s): api_token, colour, greeting, retries");
    let url = |path: &str| format!("{}{path}", served.url);

    assert_eq!(
        get(&url("/config/greeting")),
        (200, "from tempo.toml".into())
    );
    assert_eq!(get(&url("/config/colour")), (200, "blue".into()));
    assert_eq!(get(&url("/config/retries")), (200, "3".into()));
    assert_eq!(
        get(&url("/config/api_token")),
        (200, "from the environment".into())
    );
    for undeclared in [
        "missing",
        "HOST_SECRET",
        "host_secret",
        "DOTENV_SECRET",
        "TEMPO_CONFIG_API_TOKEN",
        "PATH",
        "HOME",
    ] {
        assert_eq!(
            get(&url(&format!("/config/{undeclared}"))),
            (404, "undeclared".into()),
            "{undeclared}"
        );
    }
    assert_eq!(
        get(&url("/config")).1,
        "api_token=from the environment\ncolour=blue\ngreeting=from tempo.toml\nretries=3\n"
    );
    assert_eq!(get(&url("/env")), (200, String::new()));
}

#[test]
fn a_config_value_that_is_neither_a_scalar_nor_a_secret_names_the_file() {
    let folder = folder_with("tempo.toml", "[config]\nlist = [1, 2]\n");
    let mut served = Served::launch_in(folder.path(), tempo_test_fixtures::config(), &[]);
    assert_ne!(served.wait(), Some(0));
    let stderr = served.stderr();
    assert_contains(
        &stderr,
        "tempo.toml`: `[config] list` must be text, a number, a boolean or",
    );
}

#[test]
fn json_logs_are_one_object_per_line_on_stdout_whatever_the_guest_writes() {
    let mut command = common::tempo();
    command
        .env("TEMPO_LOG_FORMAT", "json")
        .arg("run")
        .arg(tempo_test_fixtures::config())
        .args(["--listen", "127.0.0.1:0"]);
    let mut served = Served::spawn(command);
    let banner = served.wait_for_stdout("Serving http://");
    let banner: serde_json::Value = serde_json::from_str(&banner).unwrap();
    let url = banner["message"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned();

    let (status, _, _) = request(&format!("{url}/forge"), Some("forger"));
    assert_eq!(status, 200);
    served.wait_for_stdout("forged by stdout");
    let stdout = served.stdout();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect();
    for line in &lines {
        assert!(
            line["level"].is_string()
                && line["message"].is_string()
                && line["timestamp"].is_string(),
            "{line}"
        );
    }
    // The guest's forged line and control characters stay inside one object's message.
    let forged = lines
        .iter()
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.contains("forged by logging"))
        })
        .unwrap();
    assert_eq!(forged["component"], "config_fixture");
    assert_eq!(forged["request_id"], "forger");
    assert!(!lines.iter().any(|line| line["component"] == "other-app"));
    assert_eq!(served.stderr(), "", "nothing but JSON, and on stdout");
}
