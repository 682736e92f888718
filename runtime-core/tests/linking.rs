//! Linking a component to the services that provide its imports.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::Path;
use std::sync::{Arc, Mutex};

use tempo_runtime_core::wasmtime::component::Linker;
use tempo_runtime_core::{
    EngineSettings, InstanceSettings, InterfaceName, LiveComponent, PrepareError, Runtime, Service,
    State, Version,
    artifact::{Artifact, Loaded},
    run_command,
};

fn runtime() -> Runtime {
    let engine = EngineSettings {
        cache_dir: None,
        ..EngineSettings::default()
    }
    .build()
    .unwrap();
    Runtime::new(engine)
}

/// `component`'s file, loaded on `runtime`'s engine.
fn load(runtime: &Runtime, component: &Path) -> Loaded {
    Artifact::read(component)
        .and_then(|file| file.load(runtime.engine(), false))
        .unwrap()
}

#[test]
fn an_import_nobody_provides_is_named() {
    let runtime = runtime();
    let loaded = load(&runtime, tempo_test_fixtures::missing_import());
    let err = runtime
        .prepare(&loaded.component, InstanceSettings::named("missing-import"))
        .err()
        .expect("a component with an unprovided import was prepared");
    match &err {
        PrepareError::MissingImports { imports, .. } => {
            assert_eq!(imports, &["tempo-fixtures:missing/greeter@0.1.0"]);
        }
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(
        err.to_string(),
        "`missing-import` imports an interface that no tempo service provides: tempo-fixtures:missing/greeter@0.1.0"
    );
}

/// The per-instance context a test service keeps in each instance's state.
#[derive(Clone)]
struct Greeting(String);
tempo_runtime_core::part!(Greeting);

/// Provides the greeter the `missing-import` fixture imports, answering from its per-instance
/// context and recording each call.
struct GreeterService {
    provides: Vec<InterfaceName>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Service for GreeterService {
    tempo_runtime_core::service_names!("greeter", self.provides);

    fn link(&self, linker: &mut Linker<State>) -> anyhow::Result<()> {
        let calls = self.calls.clone();
        let mut greeter = linker.instance("tempo-fixtures:missing/greeter@0.1.0")?;
        greeter.func_wrap("greet", move |store, (): ()| {
            let greeting = store.data().part::<Greeting>().map(|g| g.0.clone());
            let greeting = greeting.unwrap_or_else(|| "no context".into());
            calls.lock().unwrap().push(greeting.clone());
            Ok((greeting,))
        })?;
        Ok(())
    }

    fn describe(&self) -> String {
        "greets".into()
    }

    fn init_instance(&self, state: &mut State) {
        state
            .parts_mut()
            .insert(Greeting("hello from the host".into()));
    }
}

/// A runtime with the greeter service registered, recording its calls in `calls`.
fn with_greeter(calls: Arc<Mutex<Vec<String>>>) -> Runtime {
    let mut runtime = runtime();
    runtime.add_service(Arc::new(GreeterService {
        provides: vec![InterfaceName::known("tempo-fixtures:missing/greeter@0.1.0")],
        calls,
    }));
    runtime
}

/// Prepares `component` and returns the version with the names of the services it links.
fn prepare(runtime: &Runtime, component: &Path) -> (Version, Vec<String>) {
    let loaded = load(runtime, component);
    let version = runtime
        .prepare(&loaded.component, InstanceSettings::named("guest"))
        .unwrap();
    let linked = version
        .services()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    (version, linked)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_links_what_it_provides_and_sets_up_each_instance() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let runtime = with_greeter(calls.clone());
    let (version, linked) = prepare(&runtime, tempo_test_fixtures::missing_import());
    assert_eq!(linked, ["wasi", "greeter"]);
    assert_eq!(run_command(&version).await.unwrap(), 0);
    assert_eq!(*calls.lock().unwrap(), ["hello from the host"]);
}

#[test]
fn a_service_whose_interfaces_are_not_imported_is_not_linked() {
    let runtime = with_greeter(Arc::default());
    let (_, linked) = prepare(&runtime, tempo_test_fixtures::cli());
    assert_eq!(linked, ["wasi"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_arguments_and_exit_codes_pass_through() {
    let runtime = runtime();
    let loaded = load(&runtime, tempo_test_fixtures::cli());
    for (args, code) in [(&["ok"][..], 0), (&["fail"], 1), (&["exit", "42"], 42)] {
        let settings = InstanceSettings {
            args: ["cli"].iter().chain(args).map(|s| s.to_string()).collect(),
            ..InstanceSettings::named("cli")
        };
        let version = runtime.prepare(&loaded.component, settings).unwrap();
        assert_eq!(run_command(&version).await.unwrap(), code, "{args:?}");
    }
    let version = runtime
        .prepare(
            &loaded.component,
            InstanceSettings {
                args: vec!["cli".into(), "trap".into()],
                ..InstanceSettings::named("cli")
            },
        )
        .unwrap();
    let err = run_command(&version).await.unwrap_err();
    assert!(
        err.downcast_ref::<tempo_runtime_core::wasmtime::Trap>()
            .is_some(),
        "{err:?}"
    );
}

#[test]
fn a_swap_leaves_holders_of_the_old_version_alone() {
    let runtime = runtime();
    let loaded = load(&runtime, tempo_test_fixtures::cli());
    let prepare = || {
        runtime
            .prepare(&loaded.component, InstanceSettings::named("cli"))
            .unwrap()
    };
    let live = LiveComponent::new(prepare());
    let first = live.current();
    let replaced = live.swap(prepare());
    assert_eq!(replaced.number(), first.number());
    assert!(live.current().number() > first.number());
    // The old version stays usable by whoever still holds it.
    let _store = first.new_store(tempo_runtime_core::RequestId::generate());
}
