//! `GET`/`POST /oauth2/userinfo` (OIDC Core §5.3): the user's claims for the scopes of a
//! valid access token.
//!
//! The token is read from the `Authorization` header only: `Bearer` (RFC 6750 §2.1), or
//! `DPoP` with a proof bound to it (RFC 9449 §7: `ath`, and the proof's key is the token's
//! `cnf.jkt`). A DPoP-bound token presented as `Bearer` is refused (§7.2). The form
//! body (§2.2) and query (§2.3) methods are not supported: FAPI 2.0 §5.3.4 forbids the
//! query, and the header keeps tokens out of bodies and logs. Verification: signature by one
//! of our keys, `typ` `at+jwt` (RFC 9068 §4), `iss`, `exp`, `aud` contains this endpoint,
//! the `openid` scope, and the token's grant not revoked by a code replay.
//! Errors per RFC 6750 §3, and RFC 9449 §7.1 (401 with a `DPoP` challenge) for DPoP.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use jsonwebtoken::Validation;

use super::support::dpop::{self, Endpoint};
use super::support::errors::{DPOP_NONCE, JsonError};
use crate::oauth::OAuthError;
use crate::oauth::token::{ACCESS_TOKEN_TYP, VerifiedAccessToken, has_openid};
use crate::state::AppState;

#[tracing::instrument(name = "userinfo", skip_all, fields(client_id = tracing::field::Empty, grant_id = tracing::field::Empty))]
pub async fn userinfo(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, JsonError> {
    let Some(Presented { token, dpop_scheme }) = access_token(&req)? else {
        // RFC 6750 §3.1, RFC 9449 §7.1: no credentials at all → challenges without an error
        // code, one per scheme.
        return Ok(HttpResponse::Unauthorized()
            .append_header((header::WWW_AUTHENTICATE, "Bearer realm=\"par-server\""))
            .append_header((
                header::WWW_AUTHENTICATE,
                format!("DPoP algs=\"{}\"", state.dpop_algs),
            ))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish());
    };
    // Errors of a DPoP presentation carry the DPoP challenge.
    let answer = |e: JsonError| {
        if dpop_scheme {
            e.at_dpop_resource(&state.dpop_algs)
        } else {
            e
        }
    };
    let (claims, nonce) = verified(&req, &state, token, dpop_scheme).await.map_err(answer)?;
    let scopes = claims.scopes();
    if !has_openid(&scopes) {
        return Err(answer(
            OAuthError::insufficient_scope("the access token lacks the openid scope").into(),
        ));
    }
    let user = state
        .users
        .by_sub(&claims.sub)
        .ok_or_else(|| answer(OAuthError::invalid_token("the user of this token no longer exists").into()))?;
    let mut response = HttpResponse::Ok();
    if let Some(nonce) = nonce {
        response.insert_header((DPOP_NONCE, nonce));
    }
    Ok(response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(user.claims_for(&scopes, &claims.userinfo_claims)))
}

/// The access token verified, and for a DPoP presentation its proof (RFC 9449 §7.1), with
/// the fresh nonce to return when the token's client must use nonces.
async fn verified(
    req: &HttpRequest,
    state: &AppState,
    token: &str,
    dpop_scheme: bool,
) -> Result<(VerifiedAccessToken, Option<String>), JsonError> {
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
    // The proof first (pure), so that its jti is spent in the same round trip as the
    // revocation check.
    let (proof, require_nonce) = match (&claims.cnf, dpop_scheme) {
        (None, true) => {
            return Err(OAuthError::invalid_token("the access token is not DPoP-bound").into());
        }
        (None, false) => (None, false),
        // RFC 9449 §7.2: a bound token is never a bearer token.
        (Some(_), false) => {
            dpop::refused(Endpoint::Userinfo, "bearer_scheme");
            return Err(JsonError::from(OAuthError::invalid_token(
                "the access token is DPoP-bound: present it with the DPoP scheme and a proof",
            ))
            .at_dpop_resource(&state.dpop_algs));
        }
        (Some(cnf), true) => {
            let require_nonce = state
                .clients
                .get(&claims.client_id)
                .is_some_and(|c| c.require_dpop_nonce);
            let proof = dpop::check(req, state, Endpoint::Userinfo, require_nonce, Some(token)).await?;
            let Some(proof) = proof else {
                dpop::refused(Endpoint::Userinfo, "missing");
                return Err(OAuthError::invalid_dpop_proof("a DPoP proof is required").into());
            };
            if proof.jkt != cnf.jkt {
                dpop::refused(Endpoint::Userinfo, "key_mismatch");
                return Err(
                    OAuthError::invalid_dpop_proof("the DPoP proof's key is not the access token's").into(),
                );
            }
            (Some(proof), require_nonce)
        }
    };
    let (revoked, spent) = tokio::join!(
        state.store.access_token_revoked(&claims.gid, &claims.jti),
        dpop::spend(state, Endpoint::Userinfo, proof.as_ref()),
    );
    if revoked? {
        tracing::info!("access token of a revoked grant");
        return Err(OAuthError::invalid_token("the access token was revoked").into());
    }
    spent?;
    Ok((claims, dpop::fresh_nonce(state, require_nonce)))
}

/// An access token as presented, and whether with the DPoP scheme.
struct Presented<'a> {
    token: &'a str,
    dpop_scheme: bool,
}

/// `Authorization: Bearer <b64token>` (RFC 6750 §2.1) or `Authorization: DPoP <b64token>`
/// (RFC 9449 §7.1); schemes are case-insensitive. `None` when the request carries neither.
fn access_token(req: &HttpRequest) -> Result<Option<Presented<'_>>, OAuthError> {
    // Two Authorization headers are refused (`client_auth::one_authorization`).
    let Some(value) = super::support::client_auth::one_authorization(req)? else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| OAuthError::invalid_token("malformed Authorization header"))?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Ok(None);
    };
    let dpop_scheme = scheme.eq_ignore_ascii_case("DPoP");
    if !dpop_scheme && !scheme.eq_ignore_ascii_case("Bearer") {
        return Ok(None);
    }
    let token = token.trim();
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || !token.chars().all(b64token) {
        return Err(OAuthError::invalid_token("malformed access token"));
    }
    Ok(Some(Presented { token, dpop_scheme }))
}
