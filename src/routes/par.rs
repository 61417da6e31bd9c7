//! `POST /oauth2/par`: RFC 9126 §2. Authenticate the client exactly as at the token
//! endpoint, validate the request as `/authorize` would, store it with `SET … EX … NX`
//! under the hash of a fresh reference, answer `201 {request_uri, expires_in}`.
//! Never redirects (RFC 9126 §2.3).
//!
//! DPoP (RFC 9449 §10.1): a `dpop_jkt` parameter and/or a DPoP proof binds the future code
//! to a key; with both, they must name the same key.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::support::dpop::{self, Endpoint};
use super::support::errors::{DPOP_NONCE, JsonError};
use super::support::{client_auth, limits};
use crate::oauth::OAuthError;
use crate::oauth::authorization::AuthorizationRequest;
use crate::oauth::request_object;
use crate::oauth::request_uri::Reference;
use crate::state::AppState;
use crate::telemetry;

#[derive(Serialize)]
struct PushResponse {
    request_uri: String,
    expires_in: u64,
}

#[tracing::instrument(name = "par.push", skip_all, fields(client_id = tracing::field::Empty, flow_id = tracing::field::Empty))]
pub async fn push(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, JsonError> {
    let (params, client) = client_auth::authenticated_form(&req, body, &state).await?;
    limits::check_push(&state, &req, &client).await?;
    // RFC 9126 §2.1: a request_uri in the push is forbidden.
    if params.contains("request_uri") {
        return Err(OAuthError::invalid_request("request_uri must not be pushed").into());
    }
    // RFC 9126 §3: a pushed request object carries the parameters.
    let params = request_object::authorization_parameters(
        &params,
        &client,
        &state.endpoints.issuer,
        &state.par.request_objects,
        crate::clock::now(),
    )?;
    let proof = dpop::check(&req, &state, Endpoint::Par, client.require_dpop_nonce, None).await?;
    let mut request = AuthorizationRequest::parse(&params, &client).map_err(|r| JsonError::from(r.error))?;
    if let Some(proof) = &proof {
        match &request.dpop_jkt {
            Some(jkt) if *jkt != proof.jkt => {
                dpop::refused(Endpoint::Par, "key_mismatch");
                return Err(
                    OAuthError::invalid_request("dpop_jkt does not match the key of the DPoP proof").into(),
                );
            }
            _ => request.dpop_jkt = Some(proof.jkt.clone()),
        }
    }
    request.flow_id = uuid::Uuid::now_v7().simple().to_string();
    request.trace = telemetry::flow::push_traceparent(&req);
    telemetry::flow::step(&req, &client.id, &request.flow_id, None);
    let reference = Reference::generate();
    // The proof's jti is spent in the same round trip as the push: if it was a replay, the
    // stored request is never handed out and expires unused.
    let (spent, pushed) = tokio::join!(
        dpop::spend(&state, Endpoint::Par, proof.as_ref()),
        state.store.push_request(&reference, &request, state.par.lifetime)
    );
    spent?;
    pushed?;
    telemetry::metrics::pushed(&client.id);
    let mut response = HttpResponse::Created();
    if let Some(nonce) = dpop::fresh_nonce(&state, client.require_dpop_nonce) {
        response.insert_header((DPOP_NONCE, nonce));
    }
    Ok(response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(PushResponse {
            request_uri: reference.to_request_uri(&state.par.prefix),
            expires_in: state.par.lifetime.as_secs(),
        }))
}
