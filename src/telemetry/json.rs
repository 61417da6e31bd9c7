//! The JSON log line: one object per event with `timestamp`, `level`, `target`, the event's
//! fields, the current span (`span.name` plus its fields), the flow's `client_id`/`flow_id`
//! from any enclosing span, and — when traces are exported — `trace_id` and `span_id` of the
//! current span, so a log line leads to its trace.
//!
//! Built for the one line per request at `info` (issue 17): a span's fields are rendered to
//! JSON once, when they are recorded, and kept in the span's extensions ([`SpanFields`]);
//! `otel.*` fields are skipped (only the OpenTelemetry layer reads them), so an untraced
//! request never formats its span name. An event is written straight into a reused
//! per-thread buffer, escaped as it goes: no intermediate map, no second parse. The buffer
//! then goes to the writer (non-blocking in `telemetry::init`).
//!
//! Secrets never reach this formatter as values: handlers use `skip_all` spans and
//! [`Secret`](crate::secret::Secret) hides itself in `Debug`; `tests/api/observability.rs`
//! checks a full login's logs for every secret it used.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::ops::Range;

use opentelemetry::trace::TraceContextExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The JSON log layer: renders span fields once and writes one line per event.
pub(super) struct JsonLayer<W> {
    pub writer: W,
    pub trace_ids: bool,
}

/// Fields lifted from any enclosing span (the innermost wins) to the top level of the line.
const FLOW_FIELDS: [&str; 2] = ["client_id", "flow_id"];

/// A span's fields as JSON values, rendered once: `values[range]` of each field is its JSON.
#[derive(Default)]
struct SpanFields {
    values: String,
    fields: Vec<(&'static str, Range<usize>)>,
}

impl SpanFields {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| &self.values[r.clone()])
    }
}

/// Visitor appending each field's JSON value to a `SpanFields`. A field recorded again (a
/// late `span.record`) replaces its earlier value.
struct RenderSpan<'a>(&'a mut SpanFields);

impl RenderSpan<'_> {
    fn push(&mut self, field: &Field, render: impl FnOnce(&mut String)) {
        let name = field.name();
        if name.starts_with("otel.") {
            return;
        }
        let start = self.0.values.len();
        render(&mut self.0.values);
        let range = start..self.0.values.len();
        match self.0.fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, r)) => *r = range,
            None => self.0.fields.push((name, range)),
        }
    }
}

impl Visit for RenderSpan<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, |b| json_str(b, value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, |b| {
            let _ = write!(b, "{value}");
        });
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, |b| {
            let _ = write!(b, "{value}");
        });
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, |b| json_f64(b, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, |b| b.push_str(if value { "true" } else { "false" }));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, |b| json_display(b, value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, |b| json_debug(b, value));
    }
}

/// Visitor writing an event's fields as `,"name":value` pairs; notes which flow fields the
/// event carries itself (those are not lifted from spans, so no key appears twice).
struct RenderEvent<'a> {
    line: &'a mut String,
    has_flow: [bool; 2],
}

impl RenderEvent<'_> {
    fn key(&mut self, field: &Field) {
        let name = field.name();
        if let Some(i) = FLOW_FIELDS.iter().position(|f| *f == name) {
            self.has_flow[i] = true;
        }
        self.line.push(',');
        json_str(self.line, name);
        self.line.push(':');
    }
}

impl Visit for RenderEvent<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        json_str(self.line, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.line, "{value}");
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.line, "{value}");
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        json_f64(self.line, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.line.push_str(if value { "true" } else { "false" });
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.key(field);
        json_display(self.line, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        json_debug(self.line, value);
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut RenderSpan(&mut fields));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<SpanFields>() {
            values.record(&mut RenderSpan(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|cell| {
            // A `Debug` impl that logs would re-enter: it gets a buffer of its own.
            let mut fresh = String::new();
            let mut borrowed = cell.try_borrow_mut();
            let line = match borrowed.as_deref_mut() {
                Ok(l) => l,
                Err(_) => &mut fresh,
            };
            line.clear();
            self.format(line, event, &ctx);
            let _ = self
                .writer
                .make_writer_for(event.metadata())
                .write_all(line.as_bytes());
            if line.capacity() > 16 * 1024 {
                *line = String::new();
            }
        });
    }
}

impl<W> JsonLayer<W> {
    fn format<S>(&self, line: &mut String, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        line.push_str("{\"timestamp\":\"");
        let _ = SystemTime.format_time(&mut Writer::new(line));
        line.push_str("\",\"level\":\"");
        line.push_str(meta.level().as_str());
        line.push_str("\",\"target\":");
        json_str(line, meta.target());
        let mut visitor = RenderEvent {
            line,
            has_flow: [false; 2],
        };
        event.record(&mut visitor);
        let mut lifted = visitor.has_flow;

        let Some(scope) = ctx.event_scope(event) else {
            line.push_str("}\n");
            return;
        };
        let mut current = None;
        for span in scope {
            let ext = span.extensions();
            let Some(fields) = ext.get::<SpanFields>() else {
                continue;
            };
            if current.is_none() {
                // The innermost span: `"span":{"name":…,fields…}`.
                line.push_str(",\"span\":{\"name\":");
                json_str(line, span.name());
                for (name, range) in &fields.fields {
                    if *name == "name" {
                        continue;
                    }
                    line.push(',');
                    json_str(line, name);
                    line.push(':');
                    line.push_str(&fields.values[range.clone()]);
                }
                line.push('}');
                current = Some(span.id());
            }
            for (i, name) in FLOW_FIELDS.iter().enumerate() {
                if !lifted[i]
                    && let Some(v) = fields.get(name)
                {
                    lifted[i] = true;
                    line.push(',');
                    json_str(line, name);
                    line.push(':');
                    line.push_str(v);
                }
            }
        }

        if self.trace_ids
            && let Some(id) = current
        {
            let cx = tracing::dispatcher::get_default(|d| tracing_opentelemetry::get_otel_context(&id, d));
            if let Some(cx) = cx {
                let span = cx.span();
                let sc = span.span_context();
                if sc.is_valid() {
                    let _ = write!(
                        line,
                        ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                        sc.trace_id(),
                        sc.span_id()
                    );
                }
            }
        }
        line.push_str("}\n");
    }
}

/// `value` as a JSON number; `null` for NaN and infinities (JSON has none). `Debug` keeps a
/// fraction (`1.0`), so a float never reads back as an integer.
fn json_f64(out: &mut String, value: f64) {
    if value.is_finite() {
        let _ = write!(out, "{value:?}");
    } else {
        out.push_str("null");
    }
}

fn json_str(out: &mut String, value: &str) {
    out.push('"');
    let _ = Escaped(out).write_str(value);
    out.push('"');
}

fn json_display(out: &mut String, value: &dyn fmt::Display) {
    out.push('"');
    let _ = write!(Escaped(out), "{value}");
    out.push('"');
}

fn json_debug(out: &mut String, value: &dyn fmt::Debug) {
    out.push('"');
    let _ = write!(Escaped(out), "{value:?}");
    out.push('"');
}

/// Escapes what it is given for the inside of a JSON string (RFC 8259 §7).
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let esc = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.push_str(&s[start..i]);
            if esc.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.push_str(esc);
            }
            start = i + 1;
        }
        self.0.push_str(&s[start..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    fn lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let sink = Sink::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer {
            writer: sink.clone(),
            trace_ids: false,
        });
        tracing::subscriber::with_default(subscriber, f);
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    #[test]
    fn a_line_has_the_event_its_span_and_the_flow_ids() {
        let got = lines(|| {
            let outer = tracing::info_span!("outer", client_id = "app", flow_id = tracing::field::Empty);
            let _o = outer.enter();
            outer.record("flow_id", "f-1");
            let inner = tracing::info_span!(
                "http.request",
                otel.name = "never rendered",
                http.route = "/oauth2/par",
                status = tracing::field::Empty,
            );
            inner.record("status", 201);
            inner.record("status", 400);
            let _i = inner.enter();
            tracing::info!(
                latency_ms = 1.0,
                odd = "q\"\\\n\u{1}é",
                ok = true,
                n = -3,
                "request"
            );
        });
        assert_eq!(got.len(), 1);
        let l = &got[0];
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["target"], module_path!());
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'), "{l}");
        assert_eq!(l["message"], "request");
        assert!(l["latency_ms"].is_f64(), "{l}");
        assert_eq!(l["odd"], "q\"\\\n\u{1}é");
        assert_eq!(l["ok"], true);
        assert_eq!(l["n"], -3);
        assert_eq!(l["client_id"], "app");
        assert_eq!(l["flow_id"], "f-1");
        assert_eq!(
            l["span"],
            serde_json::json!({"name": "http.request", "http.route": "/oauth2/par", "status": 400})
        );
    }

    #[test]
    fn the_innermost_flow_id_wins_and_the_event_s_own_is_kept() {
        let got = lines(|| {
            let _o = tracing::info_span!("outer", flow_id = "outer").entered();
            let _i = tracing::info_span!("inner", flow_id = "inner").entered();
            tracing::info!("a");
            tracing::info!(flow_id = "own", "b");
        });
        assert_eq!(got[0]["flow_id"], "inner");
        assert_eq!(got[1]["flow_id"], "own");
        assert!(got[0].get("client_id").is_none());
    }

    #[test]
    fn an_event_outside_spans_is_a_line_too() {
        let got = lines(|| tracing::warn!(err = %"boom", "nothing around"));
        assert_eq!(got[0]["err"], "boom");
        assert!(got[0].get("span").is_none());
    }
}
