//! `wasi:logging`: a guest's log calls as tracing events, beside its stdout and stderr lines.

use tempo_runtime_core::settings::{Configured, GuestSide, NoArgs, Setting, Sources};
use tempo_runtime_core::wasmtime::component::{HasData, Linker};
use tempo_runtime_core::{GUEST_LOG_TARGET, Service, State, escape_guest_text};
use tracing::Level;

tempo_runtime_core::host_bindings!(mod generated = "wasi:logging/imports");

use generated::wasi::logging::logging;

/// The `wasi:logging` version tempo implements.
pub const LOGGING_VERSION: &str = "0.1.0-draft";

/// The `wasi:logging/logging` service.
#[derive(Default)]
pub struct LoggingService;

/// The host function's view of an instance's state.
struct Logger<'a> {
    state: &'a State,
}

struct LoggerData;

impl HasData for LoggerData {
    type Data<'a> = Logger<'a>;
}

impl logging::Host for Logger<'_> {
    fn log(&mut self, level: logging::Level, context: String, message: String) {
        let level = match level {
            logging::Level::Trace => Level::TRACE,
            logging::Level::Debug => Level::DEBUG,
            logging::Level::Info => Level::INFO,
            logging::Level::Warn => Level::WARN,
            logging::Level::Error | logging::Level::Critical => Level::ERROR,
        };
        let request_id = self.state.request_id();
        guest_line(
            self.state.component(),
            request_id.as_str(),
            level,
            &context,
            &message,
        );
    }
}

/// One line a guest logged, as a tracing event (target `guest`) with its component and request
/// id. One call is one line: a newline or an escape sequence in it is shown, not obeyed.
pub(crate) fn guest_line(
    component: &str,
    request_id: &str,
    level: Level,
    context: &str,
    message: &str,
) {
    let (context, message) = (escape_guest_text(context), escape_guest_text(message));
    // A level must be a constant where an event is written: one arm per level.
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(
                target: GUEST_LOG_TARGET,
                $level,
                component,
                request_id,
                context = &*context,
                "{message}"
            )
        };
    }
    match level {
        Level::TRACE => emit!(Level::TRACE),
        Level::DEBUG => emit!(Level::DEBUG),
        Level::INFO => emit!(Level::INFO),
        Level::WARN => emit!(Level::WARN),
        _ => emit!(Level::ERROR),
    }
}

/// Guest logs need no settings: they go where tempo's own log goes.
impl Configured for LoggingService {
    const SECTION: Option<&'static str> = None;
    const SETTINGS: &'static [Setting] = &[];
    type Args = NoArgs;
    const GUEST: GuestSide = GuestSide::new("wasi:logging", "telemetry", None);

    fn configure(_: NoArgs, _: &Sources) -> anyhow::Result<Self> {
        Ok(Self)
    }
}

impl Service for LoggingService {
    tempo_runtime_core::service_names!("wasi:logging", ["logging"] @ LOGGING_VERSION);

    fn link(&self, linker: &mut Linker<State>) -> anyhow::Result<()> {
        logging::add_to_linker::<State, LoggerData>(linker, |state| Logger { state })?;
        Ok(())
    }

    fn describe(&self) -> String {
        "log lines with the component's name and request id".into()
    }
}
