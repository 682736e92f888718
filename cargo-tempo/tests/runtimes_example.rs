//! `examples/runtimes` stays true to the code: its `.env.example` documents every variable tempo
//! reads, and its Prometheus configuration is valid for a real Prometheus.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::workspace;

/// The environment variables named in the Rust sources under `dir`: every string literal
/// that looks like one of tempo's (`TEMPO_*`, `NATS_*`, `OTEL_*`), or like the toolchain's that
/// tempo reads (`CARGO*`, `RUST*`), except where it is not a variable read (`env!`, clap's
/// `value_name`) and the examples of `TEMPO_CONFIG_<KEY>` and `TEMPO_SQL_DATABASE_<NAME>`, whose
/// prefixes are documented.
fn variables_named_in(dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            variables_named_in(&path, found);
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let mut pieces = source.split('"');
        let mut before = pieces.next().unwrap_or_default();
        while let (Some(literal), Some(after)) = (pieces.next(), pieces.next()) {
            let looks_like = ["TEMPO_", "NATS_", "OTEL_", "CARGO", "RUST"]
                .iter()
                .any(|prefix| literal.starts_with(prefix))
                && literal.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && !literal.ends_with('_')
                && !literal.starts_with("TEMPO_CONFIG_")
                && !literal.starts_with("TEMPO_SQL_DATABASE_");
            let not_a_read = before.ends_with("env!(") || before.ends_with("value_name = ");
            if looks_like && !not_a_read {
                found.insert(literal.to_owned());
            }
            before = after;
        }
    }
}

#[test]
fn the_env_example_documents_every_variable_tempo_reads() {
    let root = workspace();
    let mut read = BTreeSet::new();
    for dir in ["cargo-tempo/src", "runtime-core/src", "services"] {
        variables_named_in(&root.join(dir), &mut read);
    }
    read.extend([
        "TEMPO_CONFIG_GREETING".to_owned(),
        "TEMPO_SQL_DATABASE_MAIN".to_owned(),
        "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
    ]);
    assert!(
        read.contains("TEMPO_LISTEN") && read.contains("NATS_ADDR"),
        "{read:?}"
    );

    let example = std::fs::read_to_string(root.join("examples/runtimes/.env.example")).unwrap();
    let documented: BTreeSet<&str> = example
        .lines()
        .filter_map(|line| line.trim_start_matches('#').split_once('='))
        .map(|(name, _)| name)
        .collect();
    let missing: Vec<_> = read
        .iter()
        .filter(|name| !documented.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "examples/runtimes/.env.example lacks {missing:?}"
    );
}

#[test]
fn the_prometheus_configuration_is_valid() {
    let output = Command::new("promtool")
        .args(["check", "config"])
        .arg(workspace().join("examples/runtimes/prometheus.yml"))
        .output()
        .expect("this test needs promtool: `apt-get install prometheus` (`.ci/run` does)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr)
    );
}
