//! The WIT in `wit/` and the host's services describe the same interfaces: every import of a
//! world tempo hosts is provided by a service, and every interface a service claims is in `wit/`.
//! (Here because `cargo-tempo` is the crate that knows every service.)

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::BTreeSet;
use std::path::Path;

use tempo_blobstore::{BlobstoreConfig, BlobstoreService};
use tempo_http::{HttpConfig, HttpService};
use tempo_keyvalue::{KeyValueConfig, KeyValueService};
use tempo_messaging::{MessagingConfig, MessagingService};
use tempo_runtime_core::{InterfaceName, Service, WasiService};
use wit_parser::{Resolve, WorldItem};

fn wit_worlds() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut resolve = Resolve::new();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let (package, _) = resolve.push_dir(&wit).unwrap();
    let (mut imports, mut exports) = (BTreeSet::new(), BTreeSet::new());
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
    (imports, exports)
}

#[test]
fn services_provide_exactly_the_interfaces_in_wit() {
    let (imports, exports) = wit_worlds();
    let wasi = WasiService::default();
    let http = HttpService::new(HttpConfig::default()).unwrap();
    let keyvalue = KeyValueService::new(KeyValueConfig::default()).unwrap();
    let blobstore = BlobstoreService::new(BlobstoreConfig::default());
    let messaging = MessagingService::new(MessagingConfig::default());
    let config = tempo_config::ConfigService::new(Default::default());
    let logging = tempo_otel::LoggingService::default();
    let provided: Vec<&InterfaceName> = wasi
        .provides()
        .iter()
        .chain(http.provides())
        .chain(keyvalue.provides())
        .chain(blobstore.provides())
        .chain(messaging.provides())
        .chain(config.provides())
        .chain(logging.provides())
        .collect();

    let unprovided: Vec<_> = imports
        .iter()
        .filter(|import| !provided.iter().any(|p| p.matches_str(import)))
        .collect();
    assert!(
        unprovided.is_empty(),
        "wit/ imports nobody provides: {unprovided:?}"
    );

    let unclaimed: Vec<_> = provided
        .iter()
        .filter(|p| !imports.iter().any(|import| p.matches_str(import)))
        .collect();
    assert!(
        unclaimed.is_empty(),
        "services provide what wit/ lacks: {unclaimed:?}"
    );

    let messaging = std::sync::Arc::new(messaging);
    for trigger in [
        std::sync::Arc::new(http).trigger(),
        messaging.clone().trigger(),
    ] {
        let export = trigger.unwrap().export().clone();
        assert!(
            exports.iter().any(|e| export.matches_str(e)),
            "no world in wit/ exports {export:?}: {exports:?}"
        );
    }
}
