//! Secrets from a real OpenBao into wasi:config: a guest reads one as a config value, it is read
//! again when it changes, and it never appears in tempo's output; a secret that is not there
//! stops the start with the key and the path (or leaves the key undefined when told); a token
//! or an AppRole login from the environment, and a refused one named.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::time::Instant;

use common::{PATIENCE, Served, assert_contains, folder_with, get};
use serde_json::{Value, json};
use tempo_test_fixtures::OpenBaoServer;

/// A request to OpenBao's HTTP API as its root; the JSON answer.
fn bao(server: &OpenBaoServer, method: reqwest::Method, path: &str, body: Value) -> Value {
    let response = crate::common::client()
        .request(method, format!("{}/v1/{path}", server.address))
        .header("x-vault-token", &server.token)
        .body(body.to_string())
        .send()
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    serde_json::from_str(&response.text().unwrap()).unwrap_or(Value::Null)
}

/// Stores `data` as the KV secret at `path`.
fn put_secret(server: &OpenBaoServer, path: &str, data: Value) {
    bao(
        server,
        reqwest::Method::POST,
        &format!("secret/data/{path}"),
        json!({ "data": data }),
    );
}

/// `cargo tempo run` of the config fixture in a folder with `toml` as tempo.toml.
fn launch(toml: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, Served) {
    let folder = folder_with("tempo.toml", toml);
    let served = Served::launch_in(folder.path(), tempo_test_fixtures::config(), env);
    (folder, served)
}

#[test]
fn a_secret_reaches_the_guest_is_refreshed_and_is_never_shown() {
    let server = OpenBaoServer::start();
    put_secret(
        &server,
        "app/api",
        json!({ "key": "s3cr3t-one", "user": "ada" }),
    );
    let toml = "[config]\ngreeting = \"hello\"\napi_key = { secret = \"app/api#key\" }\n\
                user = { secret = \"app/api#user\" }\n\n[secrets]\nrefresh-secs = 1\n";
    let env = [
        ("VAULT_ADDR", server.address.as_str()),
        ("VAULT_TOKEN", server.token.as_str()),
    ];
    let (_folder, mut served) = launch(toml, &env);
    served.wait_for_serving();
    let banner = served.wait_for_stderr("Linked wasi:config");
    assert!(
        banner.contains("3 value(s): api_key, greeting, user (2 from secrets at"),
        "{banner}"
    );
    assert_eq!(
        get(&format!("{}/config/api_key", served.url)),
        (200, "s3cr3t-one".to_owned())
    );
    assert_eq!(
        get(&format!("{}/config/user", served.url)),
        (200, "ada".to_owned())
    );

    // Changed on the server, it is read again.
    put_secret(
        &server,
        "app/api",
        json!({ "key": "s3cr3t-two", "user": "ada" }),
    );
    let started = Instant::now();
    while get(&format!("{}/config/api_key", served.url)).1 != "s3cr3t-two" {
        assert!(
            started.elapsed() < PATIENCE,
            "the secret was never read again"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let output = format!("{}{}", served.stdout(), served.stderr());
    assert!(!output.contains("s3cr3t"), "{output}");
    assert!(!output.contains(&server.token), "{output}");

    // A secret that is not there stops the start, naming the key and the path…
    let missing = "[config]\napi_key = { secret = \"app/none#key\" }\n";
    let (_folder, mut refused) = launch(missing, &env);
    assert_ne!(refused.wait(), Some(0));
    let stderr = refused.stderr();
    assert_contains(
        &stderr,
        "`[config] api_key`: there is no secret `app/none#key`",
    );
    // …or, when told, leaves the key undefined.
    let undefined = format!("{missing}\n[secrets]\non-missing = \"undefined\"\n");
    let (_folder, mut lenient) = launch(&undefined, &env);
    lenient.wait_for_serving();
    assert_eq!(get(&format!("{}/config/api_key", lenient.url)).0, 404);

    // A token the server refuses is named as such.
    let wrong = [
        ("VAULT_ADDR", server.address.as_str()),
        ("VAULT_TOKEN", "not-a-token"),
    ];
    let (_folder, mut denied) = launch(toml, &wrong);
    assert_ne!(denied.wait(), Some(0));
    let stderr = denied.stderr();
    assert!(
        stderr.contains("the secret `app/api#key` cannot be read from")
            && stderr.contains("permission denied"),
        "{stderr}"
    );
}

#[test]
fn an_approle_login_reads_what_its_policy_allows() {
    let server = OpenBaoServer::start();
    put_secret(&server, "app/api", json!({ "key": "s3cr3t-approle" }));
    let post = reqwest::Method::POST;
    bao(
        &server,
        post.clone(),
        "sys/auth/approle",
        json!({ "type": "approle" }),
    );
    let policy = "path \"secret/data/app/*\" { capabilities = [\"read\"] }";
    bao(
        &server,
        reqwest::Method::PUT,
        "sys/policies/acl/tempo",
        json!({ "policy": policy }),
    );
    bao(
        &server,
        post.clone(),
        "auth/approle/role/tempo",
        json!({ "token_policies": ["tempo"] }),
    );
    let role = bao(
        &server,
        reqwest::Method::GET,
        "auth/approle/role/tempo/role-id",
        Value::Null,
    );
    let secret = bao(
        &server,
        post,
        "auth/approle/role/tempo/secret-id",
        json!({}),
    );
    let role_id = role["data"]["role_id"].as_str().unwrap();
    let secret_id = secret["data"]["secret_id"].as_str().unwrap();

    let env = [
        ("VAULT_ADDR", server.address.as_str()),
        ("VAULT_ROLE_ID", role_id),
        ("VAULT_SECRET_ID", secret_id),
    ];
    let (_folder, mut served) = launch("[config]\napi_key = { secret = \"app/api#key\" }\n", &env);
    served.wait_for_serving();
    assert_eq!(
        get(&format!("{}/config/api_key", served.url)),
        (200, "s3cr3t-approle".to_owned())
    );
    let output = format!("{}{}", served.stdout(), served.stderr());
    assert!(
        !output.contains("s3cr3t") && !output.contains(secret_id),
        "{output}"
    );
}
