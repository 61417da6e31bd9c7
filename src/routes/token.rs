//! `POST /oauth2/token`: the `authorization_code` grant (RFC 6749 §4.1.3, §5) with PKCE
//! (RFC 7636 §4.5). Client authentication as at PAR; the code's client, `redirect_uri` and
//! PKCE verifier are checked by the store before the code is consumed, in the same atomic
//! step that takes it (one winner across replicas), so a failed attempt burns nothing; a
//! real replay revokes the tokens already issued from the code (RFC 6749 §4.1.2, RFC 9700
//! §4.2.4). Rules in [`crate::oauth::token`].

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::support::errors::JsonError;
use super::support::{client_auth, limits};
use crate::crypto::random_token;
use crate::limits::Endpoint;
use crate::oauth::OAuthError;
use crate::oauth::token::{self, ACCESS_TOKEN_TYP, TokenResponse};
use crate::state::AppState;
use crate::store::{CodeCheck, Redemption};

#[tracing::instrument(
    name = "token.exchange",
    skip_all,
    fields(client_id = tracing::field::Empty, flow_id = tracing::field::Empty, grant_id = tracing::field::Empty)
)]
pub async fn exchange(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, JsonError> {
    let (params, client) = client_auth::authenticated_form(&req, body, &state).await?;
    limits::check(&state, &req, Endpoint::Token, Some(&client.id)).await?;
    let span = tracing::Span::current();
    // RFC 6749 §3.2.1: a body client_id naming another client than the credentials is a
    // client-authentication failure, not a hint to ignore.
    if params.get("client_id").is_some_and(|id| id != client.id) {
        return Err(OAuthError::invalid_client("client_id does not match the authenticated client").into());
    }
    // Syntax first: a malformed request does not consume the code.
    let request = token::parse_code_request(&params)?;

    let check = CodeCheck {
        client_id: &client.id,
        redirect_uri: request.redirect_uri,
        code_challenge: request.challenge()?,
    };
    // Marker lifetime: tokens from this code live at most the access-token lifetime.
    let record = match state
        .store
        .redeem_code(request.code, &check, state.lifetimes.access_token)
        .await?
    {
        Redemption::Redeemed(record) => record,
        Redemption::Replayed { grant_id } => {
            return Err(replayed(&state, &grant_id, &client.id).await?.into());
        }
        Redemption::Mismatch(field) => {
            let refusal = token::mismatch(&field, &request);
            tracing::info!(reason = %refusal.description, "code redemption refused");
            return Err(refusal.into());
        }
        Redemption::Unknown => return Err(token::unknown_code().into()),
    };
    span.record("grant_id", record.grant_id.as_str());
    // One login, one trace: link this step to the push, and label the request span.
    crate::telemetry::flow::step(&req, &client.id, &record.flow_id, record.trace.as_deref());
    let user = state
        .users
        .by_sub(&record.sub)
        .ok_or_else(|| OAuthError::invalid_grant("the user of this code no longer exists"))?;

    let now = crate::clock::now();
    let at_claims = token::access_token_claims(
        &record,
        &state.endpoints.issuer,
        &state.endpoints.userinfo,
        now,
        state.lifetimes.access_token.as_secs(),
        random_token(16),
    );
    let access_token = sign(&state, Some(ACCESS_TOKEN_TYP), &at_claims)?;
    let id_token = if token::has_openid(&record.scope) {
        let claims = token::id_token_claims(
            &record,
            user.claims_for(&record.scope, &record.claims.id_token),
            &state.endpoints.issuer,
            now,
            state.lifetimes.id_token.as_secs(),
            token::at_hash(&access_token, state.signing_keys.active().alg),
        );
        Some(sign(&state, Some("JWT"), &claims)?)
    } else {
        None
    };
    crate::telemetry::metrics::tokens_issued(&client.id);
    tracing::info!("authorization code redeemed");
    // RFC 6749 §5.1: no caching of responses that carry tokens.
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: state.lifetimes.access_token.as_secs(),
            scope: record.scope.join(" "),
            id_token,
            authorization_details: record
                .authorization_details
                .as_deref()
                .and_then(crate::oauth::authorization_details::json),
        }))
}

/// The code's own client presented a code it redeemed before, every check passing: revoke
/// the grant so the tokens issued at the first redemption stop working (RFC 6749 §4.1.2
/// SHOULD). The client gets the same `invalid_grant` as for an unknown code.
async fn replayed(state: &AppState, grant_id: &str, client_id: &str) -> Result<OAuthError, JsonError> {
    state
        .store
        .revoke_grant(grant_id, state.lifetimes.access_token)
        .await?;
    tracing::Span::current().record("grant_id", grant_id);
    crate::telemetry::metrics::code_replayed(client_id);
    tracing::warn!("authorization code replayed: grant revoked");
    Ok(token::unknown_code())
}

#[tracing::instrument(name = "token.sign", skip_all, fields(typ = typ.unwrap_or("")))]
fn sign<T: serde::Serialize>(state: &AppState, typ: Option<&str>, claims: &T) -> Result<String, OAuthError> {
    state.signing_keys.sign(typ, claims).map_err(|e| {
        tracing::error!(error = %e, "token signing failed");
        OAuthError::internal()
    })
}
