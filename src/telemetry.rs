//! Logging setup and the per-request root span. The root span records the route pattern and
//! path, never the query string: `/authorize?request_uri=…` must not put a live reference in
//! the logs.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber (JSON or human-readable). `RUST_LOG` overrides the level.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// Flushes telemetry at shutdown, after the server stopped (called from `main`). Nothing to
/// flush yet; the OpenTelemetry exporter's guard belongs here.
pub fn flush() {}

pub struct RootSpan;

impl RootSpanBuilder for RootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request.match_pattern().unwrap_or_else(|| "unmatched".into());
        tracing::info_span!(
            "http.request",
            http.method = %request.method(),
            http.route = %route,
            url.path = %request.path(),
            http.status_code = tracing::field::Empty,
            client_id = tracing::field::Empty,
            otel.kind = "server",
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, actix_web::Error>) {
        let status = match outcome {
            Ok(res) => res.response().status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        span.record("http.status_code", status);
        span.in_scope(|| tracing::info!(status, "request"));
    }
}
