//! Every subcommand explains itself, as `cargo tempo …` and as `cargo-tempo …`.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use common::{stderr, stdout, tempo};

#[test]
fn every_subcommand_has_help() {
    for command in [
        &[][..],
        &["new"],
        &["build"],
        &["compile"],
        &["run"],
        &["dev"],
        &["test"],
        &["push"],
        &["pull"],
        &["kube"],
    ] {
        let output = tempo().args(command).arg("--help").output().unwrap();
        assert!(output.status.success(), "{command:?}: {}", stderr(&output));
        assert!(
            stdout(&output).contains("Usage: cargo tempo"),
            "{command:?}"
        );
    }
}

#[test]
fn cargo_runs_it_with_the_subcommand_name_first() {
    let output = tempo().args(["tempo", "run", "--help"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("Usage: cargo tempo run"));
}

#[test]
fn an_unknown_subcommand_is_an_error() {
    let output = tempo().arg("serve-everything").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unrecognized subcommand"));
}
