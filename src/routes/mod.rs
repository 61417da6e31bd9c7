//! HTTP handlers: extract → call `oauth` (rules) and `store` (state) → respond. The route
//! table itself lives in `startup.rs`.

pub mod authorize;
pub mod browser;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod form;
pub mod health;
pub mod interaction;
pub mod jwks;
pub mod login;
pub mod metrics;
pub mod par;
pub mod playground;
pub mod token;
pub mod userinfo;

use actix_web::HttpResponse;

pub use error::JsonError;

/// 405 for a wrong method on a POST-only endpoint.
pub async fn post_only() -> Result<HttpResponse, JsonError> {
    Err(JsonError::method_not_allowed("POST"))
}
