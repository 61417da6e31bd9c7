//! `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`:
//! the metadata document built once at start.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::state::AppState;

pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .content_type("application/json")
        .body(state.metadata.clone())
}
