//! `POST /oauth2/token`: the `authorization_code` grant (RFC 6749 §4.1.3, §5) with PKCE
//! (RFC 7636 §4.5), and the `refresh_token` grant (RFC 6749 §6). Client authentication as at
//! PAR; the code's client, `redirect_uri`, PKCE verifier and DPoP key are checked by the
//! store before the code is consumed, in the same atomic step that takes it (one winner
//! across replicas), so a failed attempt burns nothing; a real replay revokes the tokens
//! already issued from the code (RFC 6749 §4.1.2, RFC 9700 §4.2.4). Rules in
//! [`crate::oauth::token`] and [`crate::oauth::refresh`].
//!
//! DPoP (RFC 9449 §5): a request with a valid proof gets an access token bound to the
//! proof's key (`cnf.jkt`, `token_type: DPoP`); a code bound at PAR (`dpop_jkt`, §10) needs
//! a proof by that key; a client registered with `dpop_bound_access_tokens` must send one.
//!
//! Refresh tokens rotate on every use; a rotated token presented again revokes the whole
//! grant (RFC 9700 §4.14.2). A public client's refresh token is bound to its DPoP key.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::support::dpop::{self, Endpoint};
use super::support::errors::{DPOP_NONCE, JsonError};
use super::support::{client_auth, limits};
use crate::crypto::random_token;
use crate::limits::Endpoint as Limited;
use crate::oauth::OAuthError;
use crate::oauth::client::Client;
use crate::oauth::dpop::TOKEN_TYPE as DPOP_TOKEN_TYPE;
use crate::oauth::refresh::{self, RefreshRecord, RefreshRequest};
use crate::oauth::token::{self, ACCESS_TOKEN_TYP, CodeRequest, Grant, GrantType, TokenResponse};
use crate::state::AppState;
use crate::store::{CodeCheck, Redemption, Refresh, RefreshCheck};
use crate::telemetry::metrics;

/// A token request, parsed (syntax first: a malformed request consumes nothing).
enum Parsed<'a> {
    Code(CodeRequest<'a>),
    Refresh(RefreshRequest<'a>),
}

/// What one token response carries.
struct Issued {
    access_token: String,
    id_token: Option<String>,
    refresh_token: Option<String>,
    scope: Vec<String>,
    /// RFC 9396 §7: the granted authorization details (compact JSON array).
    authorization_details: Option<String>,
}

#[tracing::instrument(
    name = "token.exchange",
    skip_all,
    fields(client_id = tracing::field::Empty, flow_id = tracing::field::Empty, grant_id = tracing::field::Empty, grant_type = tracing::field::Empty)
)]
pub async fn exchange(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, JsonError> {
    let (params, client) = client_auth::authenticated_form(&req, body, &state).await?;
    limits::check(&state, &req, Limited::Token, Some(&client.id)).await?;
    client_auth::same_client(&params, &client)?;
    let parsed = match token::grant_type(&params)? {
        GrantType::AuthorizationCode => Parsed::Code(token::parse_code_request(&params)?),
        // RFC 6749 §5.2: a grant type the client is not registered for.
        GrantType::RefreshToken
            if !client
                .grant_types
                .iter()
                .any(|g| g == refresh::GRANT_REFRESH_TOKEN) =>
        {
            return Err(OAuthError::unauthorized_client(
                "this client is not registered for the refresh_token grant",
            )
            .into());
        }
        GrantType::RefreshToken => Parsed::Refresh(refresh::parse_request(&params)?),
    };
    // The proof is checked (and its jti spent) before the code or refresh token: a refused
    // proof leaves them for the retry that carries the server's nonce.
    let proof = dpop::check(&req, &state, Endpoint::Token, client.require_dpop_nonce, None).await?;
    // Spent before the code or refresh token is touched (not sent with it): a replayed
    // proof must not consume them.
    dpop::spend(&state, Endpoint::Token, proof.as_ref()).await?;
    if proof.is_none() && client.dpop_bound_access_tokens {
        dpop::refused(Endpoint::Token, "missing");
        return Err(OAuthError::invalid_dpop_proof("this client must send a DPoP proof").into());
    }
    let proof_jkt = proof.map(|p| p.jkt);
    let issued = match parsed {
        Parsed::Code(request) => {
            tracing::Span::current().record("grant_type", "authorization_code");
            redeem_code(&req, &state, &client, &request, proof_jkt.as_deref()).await?
        }
        Parsed::Refresh(request) => {
            tracing::Span::current().record("grant_type", "refresh_token");
            refresh_grant(&state, &client, &request, proof_jkt.as_deref()).await?
        }
    };
    metrics::tokens_issued(&client.id);
    // RFC 6749 §5.1: no caching of responses that carry tokens.
    let mut response = HttpResponse::Ok();
    if let Some(nonce) = dpop::fresh_nonce(&state, client.require_dpop_nonce) {
        response.insert_header((DPOP_NONCE, nonce));
    }
    Ok(response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            access_token: issued.access_token,
            token_type: if proof_jkt.is_some() {
                DPOP_TOKEN_TYPE
            } else {
                "Bearer"
            },
            expires_in: state.lifetimes.access_token.as_secs(),
            scope: issued.scope.join(" "),
            id_token: issued.id_token,
            refresh_token: issued.refresh_token,
            authorization_details: issued
                .authorization_details
                .as_deref()
                .and_then(crate::oauth::authorization_details::json),
        }))
}

/// The `authorization_code` grant: the code redeemed, an access token, an ID token for
/// `openid`, and a refresh token when the client may have one.
async fn redeem_code(
    req: &HttpRequest,
    state: &AppState,
    client: &Client,
    request: &CodeRequest<'_>,
    proof_jkt: Option<&str>,
) -> Result<Issued, JsonError> {
    let check = CodeCheck {
        client_id: &client.id,
        redirect_uri: request.redirect_uri,
        code_challenge: request.challenge()?,
        dpop_jkt: proof_jkt,
    };
    // Marker lifetime: tokens from this code live at most the access-token lifetime.
    let record = match state
        .store
        .redeem_code(request.code, &check, state.lifetimes.access_token)
        .await?
    {
        Redemption::Redeemed(record) => record,
        Redemption::Replayed { grant_id } => {
            return Err(replayed(state, &grant_id, &client.id).await?.into());
        }
        Redemption::Mismatch(field) => {
            let refusal = if field == "dpop_jkt" {
                dpop::refused(Endpoint::Token, "key_mismatch");
                token::dpop_mismatch(proof_jkt.is_some())
            } else {
                token::mismatch(&field, request)
            };
            tracing::info!(reason = %refusal.description, "code redemption refused");
            return Err(refusal.into());
        }
        Redemption::Unknown => return Err(token::unknown_code().into()),
    };
    tracing::Span::current().record("grant_id", record.grant_id.as_str());
    // One login, one trace: link this step to the push, and label the request span.
    crate::telemetry::flow::step(req, &client.id, &record.flow_id, record.trace.as_deref());
    let user = state
        .users
        .by_sub(&record.sub)
        .ok_or_else(|| OAuthError::invalid_grant("the user of this code no longer exists"))?;

    let now = crate::clock::now();
    let access_token = access_token(state, (&*record).into(), now, proof_jkt)?;
    let id_token = if token::has_openid(&record.scope) {
        let claims = token::id_token_claims(
            &record,
            user.claims_for(&record.scope, &record.claims.id_token),
            &state.endpoints.issuer,
            now,
            state.lifetimes.id_token.as_secs(),
            token::at_hash(&access_token, state.signing_keys.active().alg),
        );
        Some(sign(state, Some("JWT"), &claims)?)
    } else {
        None
    };
    let refresh_token = if refresh::may_issue(client, &record.scope, proof_jkt) {
        let token = refresh::new_token(&record.grant_id);
        let lifetimes = &state.lifetimes;
        let grant = RefreshRecord {
            client_id: record.client_id.clone(),
            sub: record.sub.clone(),
            scope: record.scope.clone(),
            auth_time: record.auth_time,
            resource: record.resource.clone(),
            userinfo_claims: record.claims.userinfo.clone(),
            authorization_details: record.authorization_details.clone(),
            dpop_jkt: refresh::binding(client, proof_jkt),
            expires_at: now + lifetimes.refresh_absolute.as_secs(),
        };
        let lifetime = lifetimes.refresh_idle.min(lifetimes.refresh_absolute);
        state
            .store
            .start_refresh(&record.grant_id, &token, &grant, lifetime)
            .await?;
        Some(token)
    } else {
        None
    };
    tracing::info!(
        refresh_token = refresh_token.is_some(),
        "authorization code redeemed"
    );
    Ok(Issued {
        access_token,
        id_token,
        refresh_token,
        scope: record.scope.clone(),
        authorization_details: record.authorization_details.clone(),
    })
}

/// The `refresh_token` grant (RFC 6749 §6): the presented token rotated (RFC 9700
/// §4.14.2), a new access token for the grant's scope or a narrower one. No ID token.
async fn refresh_grant(
    state: &AppState,
    client: &Client,
    request: &RefreshRequest<'_>,
    proof_jkt: Option<&str>,
) -> Result<Issued, JsonError> {
    let Some(grant_id) = refresh::grant_of(request.refresh_token) else {
        return Err(refresh::unknown_token().into());
    };
    tracing::Span::current().record("grant_id", grant_id);
    // A narrower scope is checked against the grant before the token rotates: a refused
    // request must not cost the client its refresh token.
    if request.scope.is_some() {
        let Some(record) = state
            .store
            .refresh_record(grant_id, request.refresh_token)
            .await?
        else {
            return Err(refresh::unknown_token().into());
        };
        refresh::narrowed_scope(&record.scope, request.scope)?;
    }
    // Without rotation the presented token stays current: the script then only restarts
    // its idle lifetime, and a retry with it succeeds (FAPI 2.0 §5.3.2.1).
    let new_token = if state.lifetimes.refresh_rotation {
        refresh::new_token(grant_id)
    } else {
        request.refresh_token.to_owned()
    };
    let now = crate::clock::now();
    let check = RefreshCheck {
        client_id: &client.id,
        dpop_jkt: proof_jkt,
        idle_lifetime: state.lifetimes.refresh_idle,
        revoked_lifetime: state.lifetimes.access_token,
        now,
    };
    let record = match state
        .store
        .rotate_refresh(grant_id, request.refresh_token, &new_token, &check)
        .await?
    {
        Refresh::Rotated(record) => record,
        Refresh::Reused => {
            metrics::refresh_reused(&client.id);
            tracing::warn!("rotated refresh token presented again: grant revoked");
            return Err(refresh::unknown_token().into());
        }
        Refresh::KeyMismatch => {
            dpop::refused(Endpoint::Token, "key_mismatch");
            return Err(OAuthError::invalid_grant(
                "the refresh token is bound to a DPoP key: a proof by that key is required",
            )
            .into());
        }
        Refresh::Unknown => return Err(refresh::unknown_token().into()),
    };
    metrics::refresh_rotated(&client.id);
    if state.users.by_sub(&record.sub).is_none() {
        return Err(OAuthError::invalid_grant("the user of this grant no longer exists").into());
    }
    let scope = refresh::narrowed_scope(&record.scope, request.scope)?;
    let grant = Grant {
        client_id: &record.client_id,
        sub: &record.sub,
        scope: &scope,
        auth_time: record.auth_time,
        resource: &record.resource,
        grant_id,
        userinfo_claims: &record.userinfo_claims,
        authorization_details: record.authorization_details.as_deref(),
    };
    let access_token = access_token(state, grant, now, proof_jkt)?;
    tracing::info!("refresh token rotated");
    Ok(Issued {
        access_token,
        id_token: None,
        refresh_token: Some(new_token),
        scope,
        authorization_details: record.authorization_details.clone(),
    })
}

/// A signed access token (RFC 9068), bound to `proof_jkt` when the request had a proof.
fn access_token(
    state: &AppState,
    grant: Grant<'_>,
    now: u64,
    proof_jkt: Option<&str>,
) -> Result<String, OAuthError> {
    let claims = token::access_token_claims(
        grant,
        &state.endpoints.issuer,
        &state.endpoints.userinfo,
        now,
        state.lifetimes.access_token.as_secs(),
        random_token(16),
        proof_jkt.map(str::to_owned),
    );
    sign(state, Some(ACCESS_TOKEN_TYP), &claims)
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
    metrics::code_replayed(client_id);
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
