//! The token endpoint's rules (RFC 6749 §4.1.3, §5; RFC 7636 §4.6; RFC 9700 §4.8) and the
//! claims of what it issues: the ID token (OIDC Core §2, §3.1.3.6) and the JWT access token
//! (RFC 9068 §2). Pure: the caller passes the record taken from the store, the
//! authenticated client and `now`; the caller signs the claims (`crate::signing`).
//!
//! Access-token `aud` (RFC 9068 §2.2, RFC 8707 §2): the `resource` values of the
//! authorization request when there are any, otherwise the userinfo endpoint URL, the only
//! resource this server itself serves. Userinfo accepts a token only when its URL is in `aud`.

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};

use super::authorization_details;
use super::code::AuthorizationCode;
use super::error::OAuthError;
use super::params::Params;
use super::pkce;
use crate::crypto::b64url_encode;

pub(crate) const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
/// JWT `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// A syntactically complete `authorization_code` token request (RFC 6749 §4.1.3). Checked
/// before the code is taken, so a malformed request does not burn the code.
#[derive(Debug)]
pub(crate) struct CodeRequest<'a> {
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: Option<&'a str>,
}

/// The grants this token endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantType {
    AuthorizationCode,
    RefreshToken,
}

/// RFC 6749 §5.2: missing `grant_type` → `invalid_request`; any other than
/// `authorization_code` and `refresh_token` → `unsupported_grant_type`.
pub(crate) fn grant_type(params: &Params) -> Result<GrantType, OAuthError> {
    match params.require("grant_type")? {
        GRANT_AUTHORIZATION_CODE => Ok(GrantType::AuthorizationCode),
        super::refresh::GRANT_REFRESH_TOKEN => Ok(GrantType::RefreshToken),
        other => Err(OAuthError::unsupported_grant_type(format!(
            "grant_type '{}' is not supported; use authorization_code or refresh_token",
            truncate(other)
        ))),
    }
}

/// Reads `grant_type` and the parameters of the grant.
/// Missing `grant_type` → `invalid_request`; anything but `authorization_code` →
/// `unsupported_grant_type` (RFC 6749 §5.2). The resource owner password grant is refused on
/// purpose (RFC 9700 §2.4, FAPI 2.0 §5.3.2.1).
pub(crate) fn parse_code_request(params: &Params) -> Result<CodeRequest<'_>, OAuthError> {
    let grant_type = params.require("grant_type")?;
    if grant_type != GRANT_AUTHORIZATION_CODE {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant_type '{}' is not supported; use authorization_code",
            truncate(grant_type)
        )));
    }
    Ok(CodeRequest {
        code: params.require("code")?,
        // RFC 6749 §4.1.3: required when it was in the authorization request; with PAR it
        // always is (RFC 9126 requires a registered redirect_uri to be pushed).
        redirect_uri: params.require("redirect_uri")?,
        code_verifier: params.get("code_verifier"),
    })
}

impl CodeRequest<'_> {
    /// The PKCE challenge this request's verifier answers (RFC 7636 §4.6), `None` without a
    /// verifier; compared by the store with the code's own before anything is consumed.
    pub(crate) fn challenge(&self) -> Result<Option<String>, OAuthError> {
        self.code_verifier.map(pkce::challenge_of).transpose()
    }
}

/// Why the code's own client is refused, by the field of the code that did not match
/// (RFC 6749 §4.1.3, RFC 7636 §4.6; RFC 9700 §4.8.2: a verifier without a challenge is a
/// PKCE downgrade attempt). Every refusal is `invalid_grant`; the code stays redeemable.
pub(crate) fn mismatch(field: &str, request: &CodeRequest<'_>) -> OAuthError {
    OAuthError::invalid_grant(match field {
        "redirect_uri" => "redirect_uri does not match the one of the authorization request",
        "code_challenge" if request.code_verifier.is_none() => "code_verifier is required",
        "code_challenge" => "code_verifier does not match the code_challenge (or the request had none)",
        _ => "the authorization code does not match this request",
    })
}

/// Unknown, expired, used, or another client's: one answer that reveals nothing more.
pub(crate) fn unknown_code() -> OAuthError {
    OAuthError::invalid_grant("the authorization code is invalid, expired, or was already used")
}

/// RFC 9449 §10: the code is bound to a DPoP key (`dpop_jkt`, compared by the store with the
/// token request's proof before anything is consumed) and the request has no proof, or one
/// by another key. `invalid_grant`; the code stays redeemable with the right proof.
pub(crate) fn dpop_mismatch(proof_sent: bool) -> OAuthError {
    OAuthError::invalid_grant(if proof_sent {
        "the DPoP proof's key is not the one the code is bound to (dpop_jkt)"
    } else {
        "the code is bound to a DPoP key: a DPoP proof is required"
    })
}

pub(crate) fn has_openid(scope: &[String]) -> bool {
    scope.iter().any(|s| s == "openid")
}

/// `aud` serialises as a string when there is one audience (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub(crate) fn from_vec(mut v: Vec<String>) -> Self {
        if v.len() == 1 {
            Audience::One(v.remove(0))
        } else {
            Audience::Many(v)
        }
    }

    pub fn contains(&self, s: &str) -> bool {
        match self {
            Audience::One(a) => a == s,
            Audience::Many(v) => v.iter().any(|a| a == s),
        }
    }
}

/// RFC 9068 §2.2 claims, plus `gid`: the grant id that revocation on code replay targets.
/// NumericDates are integers.
#[derive(Debug, Clone, Serialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    pub auth_time: u64,
    pub gid: String,
    /// Claims the client asked userinfo for by name (OIDC Core §5.5), for `/userinfo`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub userinfo_claims: Vec<String>,
    /// RFC 9396 §9.1: the granted authorization details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<Value>,
    /// RFC 9449 §6.1: the DPoP key the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` (confirmation) claim of a DPoP-bound token (RFC 7800 §3.1, RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// JWK SHA-256 thumbprint of the DPoP key.
    pub jkt: String,
}

/// What a resource (userinfo) needs from a verified access token. `exp`, `iss`, `aud` are
/// checked by the verifier; they are not read here, so a fractional NumericDate cannot
/// break deserialisation.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct VerifiedAccessToken {
    pub sub: String,
    /// For the revocation deny-list (RFC 7009).
    pub jti: String,
    pub client_id: String,
    #[serde(default)]
    pub scope: String,
    pub gid: String,
    #[serde(default)]
    pub userinfo_claims: Vec<String>,
    #[serde(default)]
    pub cnf: Option<Confirmation>,
}

impl VerifiedAccessToken {
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// What an access token is minted from: a redeemed code, or a refreshed grant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grant<'a> {
    pub client_id: &'a str,
    pub sub: &'a str,
    pub scope: &'a [String],
    pub auth_time: u64,
    pub resource: &'a [String],
    pub grant_id: &'a str,
    /// Claims asked for by name for userinfo (OIDC Core §5.5).
    pub userinfo_claims: &'a [String],
    /// RFC 9396 authorization details granted (compact JSON array).
    pub authorization_details: Option<&'a str>,
}

impl<'a> From<&'a AuthorizationCode> for Grant<'a> {
    fn from(c: &'a AuthorizationCode) -> Self {
        Self {
            client_id: &c.client_id,
            sub: &c.sub,
            scope: &c.scope,
            auth_time: c.auth_time,
            resource: &c.resource,
            grant_id: &c.grant_id,
            userinfo_claims: &c.claims.userinfo,
            authorization_details: c.authorization_details.as_deref(),
        }
    }
}

/// The access token's audience: the requested resources, else the userinfo URL.
pub(crate) fn access_token_audience(resource: &[String], userinfo_url: &str) -> Audience {
    if resource.is_empty() {
        Audience::One(userinfo_url.to_owned())
    } else {
        Audience::from_vec(resource.to_vec())
    }
}

pub(crate) fn access_token_claims(
    record: Grant<'_>,
    issuer: &str,
    userinfo_url: &str,
    now: u64,
    lifetime: u64,
    jti: String,
    dpop_jkt: Option<String>,
) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: issuer.to_owned(),
        sub: record.sub.to_owned(),
        aud: access_token_audience(record.resource, userinfo_url),
        exp: now + lifetime,
        iat: now,
        jti,
        client_id: record.client_id.to_owned(),
        scope: record.scope.join(" "),
        auth_time: record.auth_time,
        gid: record.grant_id.to_owned(),
        userinfo_claims: record.userinfo_claims.to_vec(),
        authorization_details: record.authorization_details.and_then(authorization_details::json),
        cnf: dpop_jkt.map(|jkt| Confirmation { jkt }),
    }
}

/// OIDC Core §3.1.3.6 `at_hash`: base64url of the left-most half of the hash of the access
/// token's ASCII octets, with the hash of the ID token's `alg` (SHA-512 for EdDSA/Ed25519,
/// OIDC Core errata and RFC 8037 usage; SHA-256 for ES256, PS256, RS256).
pub fn at_hash(access_token: &str, alg: Algorithm) -> String {
    let digest: Vec<u8> = match alg {
        Algorithm::EdDSA | Algorithm::PS512 | Algorithm::RS512 => {
            Sha512::digest(access_token.as_bytes()).to_vec()
        }
        Algorithm::ES384 | Algorithm::PS384 | Algorithm::RS384 => {
            sha2::Sha384::digest(access_token.as_bytes()).to_vec()
        }
        _ => Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    b64url_encode(&digest[..digest.len() / 2])
}

/// ID token claims (OIDC Core §2): `iss`, `sub`, `aud` = client_id, `exp`, `iat`,
/// `auth_time`, `nonce` (when the request had one), `at_hash`, and the user's claims for the
/// granted scopes. Registered claims win over user claims of the same name.
pub(crate) fn id_token_claims(
    record: &AuthorizationCode,
    user_claims: Map<String, Value>,
    issuer: &str,
    now: u64,
    lifetime: u64,
    at_hash: String,
) -> Map<String, Value> {
    let mut claims = user_claims;
    let mut set = |k: &str, v: Value| {
        claims.insert(k.to_owned(), v);
    };
    set("iss", Value::from(issuer));
    set("sub", Value::from(record.sub.as_str()));
    set("aud", Value::from(record.client_id.as_str()));
    set("exp", Value::from(now + lifetime));
    set("iat", Value::from(now));
    set("auth_time", Value::from(record.auth_time));
    // RFC 8176 §2: the one authentication method, a password. No `acr` is asserted: with a
    // single method there is no level to tell apart (`acr_values` is voluntary, OIDC Core
    // §3.1.2.1, and ignored).
    set("amr", serde_json::json!(["pwd"]));
    set("at_hash", Value::from(at_hash));
    if let Some(nonce) = &record.nonce {
        set("nonce", Value::from(nonce.as_str()));
    }
    claims
}

/// RFC 6749 §5.1 success body.
#[derive(Debug, Serialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// RFC 9396 §7: the granted authorization details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<Value>,
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn record() -> AuthorizationCode {
        AuthorizationCode {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: vec!["openid".into(), "email".into()],
            code_challenge: Some(CHALLENGE.into()),
            nonce: Some("n-0S6".into()),
            sub: "u1".into(),
            auth_time: 1000,
            resource: vec![],
            claims: Default::default(),
            authorization_details: None,
            grant_id: "g1".into(),
            dpop_jkt: None,
            flow_id: "f1".into(),
            trace: None,
        }
    }

    fn params(s: &str) -> Params {
        Params::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn grant_type_rules() {
        let cases = [
            ("code=c&redirect_uri=x", "invalid_request"),
            (
                "grant_type=password&username=a&password=b",
                "unsupported_grant_type",
            ),
            (
                "grant_type=refresh_token&refresh_token=r",
                "unsupported_grant_type",
            ),
            ("grant_type=client_credentials", "unsupported_grant_type"),
            ("grant_type=authorization_code&redirect_uri=x", "invalid_request"),
            ("grant_type=authorization_code&code=c", "invalid_request"),
        ];
        for (body, code) in cases {
            assert_eq!(
                parse_code_request(&params(body)).unwrap_err().code(),
                code,
                "{body}"
            );
        }
        let p = params("grant_type=authorization_code&code=c&redirect_uri=x&code_verifier=v");
        let r = parse_code_request(&p).unwrap();
        assert_eq!((r.code, r.redirect_uri, r.code_verifier), ("c", "x", Some("v")));
    }

    #[test]
    fn the_verifier_becomes_the_challenge_the_store_compares() {
        let p = params(&format!(
            "grant_type=authorization_code&code=c&redirect_uri=x&code_verifier={VERIFIER}"
        ));
        let r = parse_code_request(&p).unwrap();
        assert_eq!(r.challenge().unwrap().as_deref(), Some(CHALLENGE));
        assert_eq!(mismatch("code_challenge", &r).code(), "invalid_grant");
        let p = params("grant_type=authorization_code&code=c&redirect_uri=x");
        let r = parse_code_request(&p).unwrap();
        assert_eq!(r.challenge().unwrap(), None);
        assert_eq!(
            mismatch("code_challenge", &r).description,
            "code_verifier is required"
        );
        let p = params("grant_type=authorization_code&code=c&redirect_uri=x&code_verifier=short");
        assert_eq!(
            parse_code_request(&p).unwrap().challenge().unwrap_err().code(),
            "invalid_grant"
        );
    }

    #[test]
    fn grant_types_served() {
        let cases = [
            ("grant_type=authorization_code", Ok(GrantType::AuthorizationCode)),
            ("grant_type=refresh_token", Ok(GrantType::RefreshToken)),
            ("grant_type=password", Err("unsupported_grant_type")),
            ("code=c", Err("invalid_request")),
        ];
        for (body, expected) in cases {
            assert_eq!(
                grant_type(&params(body)).map_err(|e| e.code()),
                expected,
                "{body}"
            );
        }
    }

    #[test]
    fn a_dpop_bound_code_refused_says_why() {
        assert_eq!(dpop_mismatch(false).code(), "invalid_grant");
        assert!(dpop_mismatch(false).description.contains("proof is required"));
        assert!(dpop_mismatch(true).description.contains("dpop_jkt"));
    }

    #[test]
    fn at_hash_follows_the_oidc_example() {
        // OIDC Core Appendix A.3 / A.4: access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        // has at_hash "77QmUPtjPfzWtF2AnpK9RQ" (RS256 → SHA-256).
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", Algorithm::RS256),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        // EdDSA uses SHA-512: 32 bytes → 43 characters.
        assert_eq!(at_hash("x", Algorithm::EdDSA).len(), 43);
        assert_eq!(at_hash("x", Algorithm::ES256).len(), 22);
    }

    #[test]
    fn claims_are_built_from_the_record() {
        let claims = |jkt: Option<&str>| {
            let r = record();
            access_token_claims(
                (&r).into(),
                "https://as",
                "https://as/ui",
                100,
                600,
                "j".into(),
                jkt.map(str::to_owned),
            )
        };
        let at = claims(None);
        assert!(serde_json::to_value(&at).unwrap().get("cnf").is_none());
        let bound = claims(Some("k"));
        assert_eq!(
            serde_json::to_value(&bound).unwrap()["cnf"],
            serde_json::json!({ "jkt": "k" })
        );
        assert_eq!(at.aud, Audience::One("https://as/ui".into()));
        assert_eq!((at.exp, at.iat, at.auth_time), (700, 100, 1000));
        assert_eq!(at.scope, "openid email");
        assert_eq!(at.gid, "g1");
        let with_resources = AuthorizationCode {
            resource: vec!["https://api.a".into(), "https://api.b".into()],
            ..record()
        };
        let aud = access_token_claims(
            (&with_resources).into(),
            "https://as",
            "https://as/ui",
            0,
            1,
            "j".into(),
            None,
        )
        .aud;
        assert!(aud.contains("https://api.b") && !aud.contains("https://as/ui"));
        assert_eq!(serde_json::to_value(&aud).unwrap().as_array().unwrap().len(), 2);

        let mut user = Map::new();
        user.insert("sub".into(), "spoof".into());
        user.insert("email".into(), "a@x".into());
        let id = id_token_claims(&record(), user, "https://as", 100, 300, "h".into());
        assert_eq!(id["sub"], "u1");
        assert_eq!(id["aud"], "app");
        assert_eq!(id["nonce"], "n-0S6");
        assert_eq!(id["email"], "a@x");
        assert_eq!(id["exp"], 400);
        assert!(id["exp"].is_u64());
        let no_nonce = AuthorizationCode {
            nonce: None,
            ..record()
        };
        assert!(!id_token_claims(&no_nonce, Map::new(), "i", 0, 1, "h".into()).contains_key("nonce"));
    }
}
