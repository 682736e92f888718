//! A service as a host's list holds it: how it makes itself from its settings
//! ([`Configured`]), and the entry that adds its flags to a command and makes it from the
//! command's matches ([`ServiceEntry`]).

use std::sync::Arc;

use anyhow::anyhow;

use super::{Setting, Sources};
use crate::service::Service;

/// A service that makes itself from its settings.
pub trait Configured: Service + Sized {
    /// Its section of `tempo.toml`, if it has one.
    const SECTION: Option<&'static str>;

    /// Every setting it reads, for documentation and its tests.
    const SETTINGS: &'static [Setting];

    /// Its flags, which `run`, `dev` and `test` take; each reads its variable too.
    type Args: clap::Args + clap::FromArgMatches;

    /// The flags `cargo tempo test` gives it, so that a test binary never reaches a backend the
    /// environment or `tempo.toml` names: its embedded backend, in the test binary's own state
    /// folder. Empty for a service that keeps nothing and reaches nothing.
    const TEST_FLAGS: &'static [&'static str] = &[];

    /// Where a guest's author meets it outside the host. It has no default, so that a new
    /// service says where its guest side is; cargo-tempo's tests check each place.
    const GUEST: GuestSide;

    /// The service as `args` and `sources` set it up. Nothing is opened yet.
    fn configure(args: Self::Args, sources: &Sources) -> anyhow::Result<Self>;
}

/// Where a guest's author meets a service: the pages, the SDK module and the template that
/// cargo-tempo's tests hold to the list of services, so a service missing from one fails them.
#[derive(Clone, Copy, Debug)]
pub struct GuestSide {
    /// The heading of its section in `docs/services.md`, e.g. `wasi:keyvalue`.
    pub manual: &'static str,
    /// The tempo-sdk module that wraps its interfaces (`sdk/src/<module>`), e.g. `keyvalue`.
    pub sdk_module: &'static str,
    /// The `cargo tempo new --template` whose code uses that module, if one shows it.
    pub template: Option<&'static str>,
}

impl GuestSide {
    /// The guest side with the manual's heading, the SDK module and the template, in that order.
    pub const fn new(
        manual: &'static str,
        sdk_module: &'static str,
        template: Option<&'static str>,
    ) -> Self {
        Self {
            manual,
            sdk_module,
            template,
        }
    }
}

/// A service with no flags.
#[derive(Clone, Copy, Debug, Default, clap::Args)]
#[group(skip)]
pub struct NoArgs {}

/// One service of the list a host offers: how to add its flags to a command, and how to make
/// it from the command's matches.
#[derive(Clone, Copy)]
pub struct ServiceEntry {
    section: Option<&'static str>,
    settings: &'static [Setting],
    test_flags: &'static [&'static str],
    guest: GuestSide,
    augment: fn(clap::Command) -> clap::Command,
    configure: fn(&clap::ArgMatches, &Sources) -> anyhow::Result<Arc<dyn Service>>,
}

impl ServiceEntry {
    /// The entry of the service `S`.
    pub const fn of<S: Configured>() -> Self {
        Self {
            section: S::SECTION,
            settings: S::SETTINGS,
            test_flags: S::TEST_FLAGS,
            guest: S::GUEST,
            augment: <S::Args as clap::Args>::augment_args,
            configure: configure::<S>,
        }
    }

    /// Its section of `tempo.toml`, if it has one.
    pub fn section(&self) -> Option<&'static str> {
        self.section
    }

    /// Every setting it reads.
    pub fn settings(&self) -> &'static [Setting] {
        self.settings
    }

    /// The flags `cargo tempo test` gives it ([`Configured::TEST_FLAGS`]).
    pub fn test_flags(&self) -> &'static [&'static str] {
        self.test_flags
    }

    /// Where a guest's author meets it ([`Configured::GUEST`]).
    pub fn guest(&self) -> GuestSide {
        self.guest
    }

    /// `command` with the service's flags.
    pub fn augment(&self, command: clap::Command) -> clap::Command {
        (self.augment)(command)
    }

    /// The service, from the matches of a command its flags were [added](Self::augment) to.
    pub fn configure(
        &self,
        matches: &clap::ArgMatches,
        sources: &Sources,
    ) -> anyhow::Result<Arc<dyn Service>> {
        (self.configure)(matches, sources)
    }
}

fn configure<S: Configured>(
    matches: &clap::ArgMatches,
    sources: &Sources,
) -> anyhow::Result<Arc<dyn Service>> {
    let args = <S::Args as clap::FromArgMatches>::from_arg_matches(matches)
        .map_err(|err| anyhow!("{err}"))?;
    Ok(Arc::new(S::configure(args, sources)?))
}
