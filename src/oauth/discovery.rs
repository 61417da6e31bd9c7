//! Endpoint URLs and the authorization server metadata (RFC 8414 §2, OIDC Discovery §3,
//! RFC 9126 §5, RFC 9207 §3, RFC 9449 §5.1; `revocation_endpoint` of RFC 7009 in RFC 8414
//! §2). Built once at start from the configuration; it must say only what the server does.

use serde_json::{Value, json};

use super::client::AuthMethod;

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
    pub require_par: bool,
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
    "nonce",
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
];

pub(crate) fn metadata(e: &Endpoints, c: &Capabilities) -> Value {
    let methods: Vec<&str> = c.auth_methods.iter().map(|m| m.as_str()).collect();
    let mut grant_types = vec!["authorization_code"];
    if c.refresh_tokens {
        grant_types.push("refresh_token");
    }
    json!({
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
        "userinfo_signing_alg_values_supported": [],
        "scopes_supported": c.scopes,
        "claims_supported": CLAIMS_SUPPORTED,
        "prompt_values_supported": ["none", "login", "consent"],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint": e.revoke,
        "revocation_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "ES384", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "dpop_signing_alg_values_supported": c.dpop_algs,
    })
}
