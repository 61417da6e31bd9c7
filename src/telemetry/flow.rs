//! One login, one story: the push's trace context travels with the flow's records and every
//! later step links its span to it.
//!
//! A login is several HTTP requests (push, authorize, login, consent, token), often on
//! different replicas, and the browser carries no trace header between them. So at the push
//! the `traceparent` of the push's request span is stored in the pushed request
//! ([`AuthorizationRequest::trace`](crate::oauth::authorization::AuthorizationRequest)) and
//! copied into the code record at issuance; the authorize, login, consent, code-issuance and
//! token spans add a span link to it. The non-secret `flow_id` and the `client_id` are
//! recorded on the request's root span and on the step's span, so logs and traces can be
//! searched by either.
//!
//! All of this is a no-op when tracing is off: nothing is stored, nothing linked.

use actix_web::{HttpMessage, HttpRequest};
use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The request's root span (made by [`super::RootSpan`]).
fn root_span(req: &HttpRequest) -> Option<Span> {
    req.extensions()
        .get::<tracing_actix_web::RootSpan>()
        .map(|s| Span::clone(s))
}

/// `traceparent` of this request's root span, to be stored with the pushed request. `None`
/// when tracing is off or the trace was not sampled (a link to an unsampled span leads
/// nowhere, and the record stays as small as before).
pub fn push_traceparent(req: &HttpRequest) -> Option<String> {
    if !super::otel::enabled() {
        return None;
    }
    let span = root_span(req)?;
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_sampled() {
        return None;
    }
    super::otel::to_traceparent(&sc)
}

/// Set once the root span has the request's `client_id`.
struct ClientNoted;

/// Records `value` as `field` on the current (step) span, unless the current span is the
/// root span — as it is at `info` without an exporter, where step spans are not built: the
/// pretty log appends every recording, so a second one would repeat the field in the line.
fn record_on_step(root: Option<&Span>, field: &str, value: &str) {
    let current = Span::current();
    if root.is_none_or(|r| r.id() != current.id()) {
        current.record(field, value);
    }
}

/// Notes the authenticated or named client on the request's root span (once per request)
/// and on the current step's span.
pub fn note_client(req: &HttpRequest, client_id: &str) {
    let root = root_span(req);
    if let Some(r) = &root {
        note_on_root(req, r, client_id);
    }
    record_on_step(root.as_ref(), "client_id", client_id);
}

fn note_on_root(req: &HttpRequest, root: &Span, client_id: &str) {
    if req.extensions().get::<ClientNoted>().is_none() {
        root.record("client_id", client_id);
        req.extensions_mut().insert(ClientNoted);
    }
}

/// Records `client_id` and `flow_id` on the root span and `flow_id` on the current (step)
/// span (which records its own `client_id` as soon as it knows it: a field recorded twice is
/// exported twice), and links the current span to the push's span named by `trace`.
pub fn step(req: &HttpRequest, client_id: &str, flow_id: &str, trace: Option<&str>) {
    let root = root_span(req);
    if let Some(r) = &root {
        note_on_root(req, r, client_id);
        r.record("flow_id", flow_id);
    }
    record_on_step(root.as_ref(), "flow_id", flow_id);
    link_to_push(trace);
}

/// Adds a link from the current span to the push's span. For steps without the request at
/// hand (code issuance, the token endpoint): `link_to_push(code.trace.as_deref())`.
pub fn link_to_push(trace: Option<&str>) {
    if !super::otel::enabled() {
        return;
    }
    if let Some(sc) = trace.and_then(super::otel::from_traceparent) {
        Span::current().add_link_with_attributes(sc, vec![opentelemetry::KeyValue::new("par.link", "push")]);
    }
}
