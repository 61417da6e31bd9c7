//! A minimal OTLP/HTTP trace receiver on loopback: `POST /v1/traces` with an
//! `ExportTraceServiceRequest` in protobuf, decoded with `opentelemetry-proto`, answered 200.
//! Used by the trace tests and, as `examples/otlp_sink.rs`, as the benchmark's sink.
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

/// One received span, flattened for assertions.
#[derive(Debug, Clone)]
pub struct SpanView {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub kind: &'static str,
    pub attrs: Vec<(String, String)>,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
    /// Everything received for the span (attributes, events, links), for secret checks.
    pub dump: String,
}

impl SpanView {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn links_to(&self, other: &SpanView) -> bool {
        self.links
            .iter()
            .any(|(t, s)| *t == other.trace_id && *s == other.span_id)
    }
}

#[derive(Clone)]
pub struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<SpanView>>>,
    pub received: Arc<AtomicU64>,
    pub requests: Arc<AtomicU64>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn value_text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn views(req: ExportTraceServiceRequest) -> Vec<SpanView> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        for ss in rs.scope_spans {
            for s in ss.spans {
                let kind = match SpanKind::try_from(s.kind) {
                    Ok(SpanKind::Server) => "server",
                    Ok(SpanKind::Client) => "client",
                    Ok(SpanKind::Internal) => "internal",
                    Ok(SpanKind::Producer) => "producer",
                    Ok(SpanKind::Consumer) => "consumer",
                    _ => "unspecified",
                };
                out.push(SpanView {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name.clone(),
                    kind,
                    attrs: s
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), value_text(&kv.value)))
                        .collect(),
                    links: s
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    dump: format!("{s:?}"),
                });
            }
        }
    }
    out
}

impl Receiver {
    /// Starts on a free loopback port, keeping every span.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0", true)
    }

    /// Starts on `addr`; with `keep = false` spans are only counted (benchmark sink).
    pub fn start_on(addr: &str, keep: bool) -> Self {
        let listener = TcpListener::bind(addr).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let r = Self {
            url,
            spans: Arc::default(),
            received: Arc::default(),
            requests: Arc::default(),
        };
        let state = r.clone();
        std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    HttpServer::new(move || {
                        let state = state.clone();
                        App::new()
                            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                            .route(
                                "/v1/traces",
                                web::post().to(move |body: web::Bytes| {
                                    let state = state.clone();
                                    async move {
                                        let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                                            return HttpResponse::BadRequest().finish();
                                        };
                                        let spans = views(req);
                                        state.requests.fetch_add(1, Ordering::Relaxed);
                                        state.received.fetch_add(spans.len() as u64, Ordering::Relaxed);
                                        if keep {
                                            state.spans.lock().unwrap().extend(spans);
                                        }
                                        HttpResponse::Ok().content_type("application/x-protobuf").finish()
                                    }
                                }),
                            )
                    })
                    .workers(1)
                    .disable_signals()
                    .listen(listener)
                    .unwrap()
                    .run()
                    .await
                    .unwrap()
                })
            })
            .unwrap();
        r
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn spans(&self) -> Vec<SpanView> {
        self.spans.lock().unwrap().clone()
    }
}
