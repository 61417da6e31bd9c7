//! The authorization request: parsed and validated once, by the same code for `POST /par`
//! (RFC 9126 §2.1 step 3) and for a plain `GET /authorize` (RFC 6749 §4.1.1, OIDC Core
//! §3.1.2.1). `/authorize` re-checks a pushed request against the client's *current*
//! registration with `AuthorizationRequest::recheck` (RFC 9126 §4, §7.4).

use serde::{Deserialize, Serialize};

use super::authorization_details;
use super::client::Client;
use super::error::OAuthError;
use super::params::Params;
use super::pkce;

pub(crate) const MAX_STATE_LEN: usize = 1024;
pub(crate) const MAX_NONCE_LEN: usize = 512;

/// Where an authorization response may be sent once `client_id` and `redirect_uri` are
/// proven (RFC 6749 §4.1.2.1; RFC 9700 §4.11: never to an unverified URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedirectTarget {
    pub redirect_uri: url::Url,
    pub state: Option<String>,
}

impl RedirectTarget {
    /// `None` if `redirect_uri` does not parse. A registered URI always does (configuration
    /// validation parses each one); the caller then shows a local page instead.
    fn new(redirect_uri: &str, state: Option<String>) -> Option<Self> {
        url::Url::parse(redirect_uri)
            .ok()
            .map(|redirect_uri| Self { redirect_uri, state })
    }
}

/// A refused authorization request: the error, and where it may be redirected if anywhere.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub error: OAuthError,
    pub(crate) redirect: Option<Box<RedirectTarget>>,
}

impl Rejection {
    fn local(error: OAuthError) -> Self {
        Self {
            error,
            redirect: None,
        }
    }
}

/// A validated authorization request, as stored for a PAR `request_uri` (the store keeps it
/// as versioned JSON, `store::records`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr_values: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_locales: Option<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code will be bound to (the
    /// `dpop_jkt` parameter, or the key of the push's DPoP proof).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// RFC 9396 `authorization_details`, validated (compact JSON array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<String>,
    /// Non-secret id linking the steps of one login in traces and logs; set when the
    /// request is stored.
    #[serde(default)]
    pub flow_id: String,
    /// W3C `traceparent` of the push's request span when it was sampled: later steps link
    /// their spans to it, so one login reads as one story across replicas
    /// (`telemetry::flow`). Not a secret; absent when tracing is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

impl std::fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // state, nonce and the PKCE challenge are the client's anti-forgery values: not logged.
        f.debug_struct("AuthorizationRequest")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("scope", &self.scope)
            .field("prompt", &self.prompt)
            .finish_non_exhaustive()
    }
}

impl AuthorizationRequest {
    /// Validates `params` as an authorization request of `client` (already identified, and
    /// at PAR already authenticated). Errors found before `redirect_uri` is proven carry no
    /// redirect target.
    pub fn parse(params: &Params, client: &Client) -> Result<Self, Rejection> {
        // RFC 6749 §4.1.1: client_id is required and must name this client.
        match params.get("client_id") {
            None => {
                return Err(Rejection::local(OAuthError::invalid_request(
                    "client_id is required",
                )));
            }
            Some(id) if id != client.id => {
                return Err(Rejection::local(OAuthError::invalid_request(
                    "client_id does not match the authenticated client",
                )));
            }
            Some(_) => {}
        }
        let state = params.get("state").map(str::to_owned);
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
            return Err(Rejection::local(OAuthError::invalid_request("state is too long")));
        }
        // FAPI 2.0 §5.3.2.2 / OIDC Core: redirect_uri is required, and matched exactly.
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or_else(|| Rejection::local(OAuthError::invalid_request("redirect_uri is required")))?;
        if !client.redirect_uri_allowed(redirect_uri) {
            return Err(Rejection::local(OAuthError::invalid_request(
                "redirect_uri is not registered for this client",
            )));
        }
        let target = RedirectTarget::new(redirect_uri, state.clone());
        let reject = |error: OAuthError| Rejection {
            error,
            redirect: target.clone().map(Box::new),
        };

        match params.get("response_type") {
            None => return Err(reject(OAuthError::invalid_request("response_type is required"))),
            Some("code") => {}
            Some(_) => {
                return Err(reject(OAuthError::unsupported_response_type(
                    "only response_type=code is supported",
                )));
            }
        }
        if let Some(mode) = params.get("response_mode")
            && mode != "query"
        {
            return Err(reject(OAuthError::invalid_request(
                "only response_mode=query is supported",
            )));
        }

        let scope = parse_scope(params.get("scope")).map_err(reject)?;
        let code_challenge = match params.get("code_challenge") {
            Some(challenge) => {
                pkce::check_challenge(challenge, params.get("code_challenge_method")).map_err(reject)?;
                Some(challenge.to_owned())
            }
            None if params.contains("code_challenge_method") => {
                return Err(reject(OAuthError::invalid_request(
                    "code_challenge_method without code_challenge",
                )));
            }
            None => None,
        };

        let nonce = params.get("nonce").map(str::to_owned);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_LEN) {
            return Err(reject(OAuthError::invalid_request("nonce is too long")));
        }
        let prompt = parse_prompt(params.get("prompt")).map_err(reject)?;
        let max_age = match params.get("max_age") {
            None => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                reject(OAuthError::invalid_request(
                    "max_age must be a non-negative integer",
                ))
            })?),
        };
        let resource = params.get_all("resource");
        for r in &resource {
            // RFC 8707 §2: an absolute URI without a fragment.
            let ok = url::Url::parse(r).is_ok_and(|u| u.fragment().is_none());
            if !ok {
                return Err(reject(OAuthError::invalid_request(
                    "resource must be an absolute URI without a fragment",
                )));
            }
        }
        let claims = params.get("claims").map(str::to_owned);
        if let Some(c) = &claims {
            // OIDC Core §5.5: a JSON object.
            let is_object = serde_json::from_str::<serde_json::Value>(c).is_ok_and(|v| v.is_object());
            if !is_object {
                return Err(reject(OAuthError::invalid_request(
                    "claims must be a JSON object",
                )));
            }
        }

        let authorization_details = params
            .get("authorization_details")
            .map(|raw| authorization_details::parse(raw, client))
            .transpose()
            .map_err(reject)?;
        let dpop_jkt = params
            .get("dpop_jkt")
            .map(super::dpop::parse_jkt)
            .transpose()
            .map_err(reject)?;

        let request = Self {
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            scope,
            state,
            nonce,
            code_challenge,
            prompt,
            max_age,
            login_hint: params.get("login_hint").map(str::to_owned),
            resource,
            claims,
            acr_values: params.get("acr_values").map(str::to_owned),
            ui_locales: params.get("ui_locales").map(str::to_owned),
            dpop_jkt,
            authorization_details,
            flow_id: String::new(),
            trace: None,
        };
        request.recheck(client)?;
        Ok(request)
    }

    /// The checks that depend on the client's registration, repeated at `/authorize` for a
    /// pushed request because the registration may have changed since the push (RFC 9126 §4).
    pub(crate) fn recheck(&self, client: &Client) -> Result<(), Rejection> {
        if self.client_id != client.id || !client.redirect_uri_allowed(&self.redirect_uri) {
            return Err(Rejection::local(OAuthError::invalid_request(
                "redirect_uri is not registered for this client",
            )));
        }
        let reject = |error: OAuthError| Rejection {
            error,
            redirect: self.redirect_target().map(Box::new),
        };
        if let Some(s) = self.scope.iter().find(|s| !client.scope_allowed(s)) {
            return Err(reject(OAuthError::invalid_scope(format!(
                "scope '{s}' is not allowed for this client"
            ))));
        }
        // RFC 9396 §5: the types must still be the client's.
        if let Some(details) = &self.authorization_details {
            authorization_details::parse(details, client).map_err(reject)?;
        }
        // RFC 8707 §2: only resources registered for the client (`invalid_target`).
        if self.resource.iter().any(|r| !client.resource_allowed(r)) {
            return Err(reject(OAuthError::invalid_target(
                "resource is not registered for this client",
            )));
        }
        if client.require_pkce && self.code_challenge.is_none() {
            return Err(reject(OAuthError::invalid_request(
                "code_challenge (PKCE S256) is required",
            )));
        }
        Ok(())
    }

    /// Where responses to this request go (its `redirect_uri` was proven when it was
    /// validated).
    pub(crate) fn redirect_target(&self) -> Option<RedirectTarget> {
        RedirectTarget::new(&self.redirect_uri, self.state.clone())
    }

    pub(crate) fn has_prompt(&self, prompt: &str) -> bool {
        self.prompt.iter().any(|p| p == prompt)
    }
}

/// RFC 6749 §3.3: space-delimited, case-sensitive; duplicates collapse.
fn parse_scope(raw: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let raw = raw.ok_or_else(|| OAuthError::invalid_scope("scope is required"))?;
    let mut scopes: Vec<String> = Vec::new();
    for s in raw.split(' ').filter(|s| !s.is_empty()) {
        // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E
        if !s
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        {
            return Err(OAuthError::invalid_scope("scope contains invalid characters"));
        }
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    if scopes.is_empty() {
        return Err(OAuthError::invalid_scope("scope is required"));
    }
    Ok(scopes)
}

/// OIDC Core §3.1.2.1: `none` must stand alone.
fn parse_prompt(raw: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    let mut values: Vec<String> = Vec::new();
    for p in raw.split(' ').filter(|s| !s.is_empty()) {
        if !super::discovery::PROMPTS_SUPPORTED.contains(&p) {
            return Err(OAuthError::invalid_request(format!(
                "unsupported prompt value '{p}'"
            )));
        }
        if !values.iter().any(|v| v == p) {
            values.push(p.to_owned());
        }
    }
    if values.len() > 1 && values.iter().any(|v| v == "none") {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client::test_client;

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn valid() -> Vec<(&'static str, &'static str)> {
        vec![
            ("client_id", "a"),
            ("redirect_uri", "https://app.example/cb"),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("state", "xyz"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
    }

    fn with(change: &[(&'static str, Option<&'static str>)]) -> Params {
        let mut pairs = valid();
        for (k, v) in change {
            pairs.retain(|(n, _)| n != k);
            if let Some(v) = v {
                pairs.push((k, v));
            }
        }
        Params::from_pairs(pairs)
    }

    #[test]
    fn a_valid_request_parses() {
        let r = AuthorizationRequest::parse(&with(&[]), &test_client("a")).unwrap();
        assert_eq!(r.scope, vec!["openid", "email"]);
        assert_eq!(r.state.as_deref(), Some("xyz"));
    }

    #[test]
    fn errors_before_the_redirect_uri_is_proven_never_redirect() {
        let c = test_client("a");
        for change in [
            vec![("client_id", Some("b"))],
            vec![("client_id", None)],
            vec![("redirect_uri", None)],
            vec![("redirect_uri", Some("https://evil.example/cb"))],
        ] {
            let rej = AuthorizationRequest::parse(&with(&change), &c).unwrap_err();
            assert_eq!(rej.error.code(), "invalid_request");
            assert!(rej.redirect.is_none(), "{change:?}");
        }
    }

    #[test]
    fn errors_after_the_redirect_uri_is_proven_carry_it() {
        let c = test_client("a");
        type Change = Vec<(&'static str, Option<&'static str>)>;
        let table: Vec<(Change, &str)> = vec![
            (
                vec![("response_type", Some("token"))],
                "unsupported_response_type",
            ),
            (vec![("response_type", None)], "invalid_request"),
            (vec![("scope", Some("openid admin"))], "invalid_scope"),
            (vec![("scope", None)], "invalid_scope"),
            (
                vec![("code_challenge", None), ("code_challenge_method", None)],
                "invalid_request",
            ),
            (vec![("code_challenge_method", Some("plain"))], "invalid_request"),
            (vec![("prompt", Some("none login"))], "invalid_request"),
            (vec![("max_age", Some("-1"))], "invalid_request"),
            (vec![("claims", Some("[1]"))], "invalid_request"),
            (vec![("response_mode", Some("fragment"))], "invalid_request"),
        ];
        for (change, code) in table {
            let rej = AuthorizationRequest::parse(&with(&change), &c).unwrap_err();
            assert_eq!(rej.error.code(), code, "{change:?}");
            let target = rej.redirect.expect("redirectable");
            assert_eq!(target.redirect_uri.as_str(), "https://app.example/cb");
            assert_eq!(target.state.as_deref(), Some("xyz"));
        }
    }

    #[test]
    fn recheck_notices_a_changed_registration() {
        let mut c = test_client("a");
        let r = AuthorizationRequest::parse(&with(&[]), &c).unwrap();
        c.scopes.retain(|s| s != "email");
        assert_eq!(r.recheck(&c).unwrap_err().error.code(), "invalid_scope");
        c.redirect_uris.clear();
        assert!(r.recheck(&c).unwrap_err().redirect.is_none());
    }

    #[test]
    fn debug_hides_state_and_nonce() {
        let r = AuthorizationRequest::parse(&with(&[("nonce", Some("n-0S6_WzA2Mj"))]), &test_client("a"))
            .unwrap();
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("n-0S6_WzA2Mj") && !dbg.contains("xyz") && !dbg.contains(CHALLENGE));
    }
}
