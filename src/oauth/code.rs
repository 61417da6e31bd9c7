//! The authorization code record (RFC 6749 §4.1.2): what code issuance stores and the token
//! endpoint takes. The code itself is 256 random bits handed to the client once; the store
//! keeps the record under the code's SHA-256 (`store::keyspace`), never the code.

use serde::{Deserialize, Serialize};

use super::claims::RequestedClaims;
use crate::crypto::random_token;

/// Random bytes in an authorization code (FAPI 2.0 §5.4: ≥ 128 bits).
pub(crate) const CODE_BYTES: usize = 32;

pub fn new_code() -> String {
    random_token(CODE_BYTES)
}

/// Everything `/token` needs to check the redemption and mint tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    /// PKCE S256 challenge from the authorization request (RFC 7636 §4.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The authenticated user's subject identifier.
    pub sub: String,
    /// When the user authenticated (OIDC Core `auth_time`), seconds since the epoch.
    pub auth_time: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<String>,
    /// Claims asked for by name (OIDC Core §5.5), kept to the client's scopes.
    #[serde(default, skip_serializing_if = "RequestedClaims::is_empty")]
    pub claims: RequestedClaims,
    /// RFC 9396 authorization details granted (compact JSON array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<String>,
    /// Identifies the grant: every token minted from this code carries it, so a replayed
    /// code can revoke them all (RFC 6749 §4.1.2, RFC 9700 §4.2.4).
    pub grant_id: String,
    /// RFC 9449 §10: the code may only be redeemed with a DPoP proof by this key
    /// (JWK SHA-256 thumbprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// Non-secret id that links the steps of one login in traces and logs.
    #[serde(default)]
    pub flow_id: String,
    /// The push's `traceparent`, carried from the pushed request so the token span can link
    /// to it (`telemetry::flow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

impl std::fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("sub", &self.sub)
            .field("flow_id", &self.flow_id)
            .finish_non_exhaustive()
    }
}
