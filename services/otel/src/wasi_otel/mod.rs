//! `wasi:otel@0.2.0-rc.2`: a guest's own spans join the trace of the request or message it
//! handles, and go out with tempo's through OTLP; its metrics are recorded beside tempo's (see
//! [`metrics`]); its log records are guest log lines, like wasi:logging's.
//!
//! A guest asks for the current span (`current-span-context`: its innermost open span, else the
//! host's `request` or `message` span; or, under the older name `outer-span-context`, the host's
//! span alone), reports the spans it starts and ends, and emits log
//! records. What one instance can make the host hold is bounded: [`MAX_OPEN_SPANS`] open spans
//! remembered, [`MAX_SPANS`] spans exported, each cut to the limits of [`convert`]; spans past
//! the bound are dropped and counted (`tempo_limits_hit_total{limit="spans"}`).

mod convert;
pub(crate) mod metrics;

use std::sync::{Arc, Mutex};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _};
use tempo_runtime_core::context::view;
use tempo_runtime_core::metrics::{component, metrics};
use tempo_runtime_core::settings::{Configured, GuestSide, NoArgs, Setting, Sources};
use tempo_runtime_core::wasmtime::component::Linker;
use tempo_runtime_core::{
    CurrentWork, RequestId, Service, ServiceContext, ServiceData, ServiceView, State,
};
use tracing::Level;

use crate::logging::guest_line;
use crate::telemetry::GuestSpans;

tempo_runtime_core::host_bindings!(mod generated = "tempo:host/otel");

use generated::wasi::otel::{logs, metrics as wit_metrics, tracing as wit, types};
use metrics::{GuestInstruments, Reported};

/// The `wasi:otel` version tempo implements.
pub const OTEL_VERSION: &str = "0.2.0-rc.2";

/// The most spans an instance may have open (started, not ended) that the host remembers.
pub const MAX_OPEN_SPANS: usize = 64;

/// The most spans one instance exports; more are dropped and counted.
pub const MAX_SPANS: usize = 1024;

/// The `wasi:otel` service: tracing, metrics and logs.
pub struct OtelService {
    spans: GuestSpans,
    instruments: Arc<GuestInstruments>,
}

impl OtelService {
    /// A service exporting guests' spans to `spans`.
    pub fn new(spans: GuestSpans) -> Self {
        Self {
            spans,
            instruments: Arc::default(),
        }
    }
}

/// What the host keeps for one instance.
pub(crate) struct InstanceOtel {
    spans: GuestSpans,
    component: Arc<str>,
    /// The unit of work the instance handles (if reused, the one whose task runs).
    work: CurrentWork,
    traced: Mutex<Traced>,
    instruments: Arc<GuestInstruments>,
    reported: Mutex<Reported>,
}

/// A unit of work, as the guest's spans and records are tied to it.
#[derive(Clone)]
struct Work {
    request_id: RequestId,
    /// The host's span of the unit of work: the parent of the guest's first spans.
    span: SpanContext,
}

impl InstanceOtel {
    fn work(&self) -> Work {
        let work = self.work.get();
        Work {
            request_id: work.request_id,
            span: work.trace.span().span_context().clone(),
        }
    }
}

/// The spans an instance has open, and how many it has ended.
#[derive(Default)]
struct Traced {
    open: Vec<SpanContext>,
    ended: usize,
}

tempo_runtime_core::service_context!(InstanceOtel = "wasi:otel");

impl InstanceOtel {
    fn traced(&self) -> std::sync::MutexGuard<'_, Traced> {
        self.traced.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `dropped` items past the bound called `limit`.
    fn count_dropped(&self, limit: &'static str, dropped: u64) {
        metrics().limit_hit(&component(self.component.clone()), limit, dropped);
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
                instance.count_dropped("spans", 1);
                return;
            }
        }
        if !instance.spans.is_on() {
            return;
        }
        let extra = [
            component(instance.component.clone()),
            KeyValue::new("request_id", instance.work().request_id.to_string()),
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
            traced.open.last().cloned().or_else(|| {
                let work = instance.work().span;
                work.is_valid().then_some(work)
            })
        });
        convert::wit_span_context(&current.unwrap_or(SpanContext::NONE))
    }
}

impl wit_metrics::Host for OtelView<'_> {
    fn export(&mut self, metrics: wit_metrics::ResourceMetrics) -> Result<(), String> {
        let Ok(instance) = self.context() else {
            return Err("wasi:otel is not set up for this instance".into());
        };
        let mut dropped = 0;
        let result = {
            let mut reported = instance.reported.lock().unwrap_or_else(|e| e.into_inner());
            let component = component(instance.component.clone());
            instance
                .instruments
                .record(metrics, &component, &mut reported, &mut dropped)
        };
        if dropped > 0 {
            instance.count_dropped("metrics", dropped);
        }
        result
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
        // What the line is about: the event's name, else the scope (a module path), else otel.
        let context = record
            .event_name
            .as_deref()
            .or(record
                .instrumentation_scope
                .as_ref()
                .map(|s| s.name.as_str()))
            .unwrap_or("otel");
        let request_id = instance.work().request_id;
        guest_line(
            &instance.component,
            request_id.as_str(),
            level,
            context,
            &message,
        );
    }
}

/// `outer-span-context`, the name an earlier text of `wasi:otel@0.2.0-rc.2` gave the call that
/// the proposal now calls `current-span-context`, as the guest SDKs in use still import it
/// (bytecodealliance/opentelemetry-wasi, wasmCloud's examples). It returns the host's span of
/// the unit of work: what that text specified.
fn link_outer_span_context(linker: &mut Linker<State>) -> anyhow::Result<()> {
    let mut tracing = linker.instance(&format!("wasi:otel/tracing@{OTEL_VERSION}"))?;
    tracing.func_wrap(
        "outer-span-context",
        |mut store: tempo_runtime_core::wasmtime::StoreContextMut<'_, State>, (): ()| {
            let view = view::<InstanceOtel>(store.data_mut());
            let work = view.context()?.work().span;
            Ok((convert::wit_span_context(&work),))
        },
    )?;
    Ok(())
}

impl Configured for OtelService {
    const SECTION: Option<&'static str> = None;
    const SETTINGS: &'static [Setting] = &[];
    type Args = NoArgs;
    const GUEST: GuestSide = GuestSide::new("wasi:otel", "telemetry", None);

    /// Guests' spans go where tempo's go: the [`GuestSpans`] the sources share, else nowhere.
    fn configure(_: NoArgs, sources: &Sources) -> anyhow::Result<Self> {
        Ok(Self::new(
            sources.shared::<GuestSpans>().cloned().unwrap_or_default(),
        ))
    }
}

impl Service for OtelService {
    tempo_runtime_core::service_names!(
        InstanceOtel::SERVICE,
        ["types", "tracing", "metrics", "logs"] @ OTEL_VERSION
    );

    fn link(&self, linker: &mut Linker<State>) -> anyhow::Result<()> {
        type Data = ServiceData<InstanceOtel>;
        types::add_to_linker::<State, Data>(linker, view::<InstanceOtel>)?;
        wit::add_to_linker::<State, Data>(linker, view::<InstanceOtel>)?;
        link_outer_span_context(linker)?;
        wit_metrics::add_to_linker::<State, Data>(linker, view::<InstanceOtel>)?;
        logs::add_to_linker::<State, Data>(linker, view::<InstanceOtel>)?;
        Ok(())
    }

    fn describe(&self) -> String {
        if self.spans.is_on() {
            "guests' spans join the request's trace, exported with OTLP; metrics beside tempo's; log records as guest lines"
                .into()
        } else {
            "guests' spans are not exported (OTLP is off); metrics beside tempo's; log records as guest lines".into()
        }
    }

    /// Taken in the span of the request or message the instance handles.
    fn init_instance(&self, state: &mut State) {
        let instance = InstanceOtel {
            spans: self.spans.clone(),
            component: Arc::from(state.component()),
            work: state.current_work().clone(),
            traced: Mutex::default(),
            instruments: self.instruments.clone(),
            reported: Mutex::default(),
        };
        state.insert_context(Arc::new(instance));
    }

    /// The bound on spans is per request; the
    /// instance's open spans and metric totals stay, as they do in the guest.
    fn begin_request(&self, state: &mut State) {
        if let Some(instance) = state.part::<Arc<InstanceOtel>>() {
            instance.traced().ended = 0;
        }
    }
}
