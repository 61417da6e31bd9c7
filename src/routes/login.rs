//! `POST /oauth2/login`: the credentials of the login form. The form is checked (browser
//! binding, CSRF) and the claimed interaction resumed before the password is verified
//! (argon2id off the async workers; an unknown user costs the same); then the decision of
//! [`after_login`] — consent or code.

use actix_web::{HttpRequest, HttpResponse, web};

use super::support::errors::BrowserError;
use super::support::interaction::{Interaction, start_session};
use crate::oauth::interaction::{Session, after_login};
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
    span.record("client_id", interaction.client.id.as_str());
    let username = params.get("username").unwrap_or("");
    let user = state.users.by_username(username).cloned();
    let phc = user.as_ref().map(|u| u.password_hash.expose().to_owned());
    let password = params.get("password").unwrap_or("").to_owned();
    let verified = crate::password::verify_off_thread(password, phc)
        .await
        .ok_or_else(BrowserError::internal)?;
    let outcome = if user.is_some() && verified {
        "ok"
    } else {
        "bad_credentials"
    };
    span.record("outcome", outcome);
    crate::telemetry::metrics::login(&interaction.client.id, outcome);
    let Some(user) = user.filter(|_| verified) else {
        tracing::info!("login failed");
        return interaction.login_page(&state, Some(BAD_CREDENTIALS), username);
    };
    let session = Session {
        sub: user.sub.clone(),
        auth_time: crate::clock::now(),
    };
    let sso = start_session(&state, &session).await?;
    let next = after_login(&interaction.request, &interaction.client, session);
    let mut res = interaction.proceed(&state, next).await?;
    if let Some(cookie) = sso {
        let _ = res.add_cookie(&cookie);
    }
    Ok(res)
}
