//! One browser's interaction with a pushed request, from the claim at `/authorize` to the
//! code: the steps `authorize`, `login` and `consent` share.
//!
//! Redis at each step (brief §2): the claim is one script (client binding checked before
//! anything is written, life extended to the interaction lifetime); code issuance takes the
//! request with a GETDEL inside a script (exactly one winner across replicas) and stores the
//! code with `SET … EX … NX`, both sent together (one round trip; a code stored for a lost
//! race is deleted and was never handed out).

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use super::browser::{self, BrowserError};
use super::error::store_error;
use crate::crypto::{random_token, sha256_b64};
use crate::oauth::authorization::AuthorizationRequest;
use crate::oauth::client::Client;
use crate::oauth::code::{AuthorizationCode, new_code};
use crate::oauth::interaction::{Next, Session, decide};
use crate::oauth::request_uri::Reference;
use crate::oauth::{OAuthError, response};
use crate::state::AppState;
use crate::store::{ClaimOutcome, StoreError, TakeOutcome};

/// A claimed pushed request and the browser that holds it.
pub struct Interaction {
    pub client: Arc<Client>,
    pub request: AuthorizationRequest,
    pub request_uri: String,
    pub digest: String,
    pub browser_id: String,
}

fn unusable_request_uri(state: &AppState) -> BrowserError {
    BrowserError::page(
        state,
        OAuthError::invalid_request_uri(
            "this sign-in link is invalid, has expired or was already used; start again from the application",
        ),
    )
}

pub fn page_error(state: &AppState) -> impl Fn(StoreError) -> BrowserError + '_ {
    move |e| BrowserError::page(state, store_error(e))
}

impl Interaction {
    /// Claims `request_uri` for `browser_id` (or resumes the claim on a reload). Unknown,
    /// expired, used, foreign-client and other-browser references all give the same
    /// `invalid_request_uri` page: the redirect URI is not proven for an unusable reference.
    #[tracing::instrument(name = "interaction.claim", skip_all, fields(client_id = %client.id, flow_id = tracing::field::Empty))]
    pub async fn claim(
        state: &AppState,
        client: Arc<Client>,
        request_uri: &str,
        browser_id: String,
    ) -> Result<Self, BrowserError> {
        let reference = Reference::parse(request_uri, &state.par.accepted_prefixes)
            .ok_or_else(|| unusable_request_uri(state))?;
        let digest = reference.digest();
        let outcome = state
            .store
            .claim(
                &state.keys.par(&digest),
                &state.keys.par_claim(&digest),
                &client.id,
                &browser::owner_of(&browser_id),
                state.par.interaction_lifetime,
            )
            .await
            .map_err(page_error(state))?;
        crate::telemetry::metrics::claim(&client.id, claim_label(&outcome));
        let record = match outcome {
            ClaimOutcome::Claimed(v) | ClaimOutcome::Resumed(v) => v,
            ClaimOutcome::WrongClient => {
                tracing::warn!("request_uri presented with another client's client_id");
                return Err(unusable_request_uri(state));
            }
            ClaimOutcome::ClaimedByOther => {
                tracing::info!("request_uri already claimed by another browser");
                return Err(unusable_request_uri(state));
            }
            ClaimOutcome::Missing => return Err(unusable_request_uri(state)),
        };
        let request: AuthorizationRequest = serde_json::from_slice(&record).map_err(|e| {
            tracing::error!(error = %e, "unreadable pushed request");
            BrowserError::internal(state)
        })?;
        tracing::Span::current().record("flow_id", request.flow_id.as_str());
        // RFC 9126 §4 / §7.4: the client's registration may have changed since the push.
        request
            .recheck(&client)
            .map_err(|r| BrowserError::to_client(state, r.error, r.redirect.as_ref()))?;
        Ok(Self {
            client,
            request,
            request_uri: request_uri.to_owned(),
            digest,
            browser_id,
        })
    }

    /// Records this step's `client_id`/`flow_id` on the request's spans and links the current
    /// span to the push (`telemetry::flow`).
    pub fn trace_step(&self, req: &actix_web::HttpRequest) {
        crate::telemetry::flow::step(
            req,
            &self.client.id,
            &self.request.flow_id,
            self.request.trace.as_deref(),
        );
    }

    pub fn csrf_token(&self) -> String {
        browser::csrf_token(&self.browser_id, &self.digest)
    }

    /// Constant-time check of a submitted CSRF token.
    pub fn csrf_matches(browser_id: &str, digest: &str, submitted: Option<&str>) -> bool {
        submitted.is_some_and(|s| {
            crate::crypto::constant_time_eq(s.as_bytes(), browser::csrf_token(browser_id, digest).as_bytes())
        })
    }

    /// Runs the decision for this request and session: login form, consent, code, or error.
    pub async fn proceed(
        self,
        state: &AppState,
        session: Option<Session>,
    ) -> Result<HttpResponse, BrowserError> {
        match decide(&self.request, &self.client, session, crate::clock::now()) {
            Next::Login => Ok(self.login_page(state, None, "")),
            Next::Consent(session) => self.ask_consent(state, session).await,
            Next::IssueCode(session) => self.issue_code(state, &session).await,
            Next::Fail(error) => self.fail(state, error).await,
        }
    }

    /// Takes the pushed request (one winner across replicas) and answers the client with a
    /// fresh one-time code: `303 redirect_uri?code&state&iss`.
    #[tracing::instrument(name = "interaction.issue_code", skip_all, fields(client_id = %self.client.id, flow_id = %self.request.flow_id))]
    pub async fn issue_code(self, state: &AppState, session: &Session) -> Result<HttpResponse, BrowserError> {
        crate::telemetry::flow::link_to_push(self.request.trace.as_deref());
        // The record was read at the claim and pushed records never change: build the code
        // from that copy, and send the take and the code's SET together (brief §2: one winner
        // still, decided by the take).
        let request = &self.request;
        let code = new_code();
        let record = AuthorizationCode {
            v: 1,
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            sub: session.sub.clone(),
            auth_time: session.auth_time,
            resource: request.resource.clone(),
            grant_id: random_token(16),
            flow_id: request.flow_id.clone(),
            trace: request.trace.clone(),
        };
        let json = serde_json::to_vec(&record).map_err(|_| BrowserError::internal(state))?;
        let code_key = state.keys.code(&sha256_b64(code.as_bytes()));
        let (taken, stored) = tokio::join!(
            self.take(state),
            state.store.put_new(&code_key, &json, state.lifetimes.code)
        );
        if let Err(e) = taken {
            // Lost the race (or the store failed): this code was never handed out.
            if matches!(stored, Ok(true)) {
                let _ = state.store.delete(&code_key).await;
            }
            return Err(e);
        }
        if !stored.map_err(page_error(state))? {
            // As for a push (routes/par.rs): a fresh code's key that exists already is a
            // retried write; the request is taken, so this login ends, with a 503.
            return Err(page_error(state)(StoreError::Unavailable(
                "authorization code exists already (a retried write?)".into(),
            )));
        }
        crate::telemetry::metrics::code_issued(&request.client_id);
        tracing::info!("authorization code issued");
        Ok(browser::see_other(&response::success(
            &request.redirect_target(),
            &code,
            &state.endpoints.issuer,
        )))
    }

    /// Ends the interaction with an error sent to the client (the redirect URI is proven).
    pub async fn fail(self, state: &AppState, error: OAuthError) -> Result<HttpResponse, BrowserError> {
        self.take(state).await?;
        Err(BrowserError::to_client(
            state,
            error,
            Some(&self.request.redirect_target()),
        ))
    }

    /// Takes the claimed record: exactly one winner. The pending-consent marker, if any, is
    /// left to its TTL (see `login::consent`): it is useless once the record is gone.
    async fn take(&self, state: &AppState) -> Result<(), BrowserError> {
        let keys = &state.keys;
        let outcome = state
            .store
            .take_claimed(
                &keys.par(&self.digest),
                &keys.par_claim(&self.digest),
                &browser::owner_of(&self.browser_id),
            )
            .await
            .map_err(page_error(state))?;
        let label = match &outcome {
            TakeOutcome::Taken(_) => "taken",
            TakeOutcome::NotOwner => "not_owner",
            TakeOutcome::Missing => "missing",
        };
        crate::telemetry::metrics::take(&self.client.id, label);
        match outcome {
            TakeOutcome::Taken(_) => Ok(()),
            TakeOutcome::NotOwner | TakeOutcome::Missing => Err(unusable_request_uri(state)),
        }
    }

    async fn ask_consent(self, state: &AppState, session: Session) -> Result<HttpResponse, BrowserError> {
        let json = serde_json::to_vec(&session).map_err(|_| BrowserError::internal(state))?;
        state
            .store
            .put(
                &state.keys.par_login(&self.digest),
                &json,
                state.par.interaction_lifetime,
            )
            .await
            .map_err(page_error(state))?;
        let username = state
            .users
            .by_sub(&session.sub)
            .map(|u| u.username.clone())
            .unwrap_or_default();
        let html = ConsentPage {
            assets: &state.assets,
            form: self.form(state, "consent"),
            username: &username,
        }
        .render()
        .map_err(|_| BrowserError::internal(state))?;
        Ok(browser::page(StatusCode::OK, html))
    }

    fn form(&self, state: &AppState, endpoint: &str) -> InteractionForm<'_> {
        InteractionForm {
            action: format!("{}/{endpoint}", state.base_path),
            client_name: &self.client.name,
            client_id: &self.client.id,
            request_uri: &self.request_uri,
            csrf_token: self.csrf_token(),
            scopes: &self.request.scope,
        }
    }

    /// The login form; `error` re-shows it after failed credentials.
    pub fn login_page(&self, state: &AppState, error: Option<&str>, username: &str) -> HttpResponse {
        let html = LoginPage {
            assets: &state.assets,
            form: self.form(state, "login"),
            error,
            username: username.get(..username.len().min(256)).unwrap_or(""),
        }
        .render()
        .unwrap_or_default();
        browser::page(StatusCode::OK, html)
    }
}

/// What every interaction page carries: who asks, for what, and the hidden fields that
/// bring the POST back to this claimed request.
struct InteractionForm<'a> {
    action: String,
    client_name: &'a str,
    client_id: &'a str,
    request_uri: &'a str,
    csrf_token: String,
    scopes: &'a [String],
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    assets: &'a str,
    form: InteractionForm<'a>,
    error: Option<&'a str>,
    username: &'a str,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    assets: &'a str,
    form: InteractionForm<'a>,
    username: &'a str,
}

fn claim_label(outcome: &ClaimOutcome) -> &'static str {
    match outcome {
        ClaimOutcome::Claimed(_) => "claimed",
        ClaimOutcome::Resumed(_) => "resumed",
        ClaimOutcome::ClaimedByOther => "claimed_by_other",
        ClaimOutcome::WrongClient => "wrong_client",
        ClaimOutcome::Missing => "missing",
    }
}

/// The browser's SSO session, if its cookie names a live one whose user still exists.
pub async fn load_session(state: &AppState, cookie: Option<String>) -> Result<Option<Session>, BrowserError> {
    let Some(cookie) = cookie else { return Ok(None) };
    let raw = state
        .store
        .get(&state.keys.sso_session(&sha256_b64(cookie.as_bytes())))
        .await
        .map_err(page_error(state))?;
    let session = raw.and_then(|v| serde_json::from_slice::<Session>(&v).ok());
    Ok(session.filter(|s| state.users.by_sub(&s.sub).is_some()))
}

/// Starts an SSO session for `session`; returns the cookie value, or `None` when SSO is off.
pub async fn start_session(state: &AppState, session: &Session) -> Result<Option<String>, BrowserError> {
    if state.lifetimes.session.is_zero() {
        return Ok(None);
    }
    let cookie = random_token(32);
    let json = serde_json::to_vec(session).map_err(|_| BrowserError::internal(state))?;
    state
        .store
        .put(
            &state.keys.sso_session(&sha256_b64(cookie.as_bytes())),
            &json,
            state.lifetimes.session,
        )
        .await
        .map_err(page_error(state))?;
    Ok(Some(cookie))
}
