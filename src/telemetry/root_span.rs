//! The per-request root span (OpenTelemetry HTTP server semantic conventions), the one log
//! line per request, and the HTTP metrics.
//!
//! The span records the route pattern and the path, never the query string:
//! `/authorize?request_uri=…` must not put a live reference in logs or traces. An incoming
//! W3C `traceparent` becomes the span's parent. tracing-actix-web's `opentelemetry_0_*`
//! features only do that for its default builder, so this builder extracts the context with
//! the app's own propagator (one OpenTelemetry version in the tree: see
//! `scripts/check-otel-versions.sh`).

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::RootSpanBuilder;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::metrics;

pub struct RootSpan;

/// The caller's trace context, extracted once by the sampling gate
/// (`telemetry::sampling`) when it decided to sample, for the root span's parent.
#[derive(Clone)]
pub(super) struct Parent(pub opentelemetry::Context);

/// The root span's name; the log layer keeps only this span (`telemetry::logged`).
const NAME: &str = "http.request";

/// Whether `meta` is the per-request root span's callsite.
pub(super) fn is_root(meta: &tracing::Metadata<'_>) -> bool {
    meta.name() == NAME && meta.target() == module_path!()
}

/// A span of the root span's callsite kind, for tests of the subscriber's filters.
#[cfg(test)]
pub(super) fn test_root_span() -> Span {
    tracing::info_span!(NAME)
}

/// When the request started, for the latency in the log line and the histogram.
#[derive(Clone, Copy)]
struct Started(Instant);

impl RootSpanBuilder for RootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request.extensions_mut().insert(Started(Instant::now()));
        let route = request.match_pattern();
        let route = route.as_deref().unwrap_or("unmatched");
        let method = metrics::method_label(request.method());
        let client = request.peer_addr().map(|a| a.ip());
        let span = tracing::info_span!(
            NAME,
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method,
            http.route = route,
            url.path = request.path(),
            client.address = client.map(tracing::field::display),
            http.response.status_code = Empty,
            client_id = Empty,
            flow_id = Empty,
        );
        if super::otel::enabled() {
            // Extracted by the sampling gate when it decided; a missing or malformed
            // traceparent extracts as an empty context: a new trace.
            let parent = match request.extensions().get::<Parent>() {
                Some(p) => p.0.clone(),
                None => super::otel::extract(request.headers()),
            };
            let _ = span.set_parent(parent);
        }
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, actix_web::Error>) {
        let (status, timing) = match outcome {
            Ok(res) => {
                let req = res.request();
                let started = req.extensions().get::<Started>().copied();
                let labels = (metrics::method_label(req.method()), req.match_pattern());
                (res.response().status().as_u16(), started.map(|s| (s, labels)))
            }
            Err(e) => (e.as_response_error().status_code().as_u16(), None),
        };
        span.record("http.response.status_code", status);
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        let mut latency_ms = None;
        if let Some((started, (method, route))) = timing {
            let elapsed = started.0.elapsed();
            // Whole microseconds: `13.419`, not `13.419421000000002`.
            latency_ms = Some(elapsed.as_micros() as f64 / 1000.0);
            metrics::http_request(
                method,
                route.unwrap_or_else(|| "unmatched".into()),
                status,
                elapsed,
            );
        }
        span.in_scope(|| tracing::info!(status, latency_ms, "request"));
    }
}
