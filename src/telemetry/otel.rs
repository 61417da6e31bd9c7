//! OpenTelemetry plumbing: which exporter to build (from `telemetry.*` and the standard
//! `OTEL_*` variables), the tracer provider with its batch processor, and W3C trace-context
//! propagation.
//!
//! The batch processor runs on its own thread and takes finished spans through a bounded
//! queue (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048 by default); when the queue is full spans are
//! dropped, never waited for, so a slow or unreachable collector costs no request anything.
//! HTTP/protobuf uses the blocking reqwest client (the async one panics on the processor
//! thread, which has no Tokio runtime); gRPC gets a one-thread Tokio runtime of its own, so its channel
//! outlives the actix runtime and can still flush after the server stopped.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;

/// Whether an OpenTelemetry layer is installed in this process. Read on every request to skip
/// header extraction and context work when tracing is off.
static OTEL_ON: AtomicBool = AtomicBool::new(false);

pub(crate) fn enabled() -> bool {
    OTEL_ON.load(Ordering::Relaxed)
}

pub(super) fn set_enabled() {
    OTEL_ON.store(true, Ordering::Relaxed);
}

use crate::config::{OtlpProtocol, TelemetrySettings};

const DEFAULT_SERVICE_NAME: &str = "par-server";

/// What to export and where, resolved once at start-up. A pure function of the settings and
/// the environment (unit-tested below).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportPlan {
    /// Set from `telemetry.otlp_endpoint`; `None` leaves the exporter to read
    /// `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` itself.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    /// From `telemetry.otlp_headers`; the exporter adds `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`.
    pub headers: BTreeMap<String, String>,
    /// `Some(r)`: parent-based ratio sampler. `None`: the SDK reads `OTEL_TRACES_SAMPLER`
    /// (default parent-based always-on).
    pub sampling_ratio: Option<f64>,
    /// `None`: `OTEL_SERVICE_NAME` is set and the SDK's resource detector uses it.
    pub service_name: Option<String>,
}

impl ExportPlan {
    /// `None` when no endpoint is configured anywhere, or when `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none` say so.
    pub fn resolve(settings: &TelemetrySettings, env: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return None;
        }
        let env_endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
            || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
        if settings.otlp_endpoint.is_none() && !env_endpoint {
            return None;
        }
        let protocol = settings.otlp_protocol.unwrap_or_else(|| {
            match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL")) {
                Some(p) if p.trim() == "grpc" => OtlpProtocol::Grpc,
                _ => OtlpProtocol::HttpProtobuf,
            }
        });
        let endpoint = settings.otlp_endpoint.as_ref().map(|e| match protocol {
            OtlpProtocol::HttpProtobuf => with_traces_path(e),
            OtlpProtocol::Grpc => e.clone(),
        });
        let service_name = match &settings.service_name {
            Some(n) => Some(n.clone()),
            None if env("OTEL_SERVICE_NAME").is_some() => None,
            None => Some(DEFAULT_SERVICE_NAME.to_owned()),
        };
        Some(Self {
            endpoint,
            protocol,
            headers: settings
                .otlp_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                .collect(),
            sampling_ratio: settings.sampling_ratio,
            service_name,
        })
    }

    /// The endpoint without credentials or query, for the start-up log line.
    pub fn endpoint_for_log(&self) -> String {
        match &self.endpoint {
            Some(e) => match url::Url::parse(e) {
                Ok(u) => format!("{}://{}{}", u.scheme(), u.host_str().unwrap_or(""), port_of(&u)),
                Err(_) => "(invalid)".into(),
            },
            None => "(from OTEL_EXPORTER_OTLP_*)".into(),
        }
    }

    pub fn sampling_for_log(&self) -> String {
        match self.sampling_ratio {
            Some(r) => format!("parentbased_traceidratio {r}"),
            None => "(from OTEL_TRACES_SAMPLER, default parentbased_always_on)".into(),
        }
    }
}

fn port_of(u: &url::Url) -> String {
    u.port().map(|p| format!(":{p}")).unwrap_or_default()
}

/// An OTLP/HTTP base URL (`http://collector:4318`) gets the traces path; a URL with a path is
/// used as given.
fn with_traces_path(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(u) if u.path() == "/" || u.path().is_empty() => {
            format!("{}/v1/traces", endpoint.trim_end_matches('/'))
        }
        _ => endpoint.to_owned(),
    }
}

impl OtlpProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// The running exporter: the tracer provider, and for gRPC the runtime its channel lives on.
pub(super) struct Exporter {
    provider: SdkTracerProvider,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Exporter {
    pub(super) fn start(plan: &ExportPlan) -> anyhow::Result<Self> {
        let (exporter, runtime) = match plan.protocol {
            OtlpProtocol::HttpProtobuf => {
                let mut b = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_headers(plan.headers.clone().into_iter().collect::<HashMap<_, _>>());
                if let Some(e) = &plan.endpoint {
                    b = b.with_endpoint(e);
                }
                (b.build().context("OTLP/HTTP exporter")?, None)
            }
            OtlpProtocol::Grpc => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("otlp-grpc")
                    .enable_all()
                    .build()
                    .context("runtime for the OTLP/gRPC exporter")?;
                let exporter = {
                    let _entered = rt.enter();
                    let mut md = tonic_metadata(&plan.headers)?;
                    let mut b = opentelemetry_otlp::SpanExporter::builder().with_tonic();
                    if let Some(e) = &plan.endpoint {
                        b = b.with_endpoint(e);
                    }
                    b = b.with_metadata(std::mem::take(&mut md));
                    b.build().context("OTLP/gRPC exporter")?
                };
                (exporter, Some(rt))
            }
        };
        let mut resource = opentelemetry_sdk::Resource::builder();
        if let Some(name) = &plan.service_name {
            resource = resource.with_service_name(name.clone());
        }
        let mut provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter).build())
            .with_resource(resource.build());
        if plan.sampling_ratio.is_some() {
            // The ratio is applied before any span exists (`telemetry::sampling`); what reaches
            // the SDK is sampled already.
            provider = provider.with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
        }
        Ok(Self {
            provider: provider.build(),
            runtime,
        })
    }

    /// The `tracing` layer feeding this provider. Busy/idle times, thread, source location
    /// and target attributes are off: they cost per span and say little here.
    pub(super) fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("par-server"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_context_activation(false)
    }

    pub(super) fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            eprintln!("par-server: flushing spans: {e}");
        }
    }

    pub(super) fn shutdown(mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("par-server: stopping the span exporter: {e}");
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn tonic_metadata(headers: &BTreeMap<String, String>) -> anyhow::Result<MetadataMap> {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .with_context(|| format!("telemetry.otlp_headers: bad header name {k:?}"))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| anyhow::anyhow!("telemetry.otlp_headers.{k}: value is not a valid header"))?;
        map.insert(name, value);
    }
    Ok(MetadataMap::from_headers(map))
}

static PROPAGATOR: std::sync::LazyLock<TraceContextPropagator> =
    std::sync::LazyLock::new(TraceContextPropagator::new);

/// actix's `HeaderMap` (http 0.2) as an OpenTelemetry extractor.
struct ActixHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for ActixHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The remote parent named by `traceparent`/`tracestate`, if any (W3C Trace Context).
pub(crate) fn extract(headers: &actix_web::http::header::HeaderMap) -> opentelemetry::Context {
    PROPAGATOR.extract(&ActixHeaders(headers))
}

/// `traceparent` of a span context (`00-{trace}-{span}-{flags}`).
pub(crate) fn to_traceparent(cx: &SpanContext) -> Option<String> {
    if !cx.is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    let parent = opentelemetry::Context::new().with_remote_span_context(cx.clone());
    PROPAGATOR.inject_context(&parent, &mut carrier);
    carrier.remove("traceparent")
}

/// The span context a `traceparent` names; `None` for anything malformed.
pub(crate) fn from_traceparent(value: &str) -> Option<SpanContext> {
    // The SDK's parser accepts short ids; the W3C format has fixed widths.
    let widths: Vec<usize> = value.split('-').map(str::len).collect();
    if widths != [2, 32, 16, 2] || !value.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()) {
        return None;
    }
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_owned(), value.to_owned());
    let cx = PROPAGATOR.extract(&carrier);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        let s = TelemetrySettings::default();
        assert_eq!(ExportPlan::resolve(&s, env_of(&[])), None);
        assert_eq!(
            ExportPlan::resolve(&s, env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])),
            None
        );
        let on = TelemetrySettings {
            otlp_endpoint: Some("http://c:4318".into()),
            ..Default::default()
        };
        assert_eq!(
            ExportPlan::resolve(&on, env_of(&[("OTEL_SDK_DISABLED", "true")])),
            None
        );
        assert_eq!(
            ExportPlan::resolve(&on, env_of(&[("OTEL_TRACES_EXPORTER", "none")])),
            None
        );
    }

    #[test]
    fn config_wins_and_env_fills_in() {
        let mut headers = BTreeMap::new();
        headers.insert("x-api-key".to_owned(), Secret::new("k"));
        let s = TelemetrySettings {
            otlp_endpoint: Some("http://c:4318".into()),
            otlp_headers: headers,
            sampling_ratio: Some(0.1),
            ..Default::default()
        };
        let plan = ExportPlan::resolve(&s, env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])).unwrap();
        assert_eq!(plan.protocol, OtlpProtocol::Grpc);
        assert_eq!(plan.endpoint.as_deref(), Some("http://c:4318"));
        assert_eq!(plan.sampling_ratio, Some(0.1));
        assert_eq!(plan.service_name.as_deref(), Some("par-server"));
        assert_eq!(plan.headers["x-api-key"], "k");

        let http = TelemetrySettings {
            otlp_endpoint: Some("http://c:4318/".into()),
            ..Default::default()
        };
        let plan = ExportPlan::resolve(&http, env_of(&[("OTEL_SERVICE_NAME", "edge")])).unwrap();
        assert_eq!(plan.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(plan.endpoint.as_deref(), Some("http://c:4318/v1/traces"));
        assert_eq!(plan.service_name, None, "OTEL_SERVICE_NAME is left to the SDK");
        assert_eq!(plan.sampling_ratio, None);

        let from_env = ExportPlan::resolve(
            &TelemetrySettings::default(),
            env_of(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")]),
        )
        .unwrap();
        assert_eq!(from_env.endpoint, None, "the exporter reads the variable itself");
    }

    #[test]
    fn a_path_is_kept_and_credentials_are_not_logged() {
        assert_eq!(
            with_traces_path("http://c:4318/otlp/v1/traces"),
            "http://c:4318/otlp/v1/traces"
        );
        let plan = ExportPlan {
            endpoint: Some("https://user:pw@collector.example:443/v1/traces?k=v".into()),
            protocol: OtlpProtocol::HttpProtobuf,
            headers: BTreeMap::new(),
            sampling_ratio: None,
            service_name: None,
        };
        assert_eq!(plan.endpoint_for_log(), "https://collector.example");
    }

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = from_traceparent(tp).unwrap();
        assert!(sc.is_sampled());
        assert_eq!(to_traceparent(&sc).as_deref(), Some(tp));
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f35-00f067aa0ba902b7-01",
        ] {
            assert!(from_traceparent(bad).is_none(), "{bad}");
        }
    }
}
