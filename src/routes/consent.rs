//! `POST /oauth2/consent`: the user's decision on the consent page. Checked like the login
//! form (browser binding, CSRF), then the code is issued (`allow`) or `access_denied` is sent
//! to the client (`deny`).

use actix_web::{HttpRequest, HttpResponse, web};

use super::support::errors::BrowserError;
use super::support::interaction::Interaction;
use crate::oauth::OAuthError;
use crate::state::AppState;

#[tracing::instrument(name = "consent", skip_all, fields(client_id = tracing::field::Empty, flow_id = tracing::field::Empty))]
pub async fn consent(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, BrowserError> {
    let (params, interaction) = Interaction::resume(&req, body, &state).await?;
    crate::telemetry::flow::note_client(&req, &interaction.client.id);
    let pending = interaction
        .awaiting_consent
        .clone()
        .ok_or_else(|| OAuthError::invalid_request("sign in first"))?;
    let decision = params.get("decision");
    if !matches!(decision, Some("allow" | "deny")) {
        return Err(OAuthError::invalid_request("decision must be allow or deny").into());
    }
    if decision == Some("allow") {
        interaction.issue_code(&state, &pending).await
    } else {
        interaction
            .fail(&state, OAuthError::access_denied("the user denied the request"))
            .await
    }
}
