//! Head sampling before any span exists, so that a request that is not sampled costs the
//! OpenTelemetry layer nothing (docs/observability.md, "Sampling").
//!
//! With `telemetry.sampling_ratio` set, [`SamplingGate`] — the outermost middleware — decides
//! once per request: a caller's valid `traceparent` decides by its sampled flag
//! (parent-based sampling, W3C Trace Context §3.2.2.5 "trace-flags"), otherwise the ratio.
//! While an unsampled request is called and polled, a thread-local flag makes the
//! OpenTelemetry layer's filter ([`ExportedFilter`]) refuse every span and event: none is
//! built, recorded or exported, and the request's log line is unchanged. The SDK's sampler
//! is then parent-based always-on (`otel::Exporter::start`): the ratio is applied here, once.
//!
//! Without a ratio (the SDK's own `OTEL_TRACES_SAMPLER` decides), every request is seen by
//! the layer and the SDK samples as configured.

use std::cell::Cell;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::HttpMessage;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use opentelemetry::trace::TraceContextExt;
use tracing::Metadata;
use tracing::subscriber::Interest;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{self, Filter};

thread_local! {
    /// Set while an unsampled request's future runs on this thread.
    static UNSAMPLED: Cell<bool> = const { Cell::new(false) };
}

/// What the OpenTelemetry layer sees: spans at INFO and above, events at WARN and above
/// (of sampled requests only).
fn exported(meta: &tracing::Metadata<'_>) -> bool {
    let most_verbose = if meta.is_span() {
        tracing::Level::INFO
    } else {
        tracing::Level::WARN
    };
    *meta.level() <= most_verbose
}

/// Runs `f` with the unsampled flag set to `unsampled`, restoring it afterwards.
fn with_flag<T>(unsampled: bool, f: impl FnOnce() -> T) -> T {
    let before = UNSAMPLED.replace(unsampled);
    let out = f();
    UNSAMPLED.set(before);
    out
}

/// The per-layer filter of the OpenTelemetry layer ([`ExportedFilter::otel`]: spans at INFO
/// and above and events at WARN and above — [`exported`] — none of an unsampled request) and
/// of [`UnsampledSpans`] (the same spans, asked whether the request is sampled). Off, it
/// passes nothing.
pub(super) struct ExportedFilter {
    on: bool,
    spans_only: bool,
    sampled_only: bool,
}

impl ExportedFilter {
    pub fn otel(exporting: bool) -> Self {
        Self {
            on: exporting,
            spans_only: false,
            sampled_only: true,
        }
    }

    fn wants(&self, meta: &Metadata<'_>) -> bool {
        self.on && exported(meta) && (meta.is_span() || !self.spans_only)
    }
}

impl<S> Filter<S> for ExportedFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &layer::Context<'_, S>) -> bool {
        self.wants(meta) && !(self.sampled_only && UNSAMPLED.get())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.wants(meta) {
            // Per request: `enabled` reads the flag.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(if self.on {
            LevelFilter::INFO
        } else {
            LevelFilter::OFF
        })
    }
}

/// Keeps an unsampled request's spans from being built at all. A per-layer filter alone
/// cannot: when any filter answers "sometimes" for a callsite, tracing-subscriber's registry
/// builds the span even if every filter then refuses it (its filter map only counts as
/// "all disabled" with 64 filters), so each span would still be allocated, entered and
/// closed. A layer's own `enabled` returning `false` refuses globally: this one does for
/// every span of an unsampled request, except the root span when the log layer wants it
/// (its fields are the log line's). Installed with [`UnsampledSpans::filter`] — a layer
/// without a per-layer filter would turn the other layers' "never" into "sometimes".
pub(super) struct UnsampledSpans {
    /// Whether the log level lets the root span through (`log.level` info or finer).
    pub root_logged: bool,
}

impl UnsampledSpans {
    /// The spans this layer is asked about: exported ones, only when the gate runs.
    pub fn filter(gating: bool) -> ExportedFilter {
        ExportedFilter {
            on: gating,
            spans_only: true,
            sampled_only: false,
        }
    }
}

impl<S: tracing::Subscriber> layer::Layer<S> for UnsampledSpans {
    fn enabled(&self, meta: &Metadata<'_>, _cx: layer::Context<'_, S>) -> bool {
        !UNSAMPLED.get() || (self.root_logged && super::root_span::is_root(meta))
    }
}

/// The sampling middleware; `ratio: None` lets every request through to the SDK's sampler.
pub struct SamplingGate {
    ratio: Option<f64>,
}

impl SamplingGate {
    pub fn new(ratio: Option<f64>) -> Self {
        Self { ratio }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SamplingGate
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = GateService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GateService {
            service,
            ratio: self.ratio.filter(|_| super::otel::enabled()),
        }))
    }
}

pub struct GateService<S> {
    service: S,
    /// `None`: no gate (not exporting, or the SDK samples).
    ratio: Option<f64>,
}

impl<S, B> Service<ServiceRequest> for GateService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Gated<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let Some(ratio) = self.ratio else {
            return Gated::new(self.service.call(req), false);
        };
        let parent = super::otel::extract(req.headers());
        let remote = parent.span().span_context().clone();
        let sampled = if remote.is_valid() {
            remote.is_sampled()
        } else {
            rand::random::<f64>() < ratio
        };
        if sampled {
            req.extensions_mut().insert(super::root_span::Parent(parent));
        }
        let fut = with_flag(!sampled, || self.service.call(req));
        Gated::new(fut, !sampled)
    }
}

pin_project_lite::pin_project! {
    /// A request's future, polled with its sampling flag set.
    pub struct Gated<F> {
        #[pin]
        inner: F,
        unsampled: bool,
    }
}

impl<F> Gated<F> {
    fn new(inner: F, unsampled: bool) -> Self {
        Self { inner, unsampled }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if !*this.unsampled {
            return this.inner.poll(cx);
        }
        with_flag(true, || this.inner.poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_set_only_inside_and_restored() {
        assert!(!UNSAMPLED.get());
        with_flag(true, || {
            assert!(UNSAMPLED.get());
            with_flag(false, || assert!(!UNSAMPLED.get()));
            assert!(UNSAMPLED.get());
        });
        assert!(!UNSAMPLED.get());
    }
}
