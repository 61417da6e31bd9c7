//! `GET`/`POST /oauth2/userinfo` (OIDC Core §5.3): the user's claims for the scopes of a
//! valid access token.
//!
//! The token is read from the `Authorization: Bearer` header only (RFC 6750 §2.1). The form
//! body (§2.2) and query (§2.3) methods are not supported: FAPI 2.0 §5.3.4 forbids the
//! query, and the header keeps tokens out of bodies and logs. Verification: signature by one
//! of our keys, `typ` `at+jwt` (RFC 9068 §4), `iss`, `exp`, `aud` contains this endpoint,
//! the `openid` scope, and the token's grant not revoked by a code replay.
//! Errors per RFC 6750 §3.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use jsonwebtoken::Validation;

use super::support::errors::JsonError;
use crate::oauth::OAuthError;
use crate::oauth::token::{ACCESS_TOKEN_TYP, VerifiedAccessToken, has_openid};
use crate::state::AppState;

#[tracing::instrument(name = "userinfo", skip_all, fields(client_id = tracing::field::Empty, grant_id = tracing::field::Empty))]
pub async fn userinfo(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, JsonError> {
    let Some(token) = bearer_token(&req)? else {
        // RFC 6750 §3.1: no credentials at all → a challenge without an error code.
        return Ok(HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"par-server\""))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish());
    };
    let mut validation = Validation::new(state.signing_keys.active().alg);
    validation.leeway = 0;
    validation.set_issuer(&[&state.endpoints.issuer]);
    validation.set_audience(&[&state.endpoints.userinfo]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = state
        .signing_keys
        .verify::<VerifiedAccessToken>(token, ACCESS_TOKEN_TYP, validation)
        .map_err(|e| {
            tracing::info!(reason = %e, "access token refused");
            OAuthError::invalid_token("the access token is invalid or expired")
        })?
        .claims;
    let span = tracing::Span::current();
    span.record("client_id", claims.client_id.as_str());
    span.record("grant_id", claims.gid.as_str());
    if state.store.grant_revoked(&claims.gid).await? {
        tracing::info!("access token of a revoked grant");
        return Err(OAuthError::invalid_token("the access token was revoked").into());
    }
    let scopes = claims.scopes();
    if !has_openid(&scopes) {
        return Err(OAuthError::insufficient_scope("the access token lacks the openid scope").into());
    }
    let user = state
        .users
        .by_sub(&claims.sub)
        .ok_or_else(|| OAuthError::invalid_token("the user of this token no longer exists"))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(user.claims_for(&scopes, &claims.userinfo_claims)))
}

/// `Authorization: Bearer <b64token>` (RFC 6750 §2.1; the scheme is case-insensitive).
/// `None` when the request carries no Bearer credentials at all.
fn bearer_token(req: &HttpRequest) -> Result<Option<&str>, OAuthError> {
    let Some(value) = super::support::client_auth::one_authorization(req)? else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| OAuthError::invalid_token("malformed Authorization header"))?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Ok(None);
    }
    let token = token.trim();
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || !token.chars().all(b64token) {
        return Err(OAuthError::invalid_token("malformed bearer token"));
    }
    Ok(Some(token))
}
