//! `cargo tempo dev` on a copy of examples/greeter, as its README promises: the greeting comes
//! from wasi:config, guest log lines carry request ids, and `/metrics` counts requests and
//! reloads.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use common::{
    Served, assert_contains, edit_source, example_copy, get, get_with_request_id, tempo,
    wait_for_body,
};

#[test]
fn dev_shows_guest_logs_with_request_ids_and_serves_metrics() {
    let (_root, project) = example_copy("greeter");
    let mut command = tempo();
    command
        .current_dir(&project)
        .args(["dev", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--target-dir")
        .arg(common::scratch("examples"));
    let mut dev = Served::spawn(command);
    dev.wait_for_serving();
    let metrics = format!("http://{}/metrics", dev.wait_for_admin());

    let (_, body, echoed) = get_with_request_id(&format!("{}/ada", dev.url), Some("hello-ada"));
    assert_eq!(echoed, "hello-ada");
    assert_eq!(body, "Hello, ada!\n");
    dev.wait_for_stderr("[greeter hello-ada] greeter: greeting ada");

    let (status, text) = get(&metrics);
    assert_eq!(status, 200);
    assert_contains(
        &text,
        r#"tempo_http_requests_total{component="greeter",status="200"} 1"#,
    );

    edit_source(&project, "{greeting}, {name}!", "{greeting} again, {name}!");
    dev.wait_for_stderr("Reloaded greeter");
    wait_for_body(&format!("{}/bo", dev.url), "Hello again, bo!");
    let (_, text) = get(&metrics);
    assert_contains(
        &text,
        r#"tempo_reloads_total{component="greeter",outcome="ok"} 1"#,
    );
}
