//! Endpoint URLs and the authorization server metadata (RFC 8414 §2, OIDC Discovery §3,
//! RFC 9126 §5, RFC 9207 §3, RFC 9449 §5.1; `revocation_endpoint` of RFC 7009 in RFC 8414
//! §2). Built once at start from the configuration; it must say only what the server does.

use serde_json::{Value, json};

use super::client::AuthMethod;
use super::client_auth;

/// The `prompt` values `oauth::authorization` accepts and `oauth::interaction` honours
/// (OIDC Core §3.1.2.1): `select_account` shows the login form, where the user picks the
/// account by signing in.
pub(crate) const PROMPTS_SUPPORTED: &[&str] = &["none", "login", "consent", "select_account"];

/// Absolute URLs of every endpoint, derived from the issuer and the base path.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub issuer: String,
    pub par: String,
    pub authorize: String,
    pub token: String,
    pub jwks: String,
    pub userinfo: String,
    /// RFC 7009 token revocation.
    pub revoke: String,
}

impl Endpoints {
    pub fn new(issuer: &str, base_path: &str) -> Self {
        let issuer = issuer.trim_end_matches('/').to_owned();
        let url = |p: &str| format!("{issuer}{base_path}/{p}");
        Self {
            par: url("par"),
            authorize: url("authorize"),
            token: url("token"),
            jwks: url("jwks"),
            userinfo: url("userinfo"),
            revoke: url("revoke"),
            issuer,
        }
    }

    /// `aud` values accepted in client assertions (RFC 9126 §2: issuer, token and PAR URL).
    pub(crate) fn assertion_audiences(&self) -> Vec<String> {
        vec![self.issuer.clone(), self.token.clone(), self.par.clone()]
    }
}

/// What the deployment supports, as far as metadata needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Capabilities {
    /// RFC 9126 §5: true only when no client may skip PAR (per-client values stay in the
    /// client registry).
    pub require_par: bool,
    /// `profile: fapi2`: advertise only the algorithms FAPI 2.0 §5.4 allows.
    pub fapi2: bool,
    /// RFC 9396 §10: every type some client may use; empty: not advertised.
    pub authorization_details_types: Vec<String>,
    /// RFC 9101 §10.5: true only when every client must send signed request objects.
    pub require_signed_request_objects: bool,
    pub auth_methods: Vec<AuthMethod>,
    pub scopes: Vec<String>,
    pub signing_algs: Vec<String>,
    /// DPoP proof algorithms accepted (RFC 9449 §5.1).
    pub dpop_algs: Vec<String>,
    /// Some client may use the `refresh_token` grant.
    pub refresh_tokens: bool,
}

pub(crate) const CLAIMS_SUPPORTED: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "amr",
    "nonce",
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
];

pub(crate) fn metadata(e: &Endpoints, c: &Capabilities) -> Value {
    let methods: Vec<&str> = c.auth_methods.iter().map(|m| m.as_str()).collect();
    let mut grant_types = vec!["authorization_code"];
    if c.refresh_tokens {
        grant_types.push("refresh_token");
    }
    // Exactly what `oauth::client_auth` accepts for `private_key_jwt`.
    let assertion_algs: Vec<String> = client_auth::ASSERTION_ALGS
        .iter()
        .map(client_auth::alg_name)
        .filter(|a| !c.fapi2 || client_auth::FAPI2_ALGS.contains(&a.as_str()))
        .collect();
    let mut metadata = json!({
        "issuer": e.issuer,
        "authorization_endpoint": e.authorize,
        "token_endpoint": e.token,
        "jwks_uri": e.jwks,
        "userinfo_endpoint": e.userinfo,
        "pushed_authorization_request_endpoint": e.par,
        "require_pushed_authorization_requests": c.require_par,
        "authorization_response_iss_parameter_supported": true,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": c.signing_algs,
        "scopes_supported": c.scopes,
        "claims_supported": CLAIMS_SUPPORTED,
        "prompt_values_supported": PROMPTS_SUPPORTED,
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint": e.revoke,
        "revocation_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "code_challenge_methods_supported": ["S256"],
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported": assertion_algs,
        "require_signed_request_object": c.require_signed_request_objects,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": true,
        "dpop_signing_alg_values_supported": c.dpop_algs,
    });
    // No empty list for a feature nobody is registered for.
    if !c.authorization_details_types.is_empty() {
        metadata["authorization_details_types_supported"] = json!(c.authorization_details_types);
    }
    metadata
}
