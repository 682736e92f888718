//! The global settings, and the services' settings through the list.

use super::*;

fn args(flags: &[&str]) -> HostArgs {
    HostArgs::parse(flags).unwrap()
}

fn resolve(args: &HostArgs, toml: Option<&str>, env: &[(&str, &str)]) -> anyhow::Result<Settings> {
    let sources = Sources::with_variables(Path::new("/project"), toml, env)?;
    Settings::resolve(args, sources)
}

#[test]
fn the_admin_address_is_a_flag_or_tempo_admin() {
    assert_eq!(resolve(&args(&[]), None, &[]).unwrap().admin, None);
    let env = [("TEMPO_ADMIN", "127.0.0.1:9999")];
    let settings = resolve(&args(&[]), None, &env).unwrap();
    assert_eq!(
        settings.admin,
        Some(Admin::On("127.0.0.1:9999".parse().unwrap()))
    );
    assert_eq!(
        settings
            .sources
            .shared::<tempo_http::OwnAddresses>()
            .map(tempo_http::OwnAddresses::to_vec),
        Some(vec!["127.0.0.1:9999".parse::<SocketAddr>().unwrap()])
    );
    let off = args(&["--admin", "off"]);
    assert_eq!(resolve(&off, None, &env).unwrap().admin, Some(Admin::Off));
    let err = resolve(&args(&[]), None, &[("TEMPO_ADMIN", "nope")]).unwrap_err();
    assert!(
        err.to_string().contains("`TEMPO_ADMIN`: `nope` is neither"),
        "{err}"
    );
}

#[test]
fn limits_come_from_flags_the_environment_or_tempo_toml() {
    let settings = resolve(&args(&[]), None, &[]).unwrap();
    assert_eq!(settings.limits, InstanceLimits::served());
    assert_eq!(settings.admission, Admission::default());
    let toml = "[limits]\ndeadline-ms = 2000\nmemory-mib = 32\nmax-instances = 10\n\
                queue-timeout-ms = 5\nmax-resources = 50\n";
    let settings = resolve(&args(&[]), Some(toml), &[]).unwrap();
    assert_eq!(settings.limits.deadline, Some(Duration::from_secs(2)));
    assert_eq!(settings.limits.max_memory_bytes, Some(32 << 20));
    assert_eq!(settings.admission.max_instances, 10);
    assert_eq!(settings.admission.queue_timeout, Duration::from_millis(5));
    assert_eq!(settings.limits.max_resources, Some(50));
    let env = [
        ("TEMPO_DEADLINE_MS", "3000"),
        ("TEMPO_MEMORY_MIB", "16"),
        ("TEMPO_MAX_INSTANCES", "11"),
    ];
    let settings = resolve(&args(&[]), Some(toml), &env).unwrap();
    assert_eq!(settings.limits.deadline, Some(Duration::from_secs(3)));
    assert_eq!(settings.limits.max_memory_bytes, Some(16 << 20));
    assert_eq!(settings.admission.max_instances, 11);
    let flags = args(&["--deadline-ms", "4000", "--max-instances", "12"]);
    let settings = resolve(&flags, Some(toml), &env).unwrap();
    assert_eq!(settings.limits.deadline, Some(Duration::from_secs(4)));
    assert_eq!(settings.admission.max_instances, 12);
    let err = resolve(&args(&[]), None, &[("TEMPO_MAX_INSTANCES", "0")]).unwrap_err();
    assert!(format!("{err:#}").contains("must be at least 1"), "{err:#}");
    let err = resolve(&args(&[]), None, &[("TEMPO_DEADLINE_MS", "soon")]).unwrap_err();
    assert!(
        format!("{err:#}").contains("TEMPO_DEADLINE_MS=soon"),
        "{err:#}"
    );
}

#[test]
fn flags_beat_the_environment_which_beats_tempo_toml() {
    let toml = "[state]\ndir = \"from-toml\"\n";
    let settings = resolve(&args(&[]), Some(toml), &[]).unwrap();
    assert_eq!(settings.sources.state_dir, Path::new("/project/from-toml"));
    let env = [("TEMPO_STATE_DIR", "/elsewhere")];
    let settings = resolve(&args(&[]), Some(toml), &env).unwrap();
    assert_eq!(settings.sources.state_dir, Path::new("/elsewhere"));
    let flags = args(&["--state-dir", "/flagged"]);
    let settings = resolve(&flags, Some(toml), &env).unwrap();
    assert_eq!(settings.sources.state_dir, Path::new("/flagged"));
    let settings = resolve(&args(&[]), None, &[]).unwrap();
    assert_eq!(settings.sources.state_dir, Path::new("/project/.tempo"));
}

#[test]
fn every_service_on_nats_shares_one_connection() {
    let env = [("NATS_ADDR", "nats://127.0.0.1:4222")];
    let settings = resolve(&args(&[]), None, &env).unwrap();
    let shared = settings.sources.shared::<NatsServer>().unwrap();
    assert_eq!(shared.url(), "nats://127.0.0.1:4222");
    let services = settings.services().unwrap();
    let on_nats: Vec<_> = services
        .iter()
        .filter(|service| service.describe().contains("NATS"))
        .map(|service| service.name().to_owned())
        .collect();
    assert_eq!(
        on_nats,
        ["wasi:keyvalue", "wasi:blobstore", "wasi:messaging"]
    );
}

#[test]
fn every_service_reads_its_flags_and_sections() {
    let flags = args(&[
        "--listen",
        "127.0.0.1:3333",
        "--subscribe",
        "a.b",
        "--keyvalue",
        "embedded",
    ]);
    let toml = "[keyvalue]\nbuckets = [\"sessions\"]\n[config]\ngreeting = \"hi\"\n";
    let settings = resolve(&flags, Some(toml), &[]).unwrap();
    let banner: Vec<String> = settings
        .services()
        .unwrap()
        .iter()
        .map(|service| format!("{}: {}", service.name(), service.describe()))
        .collect();
    let banner = banner.join("\n");
    for expected in ["buckets sessions", "1 value(s): greeting"] {
        assert!(banner.contains(expected), "{banner}");
    }
}

#[test]
fn unknown_sections_and_keys_are_named() {
    let err = resolve(&args(&[]), Some("[keyvalue]\nbucket = [\"x\"]\n"), &[])
        .unwrap()
        .services()
        .err()
        .unwrap();
    let message = format!("{err:#}");
    for says in [
        "`/project/tempo.toml` is not valid",
        "unknown field `bucket`",
    ] {
        assert!(message.contains(says), "{message}");
    }
    let err = resolve(&args(&[]), Some("[keyvalu]\n"), &[]).unwrap_err();
    assert!(
        err.to_string().contains("unknown section `[keyvalu]`"),
        "{err}"
    );
}

#[test]
fn dotenv_files_are_read_without_touching_the_process_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "NATS_ADDR=nats://10.0.0.1:4222\n# a comment\n",
    )
    .unwrap();
    let settings = Settings::load(&args(&[]), dir.path()).unwrap();
    assert_eq!(
        settings.sources.shared::<NatsServer>().map(NatsServer::url),
        Some("nats://10.0.0.1:4222")
    );
    assert!(std::env::var("NATS_ADDR").is_err());
}
