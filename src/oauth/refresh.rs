//! Refresh tokens (RFC 6749 §1.5, §6; RFC 9700 §4.14; OIDC Core §11, §12): when one is
//! issued, what it looks like, and the refresh request's rules. Pure; the store keeps the
//! grant's record and rotates the token atomically (`store::flow`).
//!
//! A refresh token is `<grant id>.<256 random bits>`, both base64url: opaque to the client,
//! stored only as a SHA-256 digest, and carrying the grant id so that every key of one grant
//! (its record, its current token, the tokens it replaced, its revocation mark) lives in one
//! Redis Cluster slot and one script can rotate or revoke them together.
//!
//! Rotation (RFC 9700 §4.14.2): every use returns a new token and retires the presented one;
//! presenting a retired token again means two parties hold it, so the whole grant — the
//! refresh token and every access token minted from it — is revoked.

use serde::{Deserialize, Serialize};

use super::client::{AuthMethod, Client};
use super::error::OAuthError;
use super::params::Params;
use crate::crypto::random_token;

pub(crate) const GRANT_REFRESH_TOKEN: &str = "refresh_token";
/// The scope that asks for a refresh token in an OpenID Connect request (OIDC Core §11).
pub(crate) const OFFLINE_ACCESS: &str = "offline_access";
/// Random bytes in a refresh token's secret part.
const SECRET_BYTES: usize = 32;
/// Longest grant id part accepted (ours are 22 characters).
const MAX_GRANT_ID_LEN: usize = 64;

/// A new refresh token for `grant_id`.
pub(crate) fn new_token(grant_id: &str) -> String {
    format!("{grant_id}.{}", random_token(SECRET_BYTES))
}

/// The grant id of a well-formed refresh token; `None` for anything else (which the token
/// endpoint answers like an unknown token).
pub(crate) fn grant_of(token: &str) -> Option<&str> {
    let (grant_id, secret) = token.split_once('.')?;
    let b64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let ok = !grant_id.is_empty()
        && grant_id.len() <= MAX_GRANT_ID_LEN
        && b64url(grant_id)
        && secret.len() == 43
        && b64url(secret);
    ok.then_some(grant_id)
}

/// What the store keeps for a grant with a refresh token: what a refresh needs to mint
/// tokens. Never the token itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub client_id: String,
    pub sub: String,
    pub scope: Vec<String>,
    pub auth_time: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<String>,
    /// Claims asked for by name for userinfo (OIDC Core §5.5), carried to refreshed tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub userinfo_claims: Vec<String>,
    /// RFC 9396 authorization details granted (compact JSON array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<String>,
    /// RFC 9449 §5: a public client's refresh token is bound to its DPoP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// The absolute end of the grant's refresh tokens (seconds since the epoch): rotation
    /// never extends it.
    pub expires_at: u64,
}

impl std::fmt::Debug for RefreshRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRecord")
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Whether a token response for `client` and `scope` carries a refresh token: the client is
/// registered for the `refresh_token` grant; an OpenID request asked for `offline_access`
/// (OIDC Core §11; the registration is the "other condition" that stands in for
/// `prompt=consent`); a public client proved a DPoP key to bind it to (RFC 9449 §5, RFC 9700
/// §4.14.2: sender-constrained or rotated — here both).
pub(crate) fn may_issue(client: &Client, scope: &[String], dpop_jkt: Option<&str>) -> bool {
    let openid = scope.iter().any(|s| s == "openid");
    client.grant_types.iter().any(|g| g == GRANT_REFRESH_TOKEN)
        && (!openid || scope.iter().any(|s| s == OFFLINE_ACCESS))
        && (client.auth_method != AuthMethod::None || dpop_jkt.is_some())
}

/// The key a new refresh token is bound to: a public client's DPoP key; confidential
/// clients' tokens are bound by client authentication.
pub(crate) fn binding(client: &Client, dpop_jkt: Option<&str>) -> Option<String> {
    (client.auth_method == AuthMethod::None)
        .then(|| dpop_jkt.map(str::to_owned))
        .flatten()
}

/// A syntactically complete `refresh_token` request (RFC 6749 §6).
#[derive(Debug)]
pub(crate) struct RefreshRequest<'a> {
    pub refresh_token: &'a str,
    pub scope: Option<&'a str>,
}

pub(crate) fn parse_request(params: &Params) -> Result<RefreshRequest<'_>, OAuthError> {
    Ok(RefreshRequest {
        refresh_token: params.require("refresh_token")?,
        scope: params.get("scope"),
    })
}

/// RFC 6749 §6: the requested scope, which must not exceed the grant's; the grant's when
/// none is requested.
pub(crate) fn narrowed_scope(granted: &[String], requested: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(granted.to_vec());
    };
    let mut out: Vec<String> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !granted.iter().any(|g| g == s) {
            return Err(OAuthError::invalid_scope(
                "the requested scope exceeds the scope of the grant",
            ));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if out.is_empty() {
        return Err(OAuthError::invalid_scope("scope is empty"));
    }
    Ok(out)
}

/// Unknown, expired, rotated, revoked, or another client's: one answer.
pub(crate) fn unknown_token() -> OAuthError {
    OAuthError::invalid_grant("the refresh token is invalid, expired, or was revoked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client::test_client;

    fn scope(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn tokens_carry_their_grant_and_256_random_bits() {
        let t = new_token("g-1_A");
        assert_eq!(grant_of(&t), Some("g-1_A"));
        assert_ne!(new_token("g"), new_token("g"));
        for bad in [
            "",
            "g",
            ".x",
            "g.short",
            "g.!!!",
            &format!("a b.{}", "A".repeat(43)),
        ] {
            assert_eq!(grant_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn issued_only_when_registered_asked_for_and_bindable() {
        let mut c = test_client("a");
        let oidc = scope("openid offline_access");
        assert!(!may_issue(&c, &oidc, None), "not registered for refresh_token");
        c.grant_types.push(GRANT_REFRESH_TOKEN.into());
        assert!(may_issue(&c, &oidc, None));
        assert!(
            !may_issue(&c, &scope("openid email"), None),
            "OIDC needs offline_access"
        );
        assert!(
            may_issue(&c, &scope("api"), None),
            "plain OAuth needs no offline_access"
        );
        c.auth_method = AuthMethod::None;
        assert!(
            !may_issue(&c, &oidc, None),
            "a public client must prove a DPoP key"
        );
        assert!(may_issue(&c, &oidc, Some("jkt")));
        assert_eq!(binding(&c, Some("jkt")).as_deref(), Some("jkt"));
        c.auth_method = AuthMethod::ClientSecretBasic;
        assert_eq!(binding(&c, Some("jkt")), None);
    }

    #[test]
    fn scope_may_only_narrow() {
        let granted = scope("openid email offline_access");
        assert_eq!(narrowed_scope(&granted, None).unwrap(), granted);
        assert_eq!(narrowed_scope(&granted, Some("openid")).unwrap(), scope("openid"));
        assert_eq!(
            narrowed_scope(&granted, Some("openid profile"))
                .unwrap_err()
                .code(),
            "invalid_scope"
        );
        let p = Params::from_pairs([("refresh_token", "t")]);
        assert_eq!(parse_request(&p).unwrap().refresh_token, "t");
        assert_eq!(
            parse_request(&Params::default()).unwrap_err().code(),
            "invalid_request"
        );
    }
}
