//! Terminal output in cargo's style: right-aligned green status verbs, yellow warnings, red
//! errors, `--quiet`, `-v`, `--color`.

use std::fmt::Display;
use std::path::Path;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use tempo_runtime_core::{GUEST_LOG_TARGET, NOTICE_LOG_TARGET};

use crate::cli::{ColorWhen, GlobalArgs, LogFormat};
use crate::log_format::TerminalFormat;

const STATUS: Style = AnsiColor::Green.on_default().bold();
const WARNING: Style = AnsiColor::Yellow.on_default().bold();
const ERROR: Style = AnsiColor::Red.on_default().bold();

/// Ends the process with this exit code, after whoever chose it (cargo, the guest) has reported.
#[derive(Debug)]
pub(crate) struct Exit(pub(crate) i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Where tempo talks to the user.
#[derive(Clone, Copy)]
pub(crate) struct Shell {
    quiet: bool,
    verbose: u8,
    color: ColorWhen,
    /// Status lines, warnings, errors and logs as JSON lines on stdout.
    json: bool,
}

impl Shell {
    pub(crate) fn new(args: &GlobalArgs) -> Self {
        let choice = match args.color {
            ColorWhen::Auto => anstream::ColorChoice::Auto,
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
        };
        choice.write_global();
        Self {
            quiet: args.quiet,
            verbose: args.verbose,
            color: args.color,
            json: args.log_format == LogFormat::Json,
        }
    }

    /// Logs go to stderr (as JSON lines to stdout with `--log-format json`); `RUST_LOG` decides,
    /// else `-v` (info) and `-vv` (debug), else warnings. Guest lines (target `guest`) show from
    /// `info` unless `RUST_LOG` names `guest`. `export` (OTLP spans and logs, when on) sees
    /// events and spans through filters of its own.
    pub(crate) fn init_tracing<L>(&self, export: Option<L>)
    where
        L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;

        // Without export, the terminal's filter is the only one: what it does not show (the
        // runtime's spans, most host events) is then never even created.
        let registry = tracing_subscriber::registry();
        match export {
            Some(export) => registry.with(export).with(self.terminal_layer()).init(),
            None => registry.with(self.terminal_layer()).init(),
        }
    }

    /// The terminal's layer: its format and filter.
    fn terminal_layer<S>(&self) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer as _;

        let (default, guest) = match self.verbose {
            0 => ("warn", "info"),
            1 => ("info", "info"),
            _ => ("debug", "debug"),
        };
        let directives = match std::env::var("RUST_LOG") {
            Ok(directives) if directives.contains(GUEST_LOG_TARGET) => directives,
            Ok(directives) => format!("{directives},{GUEST_LOG_TARGET}={guest}"),
            Err(_) => format!("{default},{GUEST_LOG_TARGET}={guest},{NOTICE_LOG_TARGET}=info"),
        };
        let filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|err| {
            self.warn(format!("`RUST_LOG` is not valid ({err}); showing warnings"));
            tracing_subscriber::EnvFilter::new(format!("warn,{GUEST_LOG_TARGET}=info"))
        });
        if self.json {
            return tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(std::io::stdout)
                .with_filter(filter)
                .boxed();
        }
        let ansi = match self.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        let format = TerminalFormat {
            inner: tracing_subscriber::fmt::format()
                .with_target(false)
                .without_time()
                .with_ansi(ansi),
        };
        tracing_subscriber::fmt::layer()
            .event_format(format)
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter)
            .boxed()
    }

    pub(crate) fn quiet(&self) -> bool {
        self.quiet
    }

    pub(crate) fn verbose(&self) -> u8 {
        self.verbose
    }

    pub(crate) fn color(&self) -> ColorWhen {
        self.color
    }

    /// `     Verbing what`, unless `--quiet`.
    pub(crate) fn status(&self, verb: &str, message: impl Display) {
        if !self.quiet {
            self.status_always(verb, message);
        }
    }

    /// A status line that `--quiet` keeps, for what the user cannot do without (an address).
    pub(crate) fn status_always(&self, verb: &str, message: impl Display) {
        if self.json {
            json_line("INFO", &format!("{verb} {message}"));
        } else {
            anstream::eprintln!("{STATUS}{verb:>12}{STATUS:#} {message}");
        }
    }

    /// A status line shown only with `-v`.
    pub(crate) fn verbose_status(&self, verb: &str, message: impl Display) {
        if self.verbose > 0 {
            self.status(verb, message);
        }
    }

    /// `warning: …`, shown even with `--quiet`.
    pub(crate) fn warn(&self, message: impl Display) {
        if self.json {
            json_line("WARN", &message.to_string());
        } else {
            anstream::eprintln!("{WARNING}warning{WARNING:#}: {message}");
        }
    }

    /// Clears the terminal (for `dev --clear`); does nothing when stderr is not a terminal.
    pub(crate) fn clear_screen(&self) {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            anstream::eprint!("\x1b[2J\x1b[3J\x1b[H");
        }
    }

    /// `error: …` and one `caused by: …` per cause.
    pub(crate) fn error(&self, err: &anyhow::Error) {
        if self.json {
            json_line("ERROR", &format!("{err:#}"));
            return;
        }
        anstream::eprintln!("{ERROR}error{ERROR:#}: {err}");
        for cause in err.chain().skip(1) {
            anstream::eprintln!("  caused by: {cause}");
        }
    }

    /// A spinner with elapsed time for work that gives no progress of its own; hidden when quiet
    /// or when stderr is not a terminal.
    pub(crate) fn spinner(&self, verb: &str, message: impl Display) -> ProgressBar {
        let target = if self.quiet || self.json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>12.cyan.bold} {msg} {spinner} {elapsed}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(verb.to_owned());
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }
}

/// One JSON log line on stdout, in the shape tracing-subscriber's JSON layer writes events.
fn json_line(level: &str, message: &str) {
    use std::io::Write as _;
    let line = serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": level,
        "target": "tempo",
        "message": message,
    });
    // Nowhere to report a closed stdout.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A path as the user would like to read it: relative to the current folder when inside it.
pub(crate) fn display_path(path: &Path) -> String {
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    relative.as_deref().unwrap_or(path).display().to_string()
}

/// A byte count for people: `1.2 MB`.
pub(crate) fn human_size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(262_144), "262.1 kB");
        assert_eq!(human_size(12_400_000), "12.4 MB");
    }
}
