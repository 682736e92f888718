//! `cargo tempo new` and `cargo tempo test` through the real binary: every template generates a
//! crate that builds, serves its routes and passes its own tests.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::{Path, PathBuf};

use common::{Served, assert_contains, scratch, stderr, stdout, tempo, workspace};

/// A request a generated crate must answer: path, status, a piece of the body.
type Check = (&'static str, u16, &'static str);

/// For each template in `templates/`: the requests a crate generated from it must answer.
const TEMPLATES: &[(&str, &[Check])] = &[
    (
        "http",
        &[
            ("/", 200, r#""routes":["GET /","GET /hello/{name}"]"#),
            ("/hello/Ada", 200, r#"{"greeting":"Hello, Ada!"}"#),
            ("/nowhere", 404, r#""error":"no route for /nowhere""#),
        ],
    ),
    (
        "blobstore",
        &[
            (
                "/files/absent.txt",
                404,
                r#""error":"no such file: absent.txt""#,
            ),
            ("/elsewhere", 404, r#""error":"no route for /elsewhere""#),
        ],
    ),
    (
        "messaging",
        &[
            ("/", 200, r#""routes":["GET /","GET /hello/{name}"]"#),
            ("/hello/Ada", 200, r#"{"greeting":"Hello, Ada!"}"#),
        ],
    ),
    (
        "http-p3",
        &[
            ("/", 200, "Hello from probe-http-p3!"),
            ("/hello/Ada", 200, "Hello, Ada!"),
            ("/countdown?2", 200, "2\n1\nliftoff\n"),
            ("/nowhere", 404, "no route for /nowhere"),
        ],
    ),
    (
        "sql",
        &[
            ("/notes", 200, "[]"),
            ("/notes/1", 404, r#""error":"no note 1""#),
        ],
    ),
    (
        "keyvalue",
        &[
            ("/", 200, r#"{"visits":1}"#),
            ("/", 200, r#"{"visits":2}"#),
            ("/kv/nothing", 404, r#""error":"no such key: nothing""#),
        ],
    ),
];

#[test]
fn every_template_folder_is_checked_here() {
    let mut folders: Vec<String> = std::fs::read_dir(workspace().join("templates"))
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let checked: Vec<&str> = TEMPLATES.iter().map(|(name, _)| *name).collect();
    for folder in &folders {
        assert!(
            checked.contains(&folder.as_str()),
            "templates/{folder} has no checks in TEMPLATES: add the requests its crate must answer"
        );
    }
}

/// `cargo tempo new NAME --template TEMPLATE --path DIR/NAME`; returns the crate's folder.
fn generate(dir: &Path, name: &str, template: &str) -> PathBuf {
    let folder = dir.join(name);
    let output = tempo()
        .args(["new", name, "--template", template, "--path"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    folder
}

/// Runs a cargo-driving subcommand on the crate at `folder`, in the target folder the examples'
/// tests use too, so the dependencies they share (tempo-sdk's) are compiled once.
fn on_crate(subcommand: &str, folder: &Path) -> std::process::Output {
    tempo()
        .arg(subcommand)
        .arg("--manifest-path")
        .arg(folder.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(scratch("examples"))
        .output()
        .unwrap()
}

#[test]
fn every_template_builds_serves_and_passes_its_tests() {
    let dir = tempfile::tempdir().unwrap();
    for (template, requests) in TEMPLATES {
        let folder = generate(dir.path(), &format!("probe-{template}"), template);
        let built = on_crate("build", &folder);
        assert!(built.status.success(), "{template}: {}", stderr(&built));
        let wasm = PathBuf::from(stdout(&built).trim());

        // Served from the crate's folder, as a user would, so its tempo.toml counts.
        let mut served = Served::launch_in(&folder, &wasm, &[]);
        served.wait_for_serving();
        for (path, status, body) in *requests {
            let response = crate::common::http_get(format!("{}{path}", served.url)).unwrap();
            assert_eq!(response.status(), *status, "{template} {path}");
            let text = response.text().unwrap();
            assert!(text.contains(body), "{template} {path}: {text}");
        }
        drop(served);

        let tested = on_crate("test", &folder);
        assert!(tested.status.success(), "{template}: {}", stderr(&tested));
        assert_contains(&stdout(&tested), "test result: ok.");
        assert!(
            !stdout(&tested).contains(" 0 passed"),
            "{template} ran no test"
        );
    }
}

#[test]
fn a_failing_test_fails_the_run_and_says_how_to_see_why() {
    let dir = tempfile::tempdir().unwrap();
    let folder = generate(dir.path(), "probe-failing", "http");
    let lib = folder.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let passing =
        "let (status, body) = call(Method::GET, \"/\");\n        assert_eq!(status, 200);";
    assert!(
        source.contains(passing),
        "the template's first test changed:\n{source}"
    );
    let failing = passing.replace("200", "500");
    std::fs::write(&lib, source.replace(passing, &failing)).unwrap();

    let output = on_crate("test", &folder);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("trapped"), "{}", stderr(&output));
    assert_contains(&stderr(&output), "-- --nocapture");
}

#[test]
fn list_names_each_template_with_its_description() {
    let output = tempo().args(["new", "--list"]).output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        stdout(&output),
        concat!(
            "blobstore    A wasi:http component that stores and serves files in wasi:blobstore.\n",
            "http         A wasi:http component with two routes answering JSON.\n",
            "http-p3      A WASI 0.3 HTTP component: an async handler with a streamed response and a streamed echo.\n",
            "keyvalue     A wasi:http component that counts visits and stores values by key in wasi:keyvalue.\n",
            "messaging    A wasi:http component that asks a wasi:messaging handler for its greetings.\n",
            "sql          A wasi:http component that keeps notes in a SQL table through wasi:sql: SQLite with no setup, or PostgreSQL with one setting.\n",
        )
    );
}

#[test]
fn bad_names_and_templates_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["new", "9lives"][..],
            "`9lives` cannot be a package name: it starts with a digit",
        ),
        (
            &["new", "my app"],
            "`my app` cannot be a package name: ` ` is not allowed",
        ),
        (
            &["new", "std"],
            "it is a Rust keyword or a standard library crate",
        ),
        (
            &["new", "fine", "--template", "nope"],
            "there is no template `nope` (`--template`)",
        ),
    ] {
        let output = tempo().current_dir(dir.path()).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&output).contains(says),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_folder_that_is_not_empty_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("taken");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("notes.txt"), "mine").unwrap();
    let output = tempo()
        .current_dir(dir.path())
        .args(["new", "taken"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_contains(
        &stderr(&output),
        "`taken` already exists and is not empty: choose another name or `--path`; nothing was written",
    );
    let left: Vec<_> = std::fs::read_dir(&folder).unwrap().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(
        std::fs::read_to_string(folder.join("notes.txt")).unwrap(),
        "mine"
    );
    // Nor is any staging folder left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let output = tempo()
        .args(["new", "fresh", "--path"])
        .arg(&empty)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(empty.join("Cargo.toml").is_file());
}
