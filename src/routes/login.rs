//! `POST /oauth2/login` (credentials) and `POST /oauth2/consent` (the user's decision).
//! Both check the CSRF token, which is bound to the browser's `HttpOnly` cookie and to the
//! pushed request, before touching the store, then resume the claimed interaction.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};

use super::browser::{self, BrowserError};
use super::form;
use super::interaction::{Interaction, page_error, start_session};
use crate::oauth::OAuthError;
use crate::oauth::interaction::Session;
use crate::oauth::params::Params;
use crate::oauth::request_uri::Reference;
use crate::state::AppState;

const BAD_CREDENTIALS: &str = "Incorrect username or password.";

/// The form fields every interaction POST carries, checked.
async fn resume(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<(Params, Interaction), BrowserError> {
    let params = form::read(req, body, state.body_limit)
        .await
        .map_err(|e| BrowserError::page(state, e.error))?;
    let browser_id = browser::browser_id(req, state).ok_or_else(|| {
        BrowserError::page(
            state,
            OAuthError::invalid_request(
                "your browser did not keep the sign-in cookie; enable cookies and start again",
            ),
        )
    })?;
    let client: Arc<_> = params
        .get("client_id")
        .and_then(|id| state.clients.get(id))
        .cloned()
        .ok_or_else(|| BrowserError::page(state, OAuthError::invalid_request("unknown client_id")))?;
    let request_uri = params
        .get("request_uri")
        .ok_or_else(|| BrowserError::page(state, OAuthError::invalid_request("request_uri is required")))?;
    let digest = Reference::parse(request_uri, &state.par.accepted_prefixes)
        .map(|r| r.digest())
        .ok_or_else(|| BrowserError::page(state, OAuthError::invalid_request_uri("unknown request_uri")))?;
    if !Interaction::csrf_matches(&browser_id, &digest, params.get("csrf_token")) {
        tracing::warn!("CSRF token missing or wrong");
        return Err(BrowserError::page(
            state,
            OAuthError::invalid_request("the form has expired or was not sent by this browser; start again"),
        ));
    }
    let interaction = Interaction::claim(state, client, request_uri, browser_id).await?;
    interaction.trace_step(req);
    Ok((params, interaction))
}

#[tracing::instrument(name = "login", skip_all, fields(client_id = tracing::field::Empty, flow_id = tracing::field::Empty, outcome = tracing::field::Empty))]
pub async fn login(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, BrowserError> {
    let (params, interaction) = resume(&req, body, &state).await?;
    let span = tracing::Span::current();
    span.record("client_id", interaction.client.id.as_str());
    let username = params.get("username").unwrap_or("").to_owned();
    let password = params.get("password").unwrap_or("").to_owned();
    let user = state.users.by_username(&username).cloned();
    let phc = user.as_ref().map(|u| u.password_hash.expose().to_owned());
    // argon2 is CPU-heavy: off the async workers, on the bounded verifier threads. Unknown
    // users cost the same (dummy hash).
    let verified = crate::password::verify_off_thread(password, phc)
        .await
        .ok_or_else(|| BrowserError::internal(&state))?;
    let Some(user) = user.filter(|_| verified) else {
        span.record("outcome", "bad_credentials");
        crate::telemetry::metrics::login(&interaction.client.id, "bad_credentials");
        tracing::info!("login failed");
        return Ok(interaction.login_page(&state, Some(BAD_CREDENTIALS), &username));
    };
    span.record("outcome", "ok");
    crate::telemetry::metrics::login(&interaction.client.id, "ok");
    let session = Session {
        sub: user.sub.clone(),
        auth_time: crate::clock::now(),
    };
    let sso = start_session(&state, &session).await?;
    let wants_consent = interaction.client.consent || interaction.request.has_prompt("consent");
    let mut res = if wants_consent {
        // A fresh login satisfies any prompt/max_age rule; only consent is left to ask.
        let json = serde_json::to_vec(&session).unwrap_or_default();
        state
            .store
            .put(
                &state.keys.par_login(&interaction.digest),
                &json,
                state.par.interaction_lifetime,
            )
            .await
            .map_err(page_error(&state))?;
        let mut request = interaction.request.clone();
        request.prompt.retain(|p| p != "login");
        request.max_age = None;
        Interaction {
            request,
            ..interaction
        }
        .proceed(&state, Some(session))
        .await?
    } else {
        interaction.issue_code(&state, &session).await?
    };
    if let Some(cookie) = sso {
        let name = browser::cookie_names(state.secure_cookies).sso;
        let _ = res.add_cookie(&browser::cookie(
            &state,
            name,
            cookie,
            Some(state.lifetimes.session),
        ));
    }
    Ok(res)
}

#[tracing::instrument(name = "consent", skip_all, fields(client_id = tracing::field::Empty, flow_id = tracing::field::Empty))]
pub async fn consent(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, BrowserError> {
    let (params, interaction) = resume(&req, body, &state).await?;
    tracing::Span::current().record("client_id", interaction.client.id.as_str());
    let pending = state
        .store
        .get(&state.keys.par_login(&interaction.digest))
        .await
        .map_err(page_error(&state))?
        .and_then(|v| serde_json::from_slice::<Session>(&v).ok())
        .ok_or_else(|| BrowserError::page(&state, OAuthError::invalid_request("sign in first")))?;
    let marker = state.keys.par_login(&interaction.digest);
    let outcome = match params.get("decision") {
        Some("allow") => interaction.issue_code(&state, &pending).await,
        Some("deny") => {
            interaction
                .fail(&state, OAuthError::access_denied("the user denied the request"))
                .await
        }
        _ => {
            return Err(BrowserError::page(
                &state,
                OAuthError::invalid_request("decision must be allow or deny"),
            ));
        }
    };
    // The consent marker has its own TTL; removing it is housekeeping.
    if let Err(e) = state.store.delete(&marker).await {
        tracing::debug!(error = %e, "could not delete the consent marker");
    }
    outcome
}

/// The login pages' stylesheet (CSP `style-src 'self'`: no inline styles).
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../assets/style.css"))
}
