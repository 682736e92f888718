//! The settings of wasi:messaging: its flags, its `[messaging]` section of `tempo.toml`, and the
//! [`MessagingConfig`] they make.

use std::time::Duration;

use serde::Deserialize;
use tempo_nats::Backend;
use tempo_runtime_core::settings::{Configured, GuestSide, Setting, Sources};

use crate::{
    DurableConfig, MessagingBackend, MessagingConfig, MessagingService, check_subject_pattern,
    subscription_capacity,
};

const SECTION: &str = "messaging";

/// Where messages travel.
pub const BACKEND: Setting = Setting::new(SECTION, "backend")
    .var("TEMPO_MESSAGING")
    .flag("messaging");
/// The subjects whose messages invoke the handler.
pub const SUBSCRIPTIONS: Setting = Setting::new(SECTION, "subscriptions")
    .var("TEMPO_SUBSCRIBE")
    .flag("subscribe");
/// The queue group the handlers join.
pub const QUEUE_GROUP: Setting = Setting::new(SECTION, "queue-group").var("TEMPO_QUEUE_GROUP");
/// The subjects guests may send to.
pub const ALLOWED_SUBJECTS: Setting =
    Setting::new(SECTION, "allowed-subjects").var("TEMPO_MESSAGING_ALLOWED_SUBJECTS");
/// How many messages are handled at once.
pub const CONCURRENCY: Setting = Setting::new(SECTION, "concurrency");
/// The largest message a guest may send.
pub const MAX_MESSAGE_BYTES: Setting = Setting::new(SECTION, "max-message-bytes");
/// The bytes waiting in a subscription of the embedded broker.
pub const MAX_PENDING_BYTES: Setting = Setting::new(SECTION, "max-pending-bytes");
/// How long a request waits for replies by default.
pub const REQUEST_TIMEOUT_MS: Setting = Setting::new(SECTION, "request-timeout-ms");
/// Whether subscriptions are durable (JetStream), or core NATS.
pub const DURABLE: Setting = Setting::new(SECTION, "durable").var("TEMPO_MESSAGING_DURABLE");
/// Attempts of a durable message before the dead-letter subject.
pub const MAX_DELIVER: Setting = Setting::new(SECTION, "max-deliver");
/// Where a durable message goes after its last failed attempt.
pub const DEAD_LETTER: Setting = Setting::new(SECTION, "dead-letter");
/// The delay before a durable message's first retry.
pub const RETRY_DELAY_MS: Setting = Setting::new(SECTION, "retry-delay-ms");
/// How many messages one instance handles in turn.
pub const INSTANCE_REUSE: Setting =
    Setting::new(SECTION, "instance-reuse").var("TEMPO_MESSAGING_INSTANCE_REUSE");

/// The flags of wasi:messaging.
#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "wasi:messaging")]
pub struct MessagingArgs {
    /// Backend for wasi:messaging [default: nats with a NATS address, else embedded]
    #[arg(long = BACKEND.flag, env = BACKEND.var, value_name = "BACKEND", ignore_case = true)]
    pub messaging: Option<Backend>,
    /// A subject whose messages invoke the component's wasi:messaging handler; repeat for more,
    /// `*` and `>` are NATS wildcards
    #[arg(
        long = SUBSCRIPTIONS.flag,
        env = SUBSCRIPTIONS.var,
        value_name = "SUBJECT",
        value_delimiter = ','
    )]
    pub subscriptions: Vec<String>,
}

/// `[messaging]` in `tempo.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MessagingToml {
    backend: Option<Backend>,
    subscriptions: Option<Vec<String>>,
    queue_group: Option<String>,
    concurrency: Option<usize>,
    max_message_bytes: Option<usize>,
    max_pending_bytes: Option<usize>,
    request_timeout_ms: Option<u64>,
    allowed_subjects: Option<Vec<String>>,
    durable: Option<bool>,
    max_deliver: Option<u32>,
    dead_letter: Option<String>,
    retry_delay_ms: Option<u64>,
    instance_reuse: Option<usize>,
}

impl MessagingConfig {
    /// The configuration `args` and `sources` make.
    pub fn from_settings(args: &MessagingArgs, sources: &Sources) -> anyhow::Result<Self> {
        let toml: MessagingToml = sources.section(SECTION)?;
        let defaults = Self::default();
        let concurrency = toml.concurrency.unwrap_or(defaults.concurrency);
        let backend = match tempo_nats::server_for(
            "wasi:messaging",
            &BACKEND,
            args.messaging,
            toml.backend,
            sources,
        )? {
            Some(server) => {
                server.require_subscription_capacity(subscription_capacity(concurrency));
                MessagingBackend::Nats(server)
            }
            None => MessagingBackend::Embedded,
        };
        let durable = durable_config(&toml, sources)?;
        let instance_reuse = sources
            .value(&INSTANCE_REUSE, None, toml.instance_reuse, "a whole number")?
            .unwrap_or(defaults.instance_reuse);
        anyhow::ensure!(instance_reuse >= 1, "{INSTANCE_REUSE} must be 1 or more");
        Ok(Self {
            subscriptions: sources
                .list(&SUBSCRIPTIONS, &args.subscriptions, toml.subscriptions)
                .unwrap_or_default(),
            queue_group: sources.value(&QUEUE_GROUP, None, toml.queue_group, "a name")?,
            concurrency,
            max_message_bytes: toml.max_message_bytes.unwrap_or(defaults.max_message_bytes),
            max_pending_bytes: toml.max_pending_bytes.unwrap_or(defaults.max_pending_bytes),
            request_timeout: toml
                .request_timeout_ms
                .map_or(defaults.request_timeout, Duration::from_millis),
            allowed_subjects: sources.checked_list(
                &ALLOWED_SUBJECTS,
                &[],
                toml.allowed_subjects,
                check_subject_pattern,
            )?,
            durable,
            instance_reuse,
            backend,
            ..defaults
        })
    }
}

/// `[messaging] durable` and what goes with it, checked; `None` for core subscriptions.
fn durable_config(
    toml: &MessagingToml,
    sources: &Sources,
) -> anyhow::Result<Option<DurableConfig>> {
    let durable = sources
        .value(&DURABLE, None, toml.durable, "true or false")?
        .unwrap_or(false);
    if !durable {
        for (setting, set) in [
            (MAX_DELIVER, toml.max_deliver.is_some()),
            (DEAD_LETTER, toml.dead_letter.is_some()),
            (RETRY_DELAY_MS, toml.retry_delay_ms.is_some()),
        ] {
            anyhow::ensure!(!set, "{setting} is set, but {DURABLE} is not true");
        }
        return Ok(None);
    }
    let defaults = DurableConfig::default();
    let max_deliver = toml.max_deliver.unwrap_or(defaults.max_deliver);
    anyhow::ensure!(max_deliver >= 1, "{MAX_DELIVER} must be 1 or more");
    if let Some(subject) = &toml.dead_letter {
        crate::subject::check_topic(subject)
            .map_err(|why| anyhow::anyhow!("{DEAD_LETTER} `{subject}`: {why}"))?;
    }
    Ok(Some(DurableConfig {
        max_deliver,
        dead_letter: toml.dead_letter.clone(),
        retry_delay: toml
            .retry_delay_ms
            .map_or(defaults.retry_delay, Duration::from_millis),
    }))
}

impl Configured for MessagingService {
    const SECTION: Option<&'static str> = Some(SECTION);
    const SETTINGS: &'static [Setting] = &[
        BACKEND,
        SUBSCRIPTIONS,
        QUEUE_GROUP,
        ALLOWED_SUBJECTS,
        CONCURRENCY,
        MAX_MESSAGE_BYTES,
        MAX_PENDING_BYTES,
        REQUEST_TIMEOUT_MS,
        DURABLE,
        MAX_DELIVER,
        DEAD_LETTER,
        RETRY_DELAY_MS,
        INSTANCE_REUSE,
    ];
    type Args = MessagingArgs;
    const GUEST: GuestSide = GuestSide::new("wasi:messaging", "messaging", Some("messaging"));
    const TEST_FLAGS: &'static [&'static str] = &["--messaging", "embedded"];

    fn configure(args: MessagingArgs, sources: &Sources) -> anyhow::Result<Self> {
        Ok(MessagingService::new(MessagingConfig::from_settings(
            &args, sources,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use tempo_nats::NatsServer;

    fn config(
        args: &MessagingArgs,
        toml: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<MessagingConfig> {
        let mut sources = Sources::with_variables(Path::new("/project"), toml, env)?;
        if let Some(url) = sources.var("NATS_ADDR") {
            sources.share(NatsServer::new(url));
        }
        MessagingConfig::from_settings(args, &sources)
    }

    #[test]
    fn subscriptions_come_from_flags_the_environment_or_tempo_toml() {
        let toml = "[messaging]\nsubscriptions = [\"orders.>\"]\nqueue-group = \"shop\"\nconcurrency = 8\n";
        let settings = config(&MessagingArgs::default(), Some(toml), &[]).unwrap();
        assert_eq!(settings.subscriptions, ["orders.>"]);
        assert_eq!(settings.queue_group.as_deref(), Some("shop"));
        assert_eq!(settings.concurrency, 8);
        assert_eq!(settings.backend, MessagingBackend::Embedded);

        let env = [
            ("TEMPO_SUBSCRIBE", "a.*, b"),
            ("NATS_ADDR", "nats://127.0.0.1:4222"),
        ];
        let settings = config(&MessagingArgs::default(), Some(toml), &env).unwrap();
        assert_eq!(settings.subscriptions, ["a.*", "b"]);
        let MessagingBackend::Nats(server) = &settings.backend else {
            panic!("{:?}", settings.backend);
        };
        assert_eq!(server, &NatsServer::new("nats://127.0.0.1:4222"));
        assert_eq!(server.subscription_capacity(), subscription_capacity(8));

        let args = MessagingArgs {
            subscriptions: vec!["c".into()],
            messaging: Some(Backend::Embedded),
        };
        let settings = config(&args, Some(toml), &env).unwrap();
        assert_eq!(settings.subscriptions, ["c"]);
        assert_eq!(settings.backend, MessagingBackend::Embedded);
    }

    #[test]
    fn grants_and_limits_come_from_the_environment_or_tempo_toml_and_are_checked() {
        let toml = "[messaging]\nallowed-subjects = [\"events.>\"]\nmax-pending-bytes = 4096\n";
        let settings = config(&MessagingArgs::default(), Some(toml), &[]).unwrap();
        assert_eq!(
            settings.allowed_subjects.as_deref(),
            Some(&["events.>".to_owned()][..])
        );
        assert_eq!(settings.max_pending_bytes, 4096);
        let err = config(
            &MessagingArgs::default(),
            None,
            &[("TEMPO_MESSAGING_ALLOWED_SUBJECTS", "a.>.b")],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("allowed-subjects"), "{err:#}");
    }

    #[test]
    fn durable_delivery_takes_its_settings_only_when_on() {
        let nats = [("NATS_ADDR", "nats://127.0.0.1:4222")];
        let args = MessagingArgs::default();
        let toml = "[messaging]\ndurable = true\nmax-deliver = 3\ndead-letter = \"dead.jobs\"\n";
        let durable = config(&args, Some(toml), &nats).unwrap().durable.unwrap();
        assert_eq!(
            (durable.max_deliver, durable.dead_letter.as_deref()),
            (3, Some("dead.jobs"))
        );
        assert_eq!(durable.retry_delay, Duration::from_secs(1));
        let on = [nats[0], ("TEMPO_MESSAGING_DURABLE", "true")];
        assert_eq!(
            config(&args, None, &on).unwrap().durable,
            Some(DurableConfig::default())
        );

        let refused = |toml: &str, env: &[(&str, &str)]| {
            format!("{:#}", config(&args, Some(toml), env).unwrap_err())
        };
        let embedded = config(&args, Some("[messaging]\ndurable = true\n"), &[]).unwrap();
        assert_eq!(embedded.backend, MessagingBackend::Embedded);
        assert!(embedded.durable.is_some());
        let err = refused("[messaging]\nmax-deliver = 3\n", &nats);
        assert!(
            err.contains("`[messaging] max-deliver` is set, but `[messaging] durable` is not true"),
            "{err}"
        );
        let err = refused(
            "[messaging]\ndurable = true\ndead-letter = \"dead.>\"\n",
            &nats,
        );
        assert!(err.contains("has a wildcard"), "{err}");
        let err = refused("[messaging]\ndurable = true\nmax-deliver = 0\n", &nats);
        assert!(err.contains("1 or more"), "{err}");
    }
}
