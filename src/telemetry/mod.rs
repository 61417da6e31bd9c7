//! Logs, traces and metrics (docs/observability.md).
//!
//! - [`init`] installs the global `tracing` subscriber: JSON or pretty logs on stderr (through
//!   a non-blocking writer: see [`init`]) and, when
//!   an OTLP endpoint is configured (`telemetry.otlp_endpoint` or the standard `OTEL_*`
//!   variables), an OpenTelemetry layer with a batch exporter. Without an endpoint no
//!   OpenTelemetry code runs per request. The returned [`TelemetryGuard`] flushes pending
//!   spans when dropped, after the server has stopped.
//! - [`RootSpan`] makes the per-request span (HTTP semantic conventions), continues an
//!   incoming W3C `traceparent`, writes the one log line per request and the HTTP metrics.
//! - [`flow`] ties the steps of one login together: the push's trace context travels in the
//!   stored records and later steps link to it.
//! - [`metrics`] is the Prometheus registry behind `GET /metrics`.

pub mod flow;
mod json;
mod malformed;
pub mod metrics;
mod otel;
mod pretty;
mod root_span;
mod sampling;

use std::io::IsTerminal;

use tracing_subscriber::filter::{FilterExt, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings, TelemetrySettings};

pub use otel::ExportPlan;
pub use root_span::RootSpan;
pub use sampling::SamplingGate;

/// Keeps the span exporter and the log writer alive; dropping it flushes what is queued
/// (spans bounded by the exporter timeout, then the log lines still buffered) and shuts both
/// down. Hold it in `main` until the server stopped.
#[must_use = "dropping the guard shuts the span exporter down"]
pub struct TelemetryGuard {
    exporter: Option<otel::Exporter>,
    /// Dropped after the exporter (field order), so the exporter's own lines are written too.
    _log: Option<LogWriter>,
}

/// The non-blocking log writer's worker and its count of lines dropped on a full buffer.
struct LogWriter {
    _worker: tracing_appender::non_blocking::WorkerGuard,
    dropped: tracing_appender::non_blocking::ErrorCounter,
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let dropped = self.dropped.dropped_lines();
        if dropped > 0 {
            eprintln!("par-server: {dropped} log lines dropped (stderr could not keep up)");
        }
    }
}

/// Log lines buffered between the request threads and the thread writing stderr. A line is a
/// few hundred bytes, so a full buffer holds a few MiB.
const LOG_BUFFER_LINES: usize = 16 * 1024;

impl TelemetryGuard {
    /// A guard that exports nothing.
    pub fn none() -> Self {
        Self {
            exporter: None,
            _log: None,
        }
    }

    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.exporter.is_some()
    }

    /// Exports every finished span now (blocking). For tests and shutdown.
    pub fn flush(&self) {
        if let Some(e) = &self.exporter {
            e.flush();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(e) = self.exporter.take() {
            e.shutdown();
        }
    }
}

/// What the log layer sees besides its level filter: of the spans only the request's root
/// span (its fields — route, status, `client_id`, `flow_id` — are the context of every
/// line; the step and Redis spans are for traces and would cost an allocation each per
/// request), and of the events all but actix-http's dispatcher errors ([`malformed`]).
fn logged(meta: &tracing::Metadata<'_>) -> bool {
    if meta.is_span() {
        root_span::is_root(meta)
    } else {
        !malformed::is_stream_error(meta)
    }
}

/// A per-layer filter from a function, with the level hint that keeps the subscriber's
/// global maximum level true. Without a hint a filter counts as "any level", and then every
/// INFO span in the code passes the macros' static level check and is built even at
/// `log.level: warn` (measured: ≈ 9 µs per push, ≈ 45 µs per SSO login).
fn filter_fn(
    f: fn(&tracing::Metadata<'_>) -> bool,
    hint: LevelFilter,
) -> tracing_subscriber::filter::FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    tracing_subscriber::filter::filter_fn(f).with_max_level_hint(hint)
}

/// The subscriber [`init`] installs: the log layer (`format`, filtered by `filter` and
/// [`logged`]), the OpenTelemetry layer when `exporter` is given, the malformed-HTTP
/// downgrade, and — with `gating` (a sampling ratio) — the refusal of unsampled requests'
/// spans ([`sampling`]).
///
/// Every layer carries a per-layer filter with a level hint: an unfiltered layer, or a filter
/// without a hint, makes the registry build every span at every level (measured: ≈ 9 µs a
/// push at `warn`; `tests::spans_are_built_only_when_a_layer_wants_them`).
fn subscriber<W>(
    format: &LogFormat,
    filter: EnvFilter,
    exporter: Option<&otel::Exporter>,
    gating: bool,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // Two filters: logs follow `log.level` / `RUST_LOG`; spans are exported from INFO up
    // whatever the log level, so `level: warn` keeps logs quiet without losing traces. Only
    // WARN and ERROR events become span events: the info lines (one per request) are in the
    // logs, and exporting them again costs about as much as a span each.
    let root_logged = filter
        .max_level_hint()
        .is_none_or(|level| level >= LevelFilter::INFO);
    // The filter is outside the `Option`: a missing layer (`None`) would otherwise say yes to
    // every span at `enabled` and make the registry build spans that no layer wants.
    let otel_layer = exporter
        .map(|e| e.layer())
        .with_filter(sampling::ExportedFilter::otel(exporter.is_some()));
    let fmt_layer = match format {
        LogFormat::Json => json::JsonLayer {
            writer,
            trace_ids: exporter.is_some(),
        }
        .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .compact()
            // Colours only for a person at a terminal: in a pipe or a file (compose, k8s)
            // escape codes are noise, and they cost ≈ a tenth of a push at `info`.
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .fmt_fields(pretty::PrettyFields)
            .with_writer(writer)
            .boxed(),
    };
    // `TRACE`: `logged` itself restricts no level; `and` takes the stricter hint (the level's).
    let fmt_layer = fmt_layer.with_filter(filter.and(filter_fn(logged, LevelFilter::TRACE)));
    let unsampled_spans = sampling::UnsampledSpans { root_logged }
        .with_filter(sampling::UnsampledSpans::filter(exporter.is_some() && gating));
    tracing_subscriber::registry()
        .with(otel_layer)
        .with(fmt_layer)
        // Last: it logs an event of its own, which must not run while the layers before it
        // still handle the original (per-layer filter state is per event).
        .with(malformed::Downgrade.with_filter(filter_fn(malformed::is_stream_error, LevelFilter::ERROR)))
        // Outermost: refuses an unsampled request's spans before the registry builds them.
        .with(unsampled_spans)
}

/// Installs the global subscriber (logs, and traces when an endpoint is configured).
/// `RUST_LOG` overrides `log.level`.
///
/// Log lines go to stderr from a thread of their own (`tracing-appender`'s non-blocking
/// writer): a request only formats its line and queues it. When stderr cannot keep up and
/// [`LOG_BUFFER_LINES`] lines are waiting, new lines are dropped rather than waited for (a
/// request never blocks on logging); the guard prints how many on shutdown. Lines still
/// queued when the process is killed (SIGKILL) are lost; a normal shutdown writes them. If a global subscriber is already set (a second call in
/// one process), nothing is installed and the returned guard exports nothing.
pub fn init(log: &LogSettings, telemetry: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    let plan = ExportPlan::resolve(telemetry, |k| std::env::var(k).ok());
    let exporter = plan.as_ref().map(otel::Exporter::start).transpose()?;
    // Two filters: logs follow `log.level` / `RUST_LOG`; spans are exported from INFO up
    // whatever the log level, so `level: warn` keeps logs quiet without losing traces. Only
    // WARN and ERROR events become span events: the info lines (one per request) are in the
    // logs, and exporting them again costs about as much as a span each.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let (writer, worker) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .lossy(true)
        .thread_name("par-server-log")
        // Buffered: the worker drains every queued line into the buffer, then flushes once
        // (one write(2) per batch instead of one per line).
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let log_writer = LogWriter {
        _worker: worker,
        dropped: writer.error_counter(),
    };
    let gating = telemetry.sampling_ratio.is_some();
    let installed = subscriber(&log.format, filter, exporter.as_ref(), gating, writer)
        .try_init()
        .is_ok();
    if !installed {
        return Ok(TelemetryGuard::none());
    }
    if let (Some(_), Some(plan)) = (&exporter, &plan) {
        otel::set_enabled();
        tracing::info!(
            endpoint = %plan.endpoint_for_log(),
            protocol = plan.protocol.as_str(),
            sampling = %plan.sampling_for_log(),
            "exporting traces by OTLP"
        );
    }
    Ok(TelemetryGuard {
        exporter,
        _log: Some(log_writer),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `make` builds a span under the subscriber `init` would install at `level`
    /// (no exporter).
    fn built(level: &str, make: impl FnOnce() -> tracing::Span) -> bool {
        let sub = subscriber(
            &LogFormat::Json,
            EnvFilter::new(level),
            None,
            false,
            std::io::sink,
        );
        tracing::subscriber::with_default(sub, || !make().is_disabled())
    }

    #[test]
    fn spans_are_built_only_when_a_layer_wants_them() {
        // `warn`, not exporting: no span at all, not even the request's root span.
        assert!(!built("warn", || tracing::info_span!("par.push")));
        assert!(!built("warn", root_span::test_root_span));
        // `info`: the root span (its fields are the log line's), still no step span.
        assert!(built("info", root_span::test_root_span));
        assert!(!built("info", || tracing::info_span!("par.push")));
        assert!(!built("debug", || tracing::debug_span!("store.push_request")));
    }

    #[test]
    fn events_follow_the_log_level() {
        let enabled = |level: &str, at_warn: bool| {
            let sub = subscriber(
                &LogFormat::Json,
                EnvFilter::new(level),
                None,
                false,
                std::io::sink,
            );
            tracing::subscriber::with_default(sub, || {
                if at_warn {
                    tracing::enabled!(tracing::Level::WARN)
                } else {
                    tracing::enabled!(tracing::Level::INFO)
                }
            })
        };
        assert!(enabled("warn", true));
        assert!(!enabled("warn", false));
        assert!(enabled("info", false));
    }
}
