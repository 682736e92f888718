//! The services tempo offers: one line each. The flags of `run`, `dev` and `test`, the sections
//! `tempo.toml` may have, and the runtime's services all come from this list.

use tempo_blobstore::BlobstoreService;
use tempo_config::ConfigService;
use tempo_http::HttpService;
use tempo_keyvalue::KeyValueService;
use tempo_messaging::MessagingService;
use tempo_otel::{LoggingService, OtelService};
use tempo_runtime_core::settings::ServiceEntry;
use tempo_sql::SqlService;

/// Every service beside base WASI (which the runtime always has), in the order the startup
/// banner names them.
pub(crate) const SERVICES: &[ServiceEntry] = &[
    ServiceEntry::of::<HttpService>(),
    ServiceEntry::of::<KeyValueService>(),
    ServiceEntry::of::<BlobstoreService>(),
    ServiceEntry::of::<SqlService>(),
    ServiceEntry::of::<MessagingService>(),
    ServiceEntry::of::<ConfigService>(),
    ServiceEntry::of::<LoggingService>(),
    ServiceEntry::of::<OtelService>(),
];

/// The WIT in `wit/` and `wit-p3/` and the services describe the same interfaces: every import of a world
/// tempo hosts is provided by a service, every interface a service claims is in `wit/`, and
/// every trigger's export is exported by a world.
#[cfg(test)]
mod wit_coverage {
    use std::collections::BTreeSet;
    use std::path::Path;

    use tempo_runtime_core::{InterfaceName, Service as _, WasiService};
    use wit_parser::{Resolve, WorldItem};

    use crate::settings::{HostArgs, Settings};

    /// What the worlds of `wit/` (WASI 0.2) and `wit-p3/` (WASI 0.3) import and export.
    fn wit_worlds() -> (BTreeSet<String>, BTreeSet<String>) {
        let (mut imports, mut exports) = (BTreeSet::new(), BTreeSet::new());
        for folder in ["../wit", "../wit-p3"] {
            let mut resolve = Resolve::new();
            let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
            let (package, _) = resolve.push_dir(&wit).unwrap();
            for world in resolve.packages[package].worlds.values() {
                let world = &resolve.worlds[*world];
                for (items, names) in [
                    (&world.imports, &mut imports),
                    (&world.exports, &mut exports),
                ] {
                    for item in items.values() {
                        if let WorldItem::Interface { id, .. } = item {
                            names.insert(resolve.id_of(*id).unwrap());
                        }
                    }
                }
            }
        }
        (imports, exports)
    }

    #[test]
    fn services_provide_exactly_the_interfaces_in_wit() {
        let (imports, exports) = wit_worlds();
        let project = tempfile::tempdir().unwrap();
        let settings = Settings::load(&HostArgs::parse::<_, &str>([]).unwrap(), project.path());
        let services = settings.unwrap().services().unwrap();
        let wasi = WasiService::default();
        let provided: Vec<InterfaceName> = wasi
            .provides()
            .into_iter()
            .chain(services.iter().flat_map(|service| service.provides()))
            .collect();

        let is_provided = |import: &&String| provided.iter().any(|p| p.matches_str(import));
        let unprovided: Vec<_> = imports.iter().filter(|i| !is_provided(i)).collect();
        assert!(
            unprovided.is_empty(),
            "wit/ imports nobody provides: {unprovided:?}"
        );

        let is_imported = |p: &&InterfaceName| imports.iter().any(|i| p.matches_str(i));
        let unclaimed: Vec<_> = provided.iter().filter(|p| !is_imported(p)).collect();
        assert!(
            unclaimed.is_empty(),
            "services provide what wit/ lacks: {unclaimed:?}"
        );

        let triggers: Vec<_> = services
            .into_iter()
            .filter_map(|service| service.trigger())
            .collect();
        assert_eq!(triggers.len(), 2, "HTTP and messaging");
        for trigger in triggers {
            for export in std::iter::once(trigger.export()).chain(trigger.also_exports()) {
                assert!(
                    exports.iter().any(|e| export.matches_str(e)),
                    "no world in wit/ exports {export:?}: {exports:?}"
                );
            }
        }
    }
}

/// The manual's settings tables name every setting: its `tempo.toml` key, its variable and its
/// flag; and every service has the guest side its entry names ([`GuestSide`]): a section of the
/// services page, a tempo-sdk module, and the template that shows it.
///
/// [`GuestSide`]: tempo_runtime_core::settings::GuestSide
#[cfg(test)]
mod documented {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use tempo_runtime_core::settings::GuestSide;

    use super::SERVICES;
    use crate::settings::GLOBAL_SETTINGS;

    #[test]
    fn the_configuration_page_names_every_setting() {
        let page = read("docs/configuration.md").expect("docs/configuration.md");
        let settings = GLOBAL_SETTINGS
            .iter()
            .chain(SERVICES.iter().flat_map(|service| service.settings()));
        let mut missing = Vec::new();
        for setting in settings {
            let names = [
                Some(format!("`[{}] {}`", setting.section, setting.key)),
                setting.var.map(|var| format!("`{var}`")),
                setting.flag.map(|flag| format!("`--{flag}")),
            ];
            missing.extend(
                names
                    .into_iter()
                    .flatten()
                    .filter(|name| !page.contains(name)),
            );
        }
        assert!(
            missing.is_empty(),
            "the configuration page lacks {missing:?}"
        );
    }

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn read(path: &str) -> std::io::Result<String> {
        std::fs::read_to_string(workspace().join(path))
    }

    /// The pages every service's guest side is checked against, read once.
    struct GuestPages {
        /// docs/services.md.
        services: String,
        /// The SDK's `lib.rs`: its modules and its introduction to them.
        sdk: String,
    }

    impl GuestPages {
        fn read() -> Self {
            Self {
                services: read("docs/services.md").expect("docs/services.md"),
                sdk: read("sdk/src/lib.rs").expect("sdk/src/lib.rs"),
            }
        }

        /// What `guest` lacks, one line per place.
        fn missing(&self, guest: GuestSide) -> Vec<String> {
            let mut missing = Vec::new();
            let heading = format!("## {}", guest.manual);
            if !self.services.lines().any(|line| line.trim_end() == heading) {
                missing.push(format!("docs/services.md has no `{heading}`"));
            }
            let module = guest.sdk_module;
            let sources = [
                format!("sdk/src/{module}.rs"),
                format!("sdk/src/{module}/mod.rs"),
            ];
            if !sources
                .iter()
                .any(|source| workspace().join(source).is_file())
            {
                missing.push(format!("tempo-sdk has no sdk/src/{module}.rs"));
            }
            if !self.sdk.contains(&format!("pub mod {module};"))
                || !self.sdk.contains(&format!("[`{module}`]"))
            {
                missing.push(format!(
                    "sdk/src/lib.rs does not export and introduce `{module}`"
                ));
            }
            if let Some(template) = guest.template {
                // A template that is not there uses nothing.
                let code = read(&format!("templates/{template}/src/lib.rs")).unwrap_or_default();
                if !code.contains(&format!("tempo_sdk::{module}")) {
                    missing.push(format!(
                        "templates/{template} does not use tempo_sdk::{module}"
                    ));
                }
            }
            missing
        }
    }

    #[test]
    fn every_service_has_its_section_sdk_module_and_template() {
        let pages = GuestPages::read();
        let missing: Vec<String> = SERVICES
            .iter()
            .flat_map(|service| pages.missing(service.guest()))
            .collect();
        assert!(missing.is_empty(), "{missing:#?}");

        // And no SDK module outlives its service.
        let modules: BTreeSet<&str> = SERVICES
            .iter()
            .map(|service| service.guest().sdk_module)
            .collect();
        let orphans: Vec<&str> = pages
            .sdk
            .lines()
            .filter_map(|line| line.strip_prefix("pub mod ")?.strip_suffix(';'))
            .filter(|module| !modules.contains(module))
            .collect();
        assert!(
            orphans.is_empty(),
            "SDK modules no service names: {orphans:?}"
        );
    }

    #[test]
    fn a_service_missing_from_every_place_is_told_each_one() {
        let nowhere = GuestSide {
            manual: "wasi:nowhere",
            sdk_module: "nowhere",
            template: Some("http"),
        };
        assert_eq!(
            GuestPages::read().missing(nowhere),
            [
                "docs/services.md has no `## wasi:nowhere`",
                "tempo-sdk has no sdk/src/nowhere.rs",
                "sdk/src/lib.rs does not export and introduce `nowhere`",
                "templates/http does not use tempo_sdk::nowhere",
            ]
        );
    }
}
