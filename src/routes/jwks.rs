//! `GET /oauth2/jwks`: the public signing keys (RFC 7517 §5), every configured key so that
//! tokens signed before a rotation still verify. Public members only; cacheable, and open to
//! browsers (CORS), since nothing in it is secret.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::state::AppState;

/// Relying parties may cache the set this long. A new key must be published (configured,
/// not active) at least this long before it becomes active; see `docs/tokens.md`.
pub(crate) const MAX_AGE_SECS: u64 = 300;

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={MAX_AGE_SECS}")))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .content_type("application/jwk-set+json")
        .json(state.signing_keys.jwks())
}
