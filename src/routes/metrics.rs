//! `GET /metrics`: Prometheus text exposition of this process's metrics
//! (docs/observability.md). Unauthenticated, like `/healthz`: expose it to the scraper only.

use actix_web::HttpResponse;

pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(crate::telemetry::metrics::render())
}
