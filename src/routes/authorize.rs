//! `GET /oauth2/authorize`: the front channel. With `client_id` + `request_uri` (RFC 9126
//! §4) the pushed request is claimed for this browser; a plain authorization request is
//! accepted only for clients that do not require PAR (RFC 9126 §5–6), and is then stored
//! exactly like a push so every later step is the same.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};

use super::support::errors::BrowserError;
use super::support::interaction::{Interaction, load_session};
use super::support::{binding, limits};
use crate::limits::Endpoint;
use crate::oauth::OAuthError;
use crate::oauth::authorization::AuthorizationRequest;
use crate::oauth::client::Client;
use crate::oauth::interaction::decide;
use crate::oauth::params::Params;
use crate::oauth::request_uri::Reference;
use crate::state::AppState;

#[tracing::instrument(name = "authorize", skip_all, fields(client_id = tracing::field::Empty, flow_id = tracing::field::Empty))]
pub async fn authorize(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, BrowserError> {
    limits::check(&state, &req, Endpoint::Authorize, None).await?;
    let params = Params::parse(req.query_string().as_bytes())?;
    let client_id = params
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
    let client = state
        .clients
        .get(client_id)
        .cloned()
        .ok_or_else(|| OAuthError::invalid_request("unknown client_id"))?;
    tracing::Span::current().record("client_id", client.id.as_str());

    let secure = state.secure_cookies;
    let (browser_id, new_cookie) = match binding::browser_id(&req, secure) {
        Some(id) => (id, None),
        None => {
            let (id, cookie) = binding::new_browser(secure);
            (id, Some(cookie))
        }
    };
    let claim = async {
        match params.get("request_uri") {
            // RFC 9126 §4: only the pushed parameters count; anything else on the URL is ignored.
            Some(request_uri) => Interaction::claim(&state, client, request_uri, browser_id).await,
            None => plain_request(&state, client, &params, browser_id).await,
        }
    };
    // The claim and the SSO session lookup are independent: one round trip for both.
    let (interaction, session) = tokio::join!(claim, load_session(&state, binding::sso_cookie(&req, secure)));
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

/// A front-channel authorization request without PAR.
async fn plain_request(
    state: &AppState,
    client: Arc<Client>,
    params: &Params,
    browser_id: String,
) -> Result<Interaction, BrowserError> {
    // RFC 9126 §4 / FAPI 2.0 §5.3.2.2: refused when PAR is required, globally or for the client.
    if client.require_par {
        return Err(
            OAuthError::invalid_request("this client must use pushed authorization requests (PAR)").into(),
        );
    }
    let mut request = AuthorizationRequest::parse(params, &client)
        .map_err(|r| BrowserError::rejected(r, &state.endpoints.issuer))?;
    request.flow_id = uuid::Uuid::now_v7().simple().to_string();
    let reference = Reference::generate();
    state
        .store
        .push_request(&reference, &request, state.par.lifetime)
        .await?;
    Interaction::claim(
        state,
        client,
        &reference.to_request_uri(&state.par.prefix),
        browser_id,
    )
    .await
}
