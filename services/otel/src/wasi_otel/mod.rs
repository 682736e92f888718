//! `wasi:otel@0.2.0-rc.2` (tracing and logs): a guest's own spans join the trace of the request
//! or message it handles, and go out with tempo's through OTLP; its log records are guest log
//! lines, like wasi:logging's.
//!
//! A guest asks for the current span (`current-span-context`: its innermost open span, else the
//! host's `request` or `message` span), reports the spans it starts and ends, and emits log
//! records. What one instance can make the host hold is bounded: [`MAX_OPEN_SPANS`] open spans
//! remembered, [`MAX_SPANS`] spans exported, each cut to the limits of [`convert`]; spans past
//! the bound are dropped and counted (`tempo_limits_hit_total{limit="spans"}`).

mod convert;

use std::sync::{Arc, Mutex};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _};
use tempo_runtime_core::context::view;
use tempo_runtime_core::metrics::{component, metrics};
use tempo_runtime_core::settings::{Configured, NoArgs, Setting, Sources};
use tempo_runtime_core::wasmtime::component::Linker;
use tempo_runtime_core::{
    InterfaceName, RequestId, Service, ServiceContext, ServiceData, ServiceView, State,
};
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::logging::guest_line;
use crate::telemetry::GuestSpans;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "tempo:host/otel",
        // A span per call, as for every tempo service (exported with OTLP, off otherwise).
        imports: { default: tracing },
    });
}

use generated::wasi::otel::{logs, tracing as wit, types};

/// The `wasi:otel` version tempo implements.
pub const OTEL_VERSION: &str = "0.2.0-rc.2";

/// The most spans an instance may have open (started, not ended) that the host remembers.
pub const MAX_OPEN_SPANS: usize = 64;

/// The most spans one instance exports; more are dropped and counted.
pub const MAX_SPANS: usize = 1024;

/// The `wasi:otel` service: tracing and logs.
pub struct OtelService {
    provides: Vec<InterfaceName>,
    spans: GuestSpans,
}

impl OtelService {
    /// A service exporting guests' spans to `spans`.
    pub fn new(spans: GuestSpans) -> Self {
        let name = |interface: &str| {
            InterfaceName::known(&format!("wasi:otel/{interface}@{OTEL_VERSION}"))
        };
        Self {
            provides: vec![name("types"), name("tracing"), name("logs")],
            spans,
        }
    }
}

/// What the host keeps for one instance.
pub(crate) struct InstanceOtel {
    spans: GuestSpans,
    component: Arc<str>,
    request_id: RequestId,
    /// The host's span of the unit of work: the parent of the guest's first spans.
    work: SpanContext,
    traced: Mutex<Traced>,
}

/// The spans an instance has open, and how many it has ended.
#[derive(Default)]
struct Traced {
    open: Vec<SpanContext>,
    ended: usize,
}

impl ServiceContext for InstanceOtel {
    const SERVICE: &'static str = "wasi:otel";
}

impl InstanceOtel {
    fn traced(&self) -> std::sync::MutexGuard<'_, Traced> {
        self.traced.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count_dropped(&self) {
        metrics().limits.add(
            1,
            &[
                component(self.component.clone()),
                KeyValue::new("limit", "spans"),
            ],
        );
    }
}

type OtelView<'a> = ServiceView<'a, InstanceOtel>;

impl types::Host for OtelView<'_> {}

impl wit::Host for OtelView<'_> {
    fn on_start(&mut self, context: wit::SpanContext) {
        let (Ok(instance), Some(context)) = (self.context(), convert::span_context(&context))
        else {
            return;
        };
        let mut traced = instance.traced();
        if traced.open.len() < MAX_OPEN_SPANS {
            traced.open.push(context);
        }
    }

    fn on_end(&mut self, span: wit::SpanData) {
        let Ok(instance) = self.context() else {
            return;
        };
        {
            let ended_id = SpanId::from_hex(&span.span_context.span_id).ok();
            let mut traced = instance.traced();
            if let Some(at) = traced
                .open
                .iter()
                .rposition(|open| Some(open.span_id()) == ended_id)
            {
                traced.open.remove(at);
            }
            traced.ended += 1;
            if traced.ended > MAX_SPANS {
                drop(traced);
                instance.count_dropped();
                return;
            }
        }
        if !instance.spans.is_on() {
            return;
        }
        let extra = [
            component(instance.component.clone()),
            KeyValue::new("request_id", instance.request_id.as_str().to_owned()),
        ];
        if let Some(data) = convert::span_data(span, &extra)
            && data.span_context.is_sampled()
        {
            instance.spans.export(data);
        }
    }

    fn current_span_context(&mut self) -> wit::SpanContext {
        let current = self.context().ok().and_then(|instance| {
            let traced = instance.traced();
            traced
                .open
                .last()
                .cloned()
                .or_else(|| instance.work.is_valid().then(|| instance.work.clone()))
        });
        convert::wit_span_context(&current.unwrap_or(SpanContext::NONE))
    }
}

impl logs::Host for OtelView<'_> {
    fn on_emit(&mut self, record: logs::LogRecord) {
        let Ok(instance) = self.context() else {
            return;
        };
        let level = match record.severity_number.unwrap_or(9) {
            0..=4 => Level::TRACE,
            5..=8 => Level::DEBUG,
            9..=12 => Level::INFO,
            13..=16 => Level::WARN,
            _ => Level::ERROR,
        };
        // The body is JSON: a text body is shown as its text.
        let body = record.body.unwrap_or_default();
        let message = match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(serde_json::Value::String(text)) => text,
            _ => body,
        };
        let context = record.event_name.as_deref().unwrap_or("otel");
        let request_id = instance.request_id.as_str();
        guest_line(&instance.component, request_id, level, context, &message);
    }
}

impl Configured for OtelService {
    const SECTION: Option<&'static str> = None;
    const SETTINGS: &'static [Setting] = &[];
    type Args = NoArgs;

    /// Guests' spans go where tempo's go: the [`GuestSpans`] the sources share, else nowhere.
    fn configure(_: NoArgs, sources: &Sources) -> anyhow::Result<Self> {
        Ok(Self::new(
            sources.shared::<GuestSpans>().cloned().unwrap_or_default(),
        ))
    }
}

impl Service for OtelService {
    fn name(&self) -> &str {
        "wasi:otel"
    }

    fn provides(&self) -> &[InterfaceName] {
        &self.provides
    }

    fn link(&self, linker: &mut Linker<State>) -> anyhow::Result<()> {
        type Data = ServiceData<InstanceOtel>;
        types::add_to_linker::<State, Data>(linker, view::<InstanceOtel>)?;
        wit::add_to_linker::<State, Data>(linker, view::<InstanceOtel>)?;
        logs::add_to_linker::<State, Data>(linker, view::<InstanceOtel>)?;
        Ok(())
    }

    fn describe(&self) -> String {
        if self.spans.is_on() {
            "guests' spans join the request's trace, exported with OTLP; log records as guest lines"
                .into()
        } else {
            "guests' spans are not exported (OTLP is off); log records as guest lines".into()
        }
    }

    /// Taken in the span of the request or message the instance handles.
    fn init_instance(&self, state: &mut State) {
        let work = tracing::Span::current()
            .context()
            .span()
            .span_context()
            .clone();
        let instance = InstanceOtel {
            spans: self.spans.clone(),
            component: Arc::from(state.component()),
            request_id: state.request_id().clone(),
            work,
            traced: Mutex::default(),
        };
        state.insert_context(Arc::new(instance));
    }
}
