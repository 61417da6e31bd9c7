//! One browser's interaction with a pushed request, from `/authorize` to the code: the steps
//! `authorize`, `login` and `consent` share. Each step visits the request in the store (a
//! visit never binds or consumes it), then acts on the decision of
//! [`crate::oauth::interaction`]. One-time use is enforced at the point of authorization
//! (FAPI 2.0 §5.3.2.2, note): the browser whose user signs in binds the request while
//! consent is asked, and code issuance takes it — one winner across replicas.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::binding;
use super::errors::BrowserError;
use super::form;
use crate::browser::{ConsentPage, InteractionForm, LoginPage};
use crate::crypto::random_token;
use crate::oauth::authorization::AuthorizationRequest;
use crate::oauth::authorization_details;
use crate::oauth::claims::RequestedClaims;
use crate::oauth::client::Client;
use crate::oauth::code::{AuthorizationCode, new_code};
use crate::oauth::interaction::{Next, Session};
use crate::oauth::params::Params;
use crate::oauth::request_uri::Reference;
use crate::oauth::{OAuthError, response};
use crate::state::AppState;
use crate::store::{Bind, Take, Visit};

/// A pushed request being visited by one browser.
pub(crate) struct Interaction {
    pub client: Arc<Client>,
    pub request: AuthorizationRequest,
    /// The user this browser signed in, when the request waits for their consent.
    pub awaiting_consent: Option<Session>,
    request_uri: String,
    reference: Reference,
    browser_id: String,
}

fn unusable_request_uri() -> BrowserError {
    BrowserError::Page(OAuthError::invalid_request_uri(
        "this sign-in link is invalid, has expired or was already used; start again from the application",
    ))
}

impl Interaction {
    /// Visits `request_uri` from `browser_id`; `extend` (not for a prefetch or `HEAD`) lets
    /// the first visit extend its life once. Unknown, expired, used, foreign-client and
    /// bound-to-another-browser references all give the same `invalid_request_uri` page: the
    /// redirect URI is not proven for an unusable reference.
    #[tracing::instrument(name = "interaction.visit", skip_all, fields(client_id = %client.id, flow_id = tracing::field::Empty))]
    pub async fn visit(
        state: &AppState,
        client: Arc<Client>,
        request_uri: &str,
        browser_id: String,
        extend: bool,
    ) -> Result<Self, BrowserError> {
        let reference =
            Reference::parse(request_uri, &state.par.accepted_prefixes).ok_or_else(unusable_request_uri)?;
        let visit = state
            .store
            .visit_request(
                &reference,
                &client.id,
                &binding::owner_of(&browser_id),
                state.par.interaction_lifetime,
                extend,
            )
            .await?;
        crate::telemetry::metrics::visit(&client.id, visit.label());
        let (request, awaiting_consent) = match visit {
            Visit::Open {
                request,
                awaiting_consent,
            } => (*request, awaiting_consent),
            Visit::WrongClient => {
                tracing::warn!("request_uri presented with another client's client_id");
                return Err(unusable_request_uri());
            }
            Visit::BoundElsewhere => {
                tracing::info!("request_uri held by the browser of a user who signed in");
                return Err(unusable_request_uri());
            }
            Visit::Missing => return Err(unusable_request_uri()),
        };
        tracing::Span::current().record("flow_id", request.flow_id.as_str());
        // RFC 9126 §4 / §7.4: the client's registration may have changed since the push.
        request
            .recheck(&client)
            .map_err(|r| BrowserError::rejected(r, &state.endpoints.issuer))?;
        Ok(Self {
            client,
            request,
            awaiting_consent,
            request_uri: request_uri.to_owned(),
            reference,
            browser_id,
        })
    }

    /// The login and consent POSTs: reads the form, checks the browser binding and the CSRF
    /// token (before the store is touched), then visits the request again.
    pub async fn resume(
        req: &HttpRequest,
        body: web::Payload,
        state: &AppState,
    ) -> Result<(Params, Self), BrowserError> {
        let params = form::read(req, body, &state.body)
            .await
            .map_err(BrowserError::from)?;
        let browser_id = binding::browser_id(req, state.secure_cookies).ok_or_else(|| {
            OAuthError::invalid_request(
                "your browser did not keep the sign-in cookie; enable cookies and start again",
            )
        })?;
        let client = params
            .get("client_id")
            .and_then(|id| state.clients.get(id))
            .cloned()
            .ok_or_else(|| OAuthError::invalid_request("unknown client_id"))?;
        let request_uri = params
            .get("request_uri")
            .ok_or_else(|| OAuthError::invalid_request("request_uri is required"))?;
        let digest = Reference::parse(request_uri, &state.par.accepted_prefixes)
            .map(|r| r.digest())
            .ok_or_else(|| OAuthError::invalid_request_uri("unknown request_uri"))?;
        if !binding::csrf_matches(&browser_id, &digest, params.get("csrf_token")) {
            tracing::warn!("CSRF token missing or wrong");
            return Err(OAuthError::invalid_request(
                "the form has expired or was not sent by this browser; start again",
            )
            .into());
        }
        let interaction = Self::visit(state, client, request_uri, browser_id, true).await?;
        interaction.trace_step(req);
        Ok((params, interaction))
    }

    /// Records this step's `client_id`/`flow_id` on the request's spans and links the current
    /// span to the push (`telemetry::flow`).
    pub(crate) fn trace_step(&self, req: &HttpRequest) {
        crate::telemetry::flow::step(
            req,
            &self.client.id,
            &self.request.flow_id,
            self.request.trace.as_deref(),
        );
    }

    /// Acts on the decision for this request: login form, consent page, code, or error.
    pub async fn proceed(self, state: &AppState, next: Next) -> Result<HttpResponse, BrowserError> {
        match next {
            // OIDC Core §3.1.2.1: `login_hint` prefills the username (the user may change it).
            Next::Login => {
                let hint = self.request.login_hint.clone().unwrap_or_default();
                self.login_page(state, None, &hint)
            }
            Next::Consent(session) => self.ask_consent(state, session).await,
            Next::IssueCode(session) => self.issue_code(state, &session).await,
            Next::Fail(error) => self.fail(state, error).await,
        }
    }

    /// The point of authorization: takes the pushed request (one winner across replicas;
    /// only the bound browser when one is bound) and answers the client with a fresh
    /// one-time code: `303 redirect_uri?code&state&iss`.
    #[tracing::instrument(name = "interaction.issue_code", skip_all, fields(client_id = %self.client.id, flow_id = %self.request.flow_id))]
    pub async fn issue_code(self, state: &AppState, session: &Session) -> Result<HttpResponse, BrowserError> {
        crate::telemetry::flow::link_to_push(self.request.trace.as_deref());
        let target = self
            .request
            .redirect_target()
            .ok_or_else(BrowserError::internal)?;
        // Pushed records never change: the code is built from the copy read at this visit.
        let request = &self.request;
        let code = new_code();
        let record = AuthorizationCode {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            sub: session.sub.clone(),
            auth_time: session.auth_time,
            resource: request.resource.clone(),
            claims: RequestedClaims::from_parameter(request.claims.as_deref(), &self.client),
            authorization_details: request.authorization_details.clone(),
            grant_id: random_token(16),
            dpop_jkt: request.dpop_jkt.clone(),
            flow_id: request.flow_id.clone(),
            trace: request.trace.clone(),
        };
        let taken = state
            .store
            .issue_code(
                &self.reference,
                &self.owner(),
                &code,
                &record,
                state.lifetimes.code,
            )
            .await?;
        self.taken(taken)?;
        crate::telemetry::metrics::code_issued(&request.client_id);
        tracing::info!("authorization code issued");
        Ok(crate::browser::see_other(&response::success(
            &target,
            &code,
            &state.endpoints.issuer,
        )))
    }

    /// Ends the interaction with an error sent to the client (the redirect URI is proven).
    pub async fn fail(self, state: &AppState, error: OAuthError) -> Result<HttpResponse, BrowserError> {
        let taken = state.store.end_request(&self.reference, &self.owner()).await?;
        self.taken(taken)?;
        Err(BrowserError::to_client(
            error,
            self.request.redirect_target().as_ref(),
            &state.endpoints.issuer,
        ))
    }

    /// Counts a take; only the winner goes on.
    fn taken(&self, take: Take) -> Result<(), BrowserError> {
        crate::telemetry::metrics::take(&self.client.id, take.label());
        match take {
            Take::Taken => Ok(()),
            Take::NotOwner | Take::Missing => Err(unusable_request_uri()),
        }
    }

    /// Binds the request to this browser and its signed-in user (for the consent POST) and
    /// shows the consent page. Another browser's user signed in first → unusable.
    async fn ask_consent(self, state: &AppState, session: Session) -> Result<HttpResponse, BrowserError> {
        let bound = state
            .store
            .bind_request(&self.reference, &self.owner(), &session)
            .await?;
        if bound != Bind::Bound {
            tracing::info!(outcome = ?bound, "request_uri could not be bound to this browser");
            return Err(unusable_request_uri());
        }
        let username = state
            .users
            .by_sub(&session.sub)
            .map(|u| u.username.as_str())
            .unwrap_or_default();
        let details = self
            .request
            .authorization_details
            .as_deref()
            .map(authorization_details::readable)
            .unwrap_or_default();
        let page = ConsentPage::new(self.form(state, "consent"), username, details);
        Ok(crate::browser::render(StatusCode::OK, &page))
    }

    /// The login form; `error` re-shows it after failed credentials.
    pub(crate) fn login_page(
        &self,
        state: &AppState,
        error: Option<&str>,
        username: &str,
    ) -> Result<HttpResponse, BrowserError> {
        let page = LoginPage::new(self.form(state, "login"), error, username);
        Ok(crate::browser::render(StatusCode::OK, &page))
    }

    fn form(&self, state: &AppState, endpoint: &str) -> InteractionForm<'_> {
        InteractionForm {
            action: format!("{}/{endpoint}", state.base_path),
            client_name: &self.client.name,
            client_id: &self.client.id,
            request_uri: &self.request_uri,
            csrf_token: binding::csrf_token(&self.browser_id, &self.reference.digest()),
            scopes: &self.request.scope,
        }
    }

    fn owner(&self) -> String {
        binding::owner_of(&self.browser_id)
    }
}

/// The browser's SSO session, if its cookie names a live one whose user still exists.
pub(crate) async fn load_session(
    state: &AppState,
    cookie: Option<String>,
) -> Result<Option<Session>, BrowserError> {
    let Some(cookie) = cookie else { return Ok(None) };
    let session = state.store.sso_session(&cookie).await?;
    Ok(session.filter(|s| state.users.by_sub(&s.sub).is_some()))
}

/// Starts an SSO session for `session`; returns its cookie, or `None` when SSO is off.
pub(crate) async fn start_session(
    state: &AppState,
    session: &Session,
) -> Result<Option<actix_web::cookie::Cookie<'static>>, BrowserError> {
    if state.lifetimes.session.is_zero() {
        return Ok(None);
    }
    let value = random_token(32);
    state
        .store
        .start_sso_session(&value, session, state.lifetimes.session)
        .await?;
    let name = binding::cookie_names(state.secure_cookies).sso;
    Ok(Some(crate::browser::cookie(
        state.secure_cookies,
        name,
        value,
        Some(state.lifetimes.session),
    )))
}
