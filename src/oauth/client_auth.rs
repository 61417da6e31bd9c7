//! Client authentication rules shared by the PAR and token endpoints (RFC 9126 §2 says PAR
//! uses the token endpoint's rules): credential extraction (RFC 6749 §2.3), secret checks,
//! and `private_key_jwt` assertion verification (RFC 7523 §3, OIDC Core §9).
//!
//! Pure: the caller supplies the clock and records the assertion's `jti` in the store to
//! refuse replays.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::client::{AuthMethod, Client, ClientRegistry, Credential};
use super::error::OAuthError;
use super::params::Params;
use crate::crypto::constant_time_eq;
use crate::secret::Secret;

pub(crate) const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew allowed on assertion times (FAPI 2.0 §5.3.2.1: accept `iat`/`nbf` up to 10 s
/// in the future).
pub(crate) const CLOCK_SKEW_SECS: u64 = 10;
/// Longest accepted assertion lifetime; it bounds how long a `jti` must be remembered.
pub(crate) const MAX_ASSERTION_LIFETIME_SECS: u64 = 3600;
/// Asymmetric algorithms accepted for client assertions (RFC 8725 §3.1: no `none`, no HMAC
/// with a public key).
pub(crate) const ASSERTION_ALGS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::EdDSA,
];

/// The algorithms FAPI 2.0 §5.4 allows for anything signed or verified (`profile: fapi2`).
pub(crate) const FAPI2_ALGS: &[&str] = &["PS256", "ES256", "EdDSA"];

/// The credentials a request presented, before they are checked.
#[derive(Debug)]
pub(crate) enum Presented {
    Basic { client_id: String, secret: Secret },
    Post { client_id: String, secret: Secret },
    Assertion { client_id: String, jwt: Secret },
    None { client_id: String },
}

impl Presented {
    pub fn client_id(&self) -> &str {
        match self {
            Presented::Basic { client_id, .. }
            | Presented::Post { client_id, .. }
            | Presented::Assertion { client_id, .. }
            | Presented::None { client_id } => client_id,
        }
    }

    pub fn method(&self) -> AuthMethod {
        match self {
            Presented::Basic { .. } => AuthMethod::ClientSecretBasic,
            Presented::Post { .. } => AuthMethod::ClientSecretPost,
            Presented::Assertion { .. } => AuthMethod::PrivateKeyJwt,
            Presented::None { .. } => AuthMethod::None,
        }
    }
}

/// Reads the credentials from the `Authorization` header and the form. RFC 6749 §2.3: a
/// client MUST NOT use more than one method in a request.
pub(crate) fn extract(authorization: Option<&str>, params: &Params) -> Result<Presented, OAuthError> {
    let body_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let form_client_id = params.get("client_id");

    if let Some(header) = authorization {
        if body_secret.is_some() || assertion.is_some() {
            return Err(OAuthError::invalid_request(
                "more than one client authentication method used",
            ));
        }
        let (client_id, secret) = parse_basic(header)?;
        return Ok(Presented::Basic { client_id, secret });
    }
    if let Some(jwt) = assertion {
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "more than one client authentication method used",
            ));
        }
        if params.get("client_assertion_type") != Some(JWT_BEARER_ASSERTION) {
            return Err(OAuthError::invalid_request(format!(
                "client_assertion_type must be {JWT_BEARER_ASSERTION}"
            )));
        }
        // RFC 7523 §3: the client is the assertion's `sub` (checked against `iss` later).
        let client_id = unverified_subject(jwt)
            .ok_or_else(|| OAuthError::invalid_client("client_assertion is not a readable JWT"))?;
        if form_client_id.is_some_and(|id| id != client_id) {
            return Err(OAuthError::invalid_client(
                "client_id does not match the client_assertion",
            ));
        }
        return Ok(Presented::Assertion {
            client_id,
            jwt: Secret::new(jwt),
        });
    }
    let client_id = form_client_id
        .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?
        .to_owned();
    Ok(match body_secret {
        Some(secret) => Presented::Post {
            client_id,
            secret: Secret::new(secret),
        },
        None => Presented::None { client_id },
    })
}

/// RFC 6749 §2.3.1 / RFC 7617: `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn parse_basic(header: &str) -> Result<(String, Secret), OAuthError> {
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client("unsupported Authorization scheme"));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let id = form_decode(id).ok_or_else(bad)?;
    let secret = form_decode(secret).ok_or_else(bad)?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok((id, Secret::new(secret)))
}

/// `application/x-www-form-urlencoded` decoding of one component (`+` is a space).
fn form_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// An algorithm's JOSE name (`ES256`, …), as JWK `alg` and JWS `alg` both spell it.
pub(crate) fn alg_name<T: serde::Serialize>(alg: &T) -> String {
    serde_json::to_value(alg)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The client's key that verifies a JWS with `header`: the one its `kid` names, or the only
/// key; a key registered with an `alg` verifies that algorithm only (RFC 7517 §4.4). `Err`
/// says why there is none.
pub(crate) fn client_key(jwks: &JwkSet, header: &jsonwebtoken::Header) -> Result<DecodingKey, &'static str> {
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
    .ok_or("no registered key of the client matches its kid")?;
    if let Some(key_alg) = &jwk.common.key_algorithm
        && alg_name(key_alg) != alg_name(&header.alg)
    {
        return Err("algorithm does not match the client key's alg");
    }
    DecodingKey::from_jwk(jwk).map_err(|_| "the client's key is unusable")
}

/// A JWS's protected header as JSON, unverified (for what `jsonwebtoken` does not model:
/// `crit`, or an algorithm it does not know such as `none`).
pub(crate) fn raw_header(jwt: &str) -> Option<serde_json::Value> {
    jwt.split('.')
        .next()
        .and_then(|h| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Whether the JWS protected header carries `crit` (read before any other check).
pub(crate) fn has_crit(jwt: &str) -> bool {
    raw_header(jwt).is_some_and(|h| h.get("crit").is_some())
}

fn unverified_subject(jwt: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Sub {
        sub: String,
    }
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Sub>(&bytes).ok().map(|s| s.sub)
}

/// What a successful authentication yields.
#[derive(Debug)]
pub(crate) struct Authenticated<'a> {
    pub client: &'a std::sync::Arc<Client>,
    /// For `private_key_jwt`: the assertion's `jti` and how long it must be remembered.
    pub replay_guard: Option<(String, u64)>,
}

/// Checks presented credentials against the registry.
/// `audiences`: issuer, token endpoint URL and PAR endpoint URL (RFC 9126 §2).
pub fn authenticate<'a>(
    registry: &'a ClientRegistry,
    presented: &Presented,
    audiences: &[String],
    now: u64,
) -> Result<Authenticated<'a>, OAuthError> {
    let unknown = || OAuthError::invalid_client("client authentication failed");
    let client = registry.get(presented.client_id()).ok_or_else(unknown)?;
    // Each client has one registered method; any other fails (RFC 7591 §2).
    if presented.method() != client.auth_method {
        return Err(OAuthError::invalid_client(format!(
            "client is registered for {}",
            client.auth_method.as_str()
        )));
    }
    let replay_guard = match (presented, &client.credential) {
        (Presented::Basic { secret, .. } | Presented::Post { secret, .. }, Credential::Secret(expected)) => {
            if !constant_time_eq(secret.expose().as_bytes(), expected.expose().as_bytes()) {
                return Err(unknown());
            }
            None
        }
        (Presented::Assertion { jwt, .. }, Credential::Jwks(jwks)) => {
            Some(verify_assertion(&client.id, jwks, jwt.expose(), audiences, now)?)
        }
        (Presented::None { .. }, Credential::None) => None,
        _ => return Err(unknown()),
    };
    Ok(Authenticated { client, replay_guard })
}

#[derive(Deserialize)]
struct AssertionClaims {
    jti: String,
    exp: f64,
    #[serde(default)]
    iat: Option<f64>,
}

/// RFC 7523 §3 checks: signature by one of the client's keys, `iss` = `sub` = client_id,
/// `aud` one of ours, `exp` in the future, `iat`/`nbf` not in the future beyond the skew,
/// `jti` present. Returns `(jti, seconds to remember it)`.
fn verify_assertion(
    client_id: &str,
    jwks: &JwkSet,
    jwt: &str,
    audiences: &[String],
    now: u64,
) -> Result<(String, u64), OAuthError> {
    let invalid = |why: &str| OAuthError::invalid_client(format!("client_assertion rejected: {why}"));
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| invalid("malformed header"))?;
    if !ASSERTION_ALGS.contains(&header.alg) {
        return Err(invalid("algorithm not allowed"));
    }
    // RFC 7515 §4.1.11: a recipient MUST reject a JWS whose `crit` names extensions it does
    // not understand; this server understands none.
    if has_crit(jwt) {
        return Err(invalid("unsupported critical header parameters (crit)"));
    }
    let key = client_key(jwks, &header).map_err(invalid)?;

    let mut validation = Validation::new(header.alg);
    validation.set_audience(audiences);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.validate_nbf = true;
    let data = jsonwebtoken::decode::<AssertionClaims>(jwt, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => invalid("expired"),
            K::InvalidAudience => invalid("audience is not this server"),
            K::InvalidIssuer | K::InvalidSubject => invalid("iss and sub must be the client_id"),
            K::InvalidSignature => invalid("bad signature"),
            K::ImmatureSignature => invalid("not yet valid"),
            _ => invalid("invalid token"),
        }
    })?;
    let claims = data.claims;
    let now_f = now as f64;
    if claims.iat.is_some_and(|iat| iat > now_f + CLOCK_SKEW_SECS as f64) {
        return Err(invalid("issued in the future"));
    }
    if claims.exp > now_f + MAX_ASSERTION_LIFETIME_SECS as f64 {
        return Err(invalid("lifetime too long"));
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(invalid("jti is required"));
    }
    let remember = (claims.exp - now_f).max(0.0) as u64 + CLOCK_SKEW_SECS + 1;
    Ok((claims.jti, remember))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client::test_client;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn basic_credentials_are_percent_decoded() {
        let p = extract(Some(&basic("my%20app", "p%3Ass+word")), &Params::default()).unwrap();
        match p {
            Presented::Basic { client_id, secret } => {
                assert_eq!(client_id, "my app");
                assert_eq!(secret.expose(), "p:ss word");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_methods_in_one_request_are_refused() {
        let params = Params::from_pairs([("client_secret", "x")]);
        assert_eq!(
            extract(Some(&basic("a", "b")), &params).unwrap_err().code(),
            "invalid_request"
        );
    }

    #[test]
    fn secrets_are_checked_and_methods_enforced() {
        let registry = ClientRegistry::new([test_client("a")]);
        let ok = extract(Some(&basic("a", "s3cret")), &Params::default()).unwrap();
        assert!(authenticate(&registry, &ok, &[], 0).is_ok());
        let wrong = extract(Some(&basic("a", "nope")), &Params::default()).unwrap();
        assert_eq!(
            authenticate(&registry, &wrong, &[], 0).unwrap_err().code(),
            "invalid_client"
        );
        let post = extract(
            None,
            &Params::from_pairs([("client_id", "a"), ("client_secret", "s3cret")]),
        )
        .unwrap();
        assert_eq!(
            authenticate(&registry, &post, &[], 0).unwrap_err().code(),
            "invalid_client"
        );
        let none = extract(None, &Params::from_pairs([("client_id", "a")])).unwrap();
        assert_eq!(
            authenticate(&registry, &none, &[], 0).unwrap_err().code(),
            "invalid_client"
        );
        let unknown = extract(Some(&basic("zz", "s3cret")), &Params::default()).unwrap();
        assert_eq!(
            authenticate(&registry, &unknown, &[], 0).unwrap_err().code(),
            "invalid_client"
        );
    }

    #[test]
    fn malformed_basic_header_is_invalid_client() {
        for h in [
            "Basic",
            "Basic !!!",
            "Bearer abc",
            &format!("Basic {}", STANDARD.encode("nocolon")),
        ] {
            assert_eq!(
                extract(Some(h), &Params::default()).unwrap_err().code(),
                "invalid_client",
                "{h}"
            );
        }
    }
}
