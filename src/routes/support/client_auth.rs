//! Client authentication as the PAR and token endpoints do it (RFC 9126 §2): the pure rules
//! of [`crate::oauth::client_auth`] plus the one stateful check, refusing a replayed
//! `private_key_jwt` assertion `jti` across all replicas (`SET NX EX`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderValue;
use actix_web::{HttpRequest, web};

use super::errors::JsonError;
use super::form;
use crate::oauth::OAuthError;
use crate::oauth::client::Client;
use crate::oauth::client_auth;
use crate::oauth::params::Params;
use crate::state::AppState;

/// The request's `Authorization` header, if any. It is not a list (RFC 9110 §11.6.2: one
/// set of credentials): two of them are `invalid_request` (RFC 6749 §5.2, RFC 6750 §3.1)
/// rather than a guess at which one counts.
pub(crate) fn one_authorization(req: &HttpRequest) -> Result<Option<&HeaderValue>, OAuthError> {
    let mut all = req.headers().get_all(actix_web::http::header::AUTHORIZATION);
    let first = all.next();
    if all.next().is_some() {
        return Err(OAuthError::invalid_request("more than one Authorization header"));
    }
    Ok(first)
}

#[tracing::instrument(name = "client.authenticate", skip_all, fields(client_id = tracing::field::Empty, method = tracing::field::Empty))]
pub async fn authenticate(
    req: &HttpRequest,
    params: &Params,
    state: &AppState,
) -> Result<Arc<Client>, JsonError> {
    let authorization = one_authorization(req)?
        .map(|v| {
            v.to_str()
                .map_err(|_| OAuthError::invalid_client("malformed Authorization header"))
        })
        .transpose()?;
    let presented = client_auth::extract(authorization, params)?;
    let span = tracing::Span::current();
    span.record("method", presented.method().as_str());
    let authenticated = client_auth::authenticate(
        &state.clients,
        &presented,
        &state.assertion_audiences,
        crate::clock::now(),
    )
    .inspect_err(|e| {
        crate::telemetry::metrics::client_auth_failed(presented.method().as_str());
        tracing::info!(reason = %e.description, "client authentication failed");
    })?;
    crate::telemetry::flow::note_client(req, &authenticated.client.id);
    if let Some((jti, remember)) = &authenticated.replay_guard
        && !state
            .store
            .first_use_of_assertion(&authenticated.client.id, jti, Duration::from_secs(*remember))
            .await?
    {
        return Err(OAuthError::invalid_client("client_assertion was already used (jti replay)").into());
    }
    Ok(authenticated.client.clone())
}

/// RFC 6749 §3.2.1: at the token and revocation endpoints, a body `client_id` naming another
/// client than the credentials is a client-authentication failure, not a hint to ignore.
pub(crate) fn same_client(params: &Params, client: &Client) -> Result<(), OAuthError> {
    if params.get("client_id").is_some_and(|id| id != client.id) {
        return Err(OAuthError::invalid_client(
            "client_id does not match the authenticated client",
        ));
    }
    Ok(())
}

/// The first two steps of every back-channel endpoint (PAR, token): read the bounded form
/// body, authenticate the client, and note the client on the request span.
pub(crate) async fn authenticated_form(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<(Params, Arc<Client>), JsonError> {
    let params = form::read(req, body, &state.body).await?;
    let client = authenticate(req, &params, state).await?;
    crate::telemetry::flow::note_client(req, &client.id);
    Ok((params, client))
}
