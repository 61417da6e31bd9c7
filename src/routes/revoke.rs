//! `POST /oauth2/revoke`: token revocation (RFC 7009). Client authentication as at the token
//! endpoint (RFC 7009 §2.1). A refresh token revokes its whole grant: the refresh token and
//! every access token minted from it (§2.1 SHOULD). An access token is put on a deny-list by
//! its `jti` until it expires, checked at userinfo. A token that is unknown, expired, already
//! revoked or another client's changes nothing and still gets `200` (§2.2), so the endpoint
//! tells nobody which tokens exist.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use jsonwebtoken::Validation;
use serde::Deserialize;

use super::support::client_auth;
use super::support::errors::JsonError;
use crate::oauth::client::Client;
use crate::oauth::refresh;
use crate::oauth::token::ACCESS_TOKEN_TYP;
use crate::state::AppState;
use crate::telemetry::metrics;

#[tracing::instrument(name = "revoke", skip_all, fields(client_id = tracing::field::Empty, kind = tracing::field::Empty))]
pub async fn revoke(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, JsonError> {
    let (params, client) = client_auth::authenticated_form(&req, body, &state).await?;
    client_auth::same_client(&params, &client)?;
    let token = params.require("token")?;
    // §2.1: token_type_hint is only a hint; both kinds are recognised by their form.
    let kind = match refresh::grant_of(token) {
        Some(grant_id) => revoke_refresh_token(&state, &client, grant_id, token).await?,
        None => revoke_access_token(&state, &client, token).await?,
    };
    tracing::Span::current().record("kind", kind);
    metrics::revoked(&client.id, kind);
    tracing::info!(kind, "revocation request served");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// The grant of a live refresh token of this client: revoked with every token it issued.
async fn revoke_refresh_token(
    state: &AppState,
    client: &Client,
    grant_id: &str,
    token: &str,
) -> Result<&'static str, JsonError> {
    match state.store.refresh_record(grant_id, token).await? {
        Some(record) if record.client_id == client.id => {
            state
                .store
                .revoke_grant(grant_id, state.lifetimes.access_token)
                .await?;
            Ok("refresh_token")
        }
        _ => Ok("unknown"),
    }
}

#[derive(Deserialize)]
struct RevocableAccessToken {
    jti: String,
    client_id: String,
    exp: f64,
}

/// One of our unexpired access tokens issued to this client: denied until it expires.
async fn revoke_access_token(
    state: &AppState,
    client: &Client,
    token: &str,
) -> Result<&'static str, JsonError> {
    let mut validation = Validation::new(state.signing_keys.active().alg);
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.set_issuer(&[&state.endpoints.issuer]);
    validation.set_required_spec_claims(&["exp", "iss"]);
    let Ok(data) = state
        .signing_keys
        .verify::<RevocableAccessToken>(token, ACCESS_TOKEN_TYP, validation)
    else {
        return Ok("unknown");
    };
    let claims = data.claims;
    if claims.client_id != client.id {
        return Ok("unknown");
    }
    let left = (claims.exp - crate::clock::now() as f64).ceil().max(1.0) as u64;
    state
        .store
        .revoke_access_token(&claims.jti, std::time::Duration::from_secs(left))
        .await?;
    Ok("access_token")
}
