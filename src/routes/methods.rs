//! `405 Method Not Allowed` with `Allow` (RFC 9110 §15.5.6) for the endpoints' other methods.

use actix_web::HttpResponse;

use super::support::errors::JsonError;

/// PAR, token, login, consent.
pub(crate) async fn post_only() -> Result<HttpResponse, JsonError> {
    Err(JsonError::method_not_allowed("POST"))
}

/// userinfo, authorize.
pub(crate) async fn get_or_post() -> Result<HttpResponse, JsonError> {
    Err(JsonError::method_not_allowed("GET, POST"))
}
