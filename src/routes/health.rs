//! `GET /healthz` (the process is alive) and `GET /readyz` (it can serve: the store answers
//! and no shutdown is under way).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.draining() {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "draining"}));
    }
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            HttpResponse::ServiceUnavailable().json(json!({"status": "store unavailable"}))
        }
    }
}
