//! `/oauth2/authorize`: the front channel, by `GET`, by `POST` with a form body (OIDC Core
//! §3.1.2.1: the authorization endpoint MUST support both) and by `HEAD`. With `client_id` +
//! `request_uri` (RFC 9126 §4) the pushed request is visited: any number of visits from any
//! browser show the login (or, for a signed-in browser, issue the code) until one of them
//! reaches the point of authorization (FAPI 2.0 §5.3.2.2, note). A plain authorization
//! request is accepted only for clients that do not require PAR (RFC 9126 §5–6), and is
//! then stored exactly like a push so every later step is the same.
//!
//! `HEAD` and prefetches (`Sec-Purpose: prefetch`, link scanners' and browsers' speculative
//! loads) change nothing: no cookie, no extension of the request's life, no SSO decision.

use std::sync::Arc;

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::support::errors::BrowserError;
use super::support::form;
use super::support::interaction::{Interaction, load_session};
use super::support::{binding, limits};
use crate::limits::Endpoint;
use crate::oauth::OAuthError;
use crate::oauth::authorization::AuthorizationRequest;
use crate::oauth::client::Client;
use crate::oauth::interaction::decide;
use crate::oauth::params::Params;
use crate::oauth::request_object;
use crate::oauth::request_uri::Reference;
use crate::state::AppState;

#[tracing::instrument(name = "authorize", skip_all, fields(client_id = tracing::field::Empty, flow_id = tracing::field::Empty))]
pub async fn authorize(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, BrowserError> {
    if is_prefetch(&req) {
        return Ok(prefetch_declined());
    }
    limits::check(&state, &req, Endpoint::Authorize, None).await?;
    let params = if req.method() == Method::POST {
        form::read(&req, body, &state.body)
            .await
            .map_err(BrowserError::from)?
    } else {
        Params::parse(req.query_string().as_bytes())?
    };
    let client_id = params
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
    let client = state
        .clients
        .get(client_id)
        .cloned()
        .ok_or_else(|| OAuthError::invalid_request("unknown client_id"))?;
    crate::telemetry::flow::note_client(&req, &client.id);
    if req.method() == Method::HEAD {
        return look(&req, &state, client, &params).await;
    }

    let secure = state.secure_cookies;
    let (browser_id, new_cookie) = match binding::browser_id(&req, secure) {
        Some(id) => (id, None),
        None => {
            let (id, cookie) = binding::new_browser(secure);
            (id, Some(cookie))
        }
    };
    let visit = async {
        match params.get("request_uri") {
            // RFC 9126 §4: only the pushed parameters count; anything else is ignored.
            Some(request_uri) => Interaction::visit(&state, client, request_uri, browser_id, true).await,
            None => plain_request(&state, client, &params, browser_id).await,
        }
    };
    // The visit and the SSO session lookup are independent: one round trip for both.
    let (interaction, session) = tokio::join!(visit, load_session(&state, binding::sso_cookie(&req, secure)));
    let (interaction, session) = (interaction?, session?);
    interaction.trace_step(&req);
    let next = decide(
        &interaction.request,
        &interaction.client,
        session,
        crate::clock::now(),
    );
    let mut res = interaction.proceed(&state, next).await?;
    if let Some(cookie) = new_cookie {
        let _ = res.add_cookie(&cookie);
    }
    Ok(res)
}

/// A speculative load (`Sec-Purpose: prefetch`, or the older `Purpose` / `X-Moz` headers).
fn is_prefetch(req: &HttpRequest) -> bool {
    ["sec-purpose", "purpose", "x-moz"].iter().any(|name| {
        req.headers()
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("prefetch"))
    })
}

/// Prefetches are declined with `503` and `no-store`, the common practice browsers honour:
/// the response is dropped and the user's real navigation loads the page.
fn prefetch_declined() -> HttpResponse {
    HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// `HEAD`: whether a `GET` would show a usable request, without a write of any kind.
async fn look(
    req: &HttpRequest,
    state: &AppState,
    client: Arc<Client>,
    params: &Params,
) -> Result<HttpResponse, BrowserError> {
    match params.get("request_uri") {
        Some(request_uri) => {
            let browser_id = binding::browser_id(req, state.secure_cookies).unwrap_or_default();
            Interaction::visit(state, client, request_uri, browser_id, false).await?;
        }
        None => {
            refuse_plain_if_par_required(&client)?;
            parse_plain(state, &client, params)?;
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// RFC 9126 §4 / FAPI 2.0 §5.3.2.2: a plain request is refused when PAR is required,
/// globally or for the client.
fn refuse_plain_if_par_required(client: &Client) -> Result<(), BrowserError> {
    if client.require_par {
        return Err(
            OAuthError::invalid_request("this client must use pushed authorization requests (PAR)").into(),
        );
    }
    Ok(())
}

/// A plain request's parameters, from its signed request object when it has one (RFC 9101
/// §5); errors before the redirect URI is proven stay on a local page.
fn parse_plain(
    state: &AppState,
    client: &Client,
    params: &Params,
) -> Result<AuthorizationRequest, BrowserError> {
    let params = request_object::authorization_parameters(
        params,
        client,
        &state.endpoints.issuer,
        &state.par.request_objects,
        crate::clock::now(),
    )?;
    AuthorizationRequest::parse(&params, client)
        .map_err(|r| BrowserError::rejected(r, &state.endpoints.issuer))
}

/// A front-channel authorization request without PAR.
async fn plain_request(
    state: &AppState,
    client: Arc<Client>,
    params: &Params,
    browser_id: String,
) -> Result<Interaction, BrowserError> {
    refuse_plain_if_par_required(&client)?;
    let mut request = parse_plain(state, &client, params)?;
    request.flow_id = uuid::Uuid::now_v7().simple().to_string();
    let reference = Reference::generate();
    state
        .store
        .push_request(&reference, &request, state.par.lifetime)
        .await?;
    Interaction::visit(
        state,
        client,
        &reference.to_request_uri(&state.par.prefix),
        browser_id,
        true,
    )
    .await
}
