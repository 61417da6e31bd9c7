//! The one decision of a login, from the request, the client and who is signed in: show the
//! login form, ask for consent, issue the code, or answer the client with an error. With
//! the OIDC Core §3.1.2.1 rules for `prompt` and `max_age`. Pure: the caller supplies `now`.
//!
//! - `decide`: a browser arrives at `/authorize`, perhaps with an SSO session.
//! - `after_login`: the user has just entered their password.

use serde::{Deserialize, Serialize};

use super::authorization::AuthorizationRequest;
use super::client::Client;
use super::error::OAuthError;

/// An authenticated user's session, as stored for SSO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub sub: String,
    /// When the user last entered their password (OIDC `auth_time`).
    pub auth_time: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Show the login form.
    Login,
    /// The user is authenticated; ask for consent.
    Consent(Session),
    /// The user is authenticated and nothing needs asking: issue the code.
    IssueCode(Session),
    /// `prompt=none` could not be honoured: answer the client with this error.
    Fail(OAuthError),
}

/// Consent is asked when the client is registered for it, the request says
/// `prompt=consent` (OIDC Core §3.1.2.1), or it carries authorization details, which the
/// user must see before they are granted (RFC 9396 §7).
fn wants_consent(request: &AuthorizationRequest, client: &Client) -> bool {
    client.consent || request.has_prompt("consent") || request.authorization_details.is_some()
}

/// At `/authorize`: `session` is the browser's SSO session, if any.
pub(crate) fn decide(
    request: &AuthorizationRequest,
    client: &Client,
    session: Option<Session>,
    now: u64,
) -> Next {
    let fresh_enough = |s: &Session| match request.max_age {
        // OIDC Core §3.1.2.1: re-authenticate when auth_time is older than max_age.
        Some(max) => now.saturating_sub(s.auth_time) <= max,
        None => true,
    };
    // `select_account`: the user picks the account by signing in (one method, no account
    // list to show), so like `login` it shows the form.
    let reauthenticate = request.has_prompt("login") || request.has_prompt("select_account");
    let session = session.filter(|s| !reauthenticate && fresh_enough(s));
    let consent = wants_consent(request, client);
    if request.has_prompt("none") {
        return match session {
            None => Next::Fail(OAuthError::login_required("the user is not logged in")),
            Some(_) if consent => Next::Fail(OAuthError::consent_required("consent is required")),
            Some(s) => Next::IssueCode(s),
        };
    }
    match session {
        None => Next::Login,
        Some(s) if consent => Next::Consent(s),
        Some(s) => Next::IssueCode(s),
    }
}

/// After a successful password login: a fresh authentication satisfies any `prompt=login`
/// and `max_age`, so only consent may be left to ask.
pub(crate) fn after_login(request: &AuthorizationRequest, client: &Client, session: Session) -> Next {
    if wants_consent(request, client) {
        Next::Consent(session)
    } else {
        Next::IssueCode(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client::test_client;
    use crate::oauth::params::Params;

    fn request(extra: &[(&'static str, &'static str)]) -> AuthorizationRequest {
        let mut pairs = vec![
            ("client_id", "a"),
            ("redirect_uri", "https://app.example/cb"),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
        ];
        pairs.extend_from_slice(extra);
        AuthorizationRequest::parse(&Params::from_pairs(pairs), &test_client("a")).unwrap()
    }

    fn session(auth_time: u64) -> Option<Session> {
        Some(Session {
            sub: "u".into(),
            auth_time,
        })
    }

    #[test]
    fn sso_skips_the_password_unless_told_otherwise() {
        let c = test_client("a");
        assert_eq!(decide(&request(&[]), &c, None, 100), Next::Login);
        assert!(matches!(
            decide(&request(&[]), &c, session(50), 100),
            Next::IssueCode(_)
        ));
        assert_eq!(
            decide(&request(&[("prompt", "login")]), &c, session(50), 100),
            Next::Login
        );
        assert_eq!(
            decide(&request(&[("prompt", "select_account")]), &c, session(50), 100),
            Next::Login
        );
        assert_eq!(
            decide(&request(&[("max_age", "10")]), &c, session(50), 100),
            Next::Login
        );
        assert!(matches!(
            decide(&request(&[("max_age", "60")]), &c, session(50), 100),
            Next::IssueCode(_)
        ));
    }

    #[test]
    fn a_fresh_login_satisfies_prompt_login_and_max_age_but_not_consent() {
        let mut c = test_client("a");
        let strict = request(&[("prompt", "login"), ("max_age", "0")]);
        let fresh = || session(100).unwrap();
        assert!(matches!(after_login(&strict, &c, fresh()), Next::IssueCode(_)));
        assert!(matches!(
            after_login(&request(&[("prompt", "login consent")]), &c, fresh()),
            Next::Consent(_)
        ));
        c.consent = true;
        assert!(matches!(after_login(&strict, &c, fresh()), Next::Consent(_)));
    }

    #[test]
    fn prompt_none_never_shows_a_page() {
        let mut c = test_client("a");
        let none = request(&[("prompt", "none")]);
        assert!(matches!(decide(&none, &c, None, 100), Next::Fail(e) if e.code() == "login_required"));
        assert!(matches!(decide(&none, &c, session(50), 100), Next::IssueCode(_)));
        c.consent = true;
        assert!(
            matches!(decide(&none, &c, session(50), 100), Next::Fail(e) if e.code() == "consent_required")
        );
        assert!(matches!(
            decide(&request(&[]), &c, session(50), 100),
            Next::Consent(_)
        ));
    }
}
