//! `POST /oauth2/login`: the credentials of the login form. The form is checked (browser
//! binding, CSRF) and the claimed interaction resumed before the password is verified
//! (argon2id off the async workers; an unknown user costs the same); then the decision of
//! [`after_login`] — consent or code.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::support::errors::BrowserError;
use super::support::interaction::{Interaction, start_session};
use super::support::limits;
use crate::limits::Endpoint;
use crate::oauth::OAuthError;
use crate::oauth::interaction::{Session, after_login};
use crate::password::Refused;
use crate::state::AppState;

const BAD_CREDENTIALS: &str = "Incorrect username or password.";

#[tracing::instrument(name = "login", skip_all, fields(client_id = tracing::field::Empty, flow_id = tracing::field::Empty, outcome = tracing::field::Empty))]
pub async fn login(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, BrowserError> {
    let (params, interaction) = Interaction::resume(&req, body, &state).await?;
    let span = tracing::Span::current();
    crate::telemetry::flow::note_client(&req, &interaction.client.id);
    let username = params.get("username").unwrap_or("");
    let address = limits::source(&state, &req);
    // The address's rate and the password back-off: one round trip, before any argon2 work.
    let (rate, backoff) = tokio::join!(
        limits::check(&state, &req, Endpoint::Login, None),
        limits::password_wait(&state, username, address.as_deref())
    );
    rate?;
    if let Some(wait) = backoff? {
        let secs = wait.as_millis().div_ceil(1000).max(1) as u64;
        span.record("outcome", "backoff");
        crate::telemetry::metrics::login(&interaction.client.id, "backoff");
        tracing::info!(wait_secs = secs, "login refused: password back-off");
        let message = format!("Too many sign-in attempts. Wait {secs} seconds, then try again.");
        let mut res = interaction.login_page(&state, Some(&message), username)?;
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Ok(res);
    }
    let user = state.users.by_username(username).cloned();
    let phc = user.as_ref().map(|u| u.password_hash.expose().to_owned());
    let password = params.get("password").unwrap_or("").to_owned();
    let verified = match state.passwords.verify(password, phc).await {
        Ok(verified) => verified,
        Err(Refused::Busy) => {
            crate::telemetry::metrics::password_check("refused");
            tracing::warn!("password check refused: the queue is full");
            return Err(OAuthError::temporarily_unavailable(
                "too many sign-ins are being checked right now; wait a moment and submit the form again",
            )
            .into());
        }
        Err(Refused::Stopped) => return Err(BrowserError::internal()),
    };
    let outcome = if user.is_some() && verified {
        "ok"
    } else {
        "bad_credentials"
    };
    span.record("outcome", outcome);
    crate::telemetry::metrics::login(&interaction.client.id, outcome);
    let Some(user) = user.filter(|_| verified) else {
        tracing::info!("login failed");
        limits::password_failed(&state, username, address.as_deref()).await?;
        return interaction.login_page(&state, Some(BAD_CREDENTIALS), username);
    };
    let session = Session {
        sub: user.sub.clone(),
        auth_time: crate::clock::now(),
    };
    let (sso, ()) = tokio::join!(
        start_session(&state, &session),
        limits::password_succeeded(&state, username, address.as_deref())
    );
    let sso = sso?;
    let next = after_login(&interaction.request, &interaction.client, session);
    let mut res = interaction.proceed(&state, next).await?;
    if let Some(cookie) = sso {
        let _ = res.add_cookie(&cookie);
    }
    Ok(res)
}
