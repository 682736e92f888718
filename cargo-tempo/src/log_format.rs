//! How log events look in the terminal: the host's as tracing-subscriber writes them, a guest's
//! lines as `[component request-id] message`, so they read like the guest's own output.

use std::fmt::{self, Write as _};

use anstyle::{AnsiColor, Style};
use tempo_runtime_core::GUEST_LOG_TARGET;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

const PREFIX: Style = Style::new().dimmed();

/// Guest lines in their own shape; everything else as `inner` formats it.
pub(crate) struct TerminalFormat {
    pub(crate) inner: Format<tracing_subscriber::fmt::format::Full, ()>,
}

impl<S, N> FormatEvent<S, N> for TerminalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() != GUEST_LOG_TARGET {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = GuestLine::default();
        event.record(&mut line);
        let prefix = format!("[{} {}]", line.component, line.request_id);
        if writer.has_ansi_escapes() {
            write!(writer, "{PREFIX}{prefix}{PREFIX:#} ")?;
        } else {
            write!(writer, "{prefix} ")?;
        }
        let level = *event.metadata().level();
        if level != Level::INFO {
            let style = match level {
                Level::ERROR => AnsiColor::Red.on_default().bold(),
                Level::WARN => AnsiColor::Yellow.on_default().bold(),
                _ => Style::new().dimmed(),
            };
            let name = level.as_str().to_ascii_lowercase();
            if writer.has_ansi_escapes() {
                write!(writer, "{style}{name}{style:#} ")?;
            } else {
                write!(writer, "{name} ")?;
            }
        }
        if !line.context.is_empty() {
            write!(writer, "{}: ", line.context)?;
        }
        writeln!(writer, "{}", line.message)
    }
}

/// The fields of a guest line.
#[derive(Default)]
struct GuestLine {
    component: String,
    request_id: String,
    context: String,
    message: String,
}

impl Visit for GuestLine {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "component" => self.component = value.to_owned(),
            "request_id" => self.request_id = value.to_owned(),
            "context" => self.context = value.to_owned(),
            "message" => self.message = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message.clear();
            let _ = write!(self.message, "{value:?}");
        }
    }
}
