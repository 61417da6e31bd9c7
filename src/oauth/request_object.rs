//! Signed request objects (JAR, RFC 9101) at PAR (RFC 9126 §3) and at `/authorize`: the
//! authorization parameters come from a JWT signed with one of the client's registered keys.
//! Pure: the caller passes the client, the issuer, the policy and `now`.
//!
//! Choices where the RFCs leave room: parameters outside the object are ignored (RFC 9101
//! §5; OIDC-Core-style clients repeat `response_type` and `scope` outside), except
//! `client_id`, which must name the same client; `typ` may be absent unless the policy is
//! strict, and is otherwise `oauth-authz-req+jwt` (§4), so no other kind of JWT (an ID
//! token, a DPoP proof, a client assertion) passes for a request object.

use std::borrow::Cow;

use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use super::client::{Client, Credential};
use super::client_auth::{ASSERTION_ALGS, CLOCK_SKEW_SECS, alg_name, client_key, has_crit, raw_header};
use super::error::OAuthError;
use super::params::Params;

/// The request object's media type without `application/` (RFC 9101 §10.8).
const TYP: &str = "oauth-authz-req+jwt";

/// What the configuration asks of request objects.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Longest accepted lifetime: `exp` at most this far after `nbf` (or now).
    pub max_lifetime_secs: u64,
    /// `typ` must be `oauth-authz-req+jwt` (otherwise it may also be absent).
    pub require_typ: bool,
    /// `nbf` must be present (FAPI 2.0 Message Signing §5.3.1).
    pub require_nbf: bool,
}

fn invalid(why: impl Into<String>) -> OAuthError {
    OAuthError::invalid_request_object(format!("request object rejected: {}", why.into()))
}

/// The authorization parameters of a request (RFC 9126 §3, RFC 9101 §5): those of its
/// signed request object when it has one (`request`), else the request's own — refused when
/// the client must sign its requests (RFC 9101 §10.5: `invalid_request`).
pub(crate) fn authorization_parameters<'p>(
    params: &'p Params,
    client: &Client,
    issuer: &str,
    policy: &Policy,
    now: u64,
) -> Result<Cow<'p, Params>, OAuthError> {
    match params.get("request") {
        Some(jwt) => {
            if params.get("client_id").is_some_and(|id| id != client.id) {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the request object's client",
                ));
            }
            Ok(Cow::Owned(verify(jwt, client, issuer, policy, now)?))
        }
        None if client.require_signed_request_object => Err(OAuthError::invalid_request(
            "this client must send its authorization request as a signed request object (request)",
        )),
        None => Ok(Cow::Borrowed(params)),
    }
}

/// Verifies `jwt` as `client`'s request object addressed to `issuer` and returns the
/// authorization parameters it carries (plus `client_id`). Every failure is
/// `invalid_request_object` naming the check that failed.
fn verify(jwt: &str, client: &Client, issuer: &str, policy: &Policy, now: u64) -> Result<Params, OAuthError> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| {
        match raw_header(jwt)
            .as_ref()
            .and_then(|h| h.get("alg")?.as_str().map(str::to_owned))
        {
            Some(alg) => invalid(format!("algorithm {alg} not allowed")),
            None => invalid("not a signed JWT"),
        }
    })?;
    // RFC 9101 §10.2 / RFC 8725 §3.1: asymmetric algorithms only; never `none`.
    if !ASSERTION_ALGS.contains(&header.alg) {
        return Err(invalid(format!(
            "algorithm {} not allowed",
            alg_name(&header.alg)
        )));
    }
    if has_crit(jwt) {
        return Err(invalid("unsupported critical header parameters (crit)"));
    }
    match header.typ.as_deref().map(str::to_ascii_lowercase) {
        Some(t) if t == TYP || t == format!("application/{TYP}") => {}
        None if !policy.require_typ => {}
        None => return Err(invalid(format!("typ must be {TYP}"))),
        Some(_) => return Err(invalid(format!("typ must be {TYP}"))),
    }
    let Credential::Jwks(jwks) = &client.credential else {
        return Err(invalid(
            "the client has no registered keys (jwks) to verify it with",
        ));
    };
    let key = client_key(jwks, &header).map_err(invalid)?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[issuer]);
    validation.set_issuer(&[&client.id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.validate_nbf = true;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(jwt, &key, &validation)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            invalid(match e.kind() {
                K::InvalidSignature => "bad signature",
                K::ExpiredSignature => "expired (exp)",
                K::ImmatureSignature => "not yet valid (nbf)",
                K::InvalidAudience => "aud must be the issuer",
                K::InvalidIssuer => "iss must be the client_id",
                K::MissingRequiredClaim(c) if c == "exp" => "exp is required",
                K::MissingRequiredClaim(_) => "iss and aud are required",
                _ => "malformed claims",
            })
        })?
        .claims;
    let number = |name: &str| claims.get(name).and_then(Value::as_u64);
    if policy.require_nbf && number("nbf").is_none() {
        return Err(invalid("nbf is required"));
    }
    let start = number("nbf")
        .unwrap_or(now)
        .max(now.saturating_sub(policy.max_lifetime_secs));
    if number("exp").is_some_and(|exp| exp > start + policy.max_lifetime_secs + CLOCK_SKEW_SECS) {
        return Err(invalid(format!(
            "lifetime too long (exp at most {} s after nbf)",
            policy.max_lifetime_secs
        )));
    }
    // RFC 9101 §6.3 / RFC 9126 §3: the object names its own client; no nesting.
    if claims
        .get("client_id")
        .is_some_and(|id| id.as_str() != Some(client.id.as_str()))
    {
        return Err(invalid("client_id does not match the authenticated client"));
    }
    if claims.contains_key("request") || claims.contains_key("request_uri") {
        return Err(invalid(
            "request and request_uri must not appear inside a request object",
        ));
    }
    Ok(Params::from_pairs(parameters(claims, &client.id)?))
}

/// The JWT claims as authorization parameters: strings as they are, numbers as decimals,
/// `resource` arrays as repeated parameters, JSON-valued parameters (`claims`,
/// `authorization_details`) as JSON text. The JWT's own claims are dropped.
fn parameters(claims: Map<String, Value>, client_id: &str) -> Result<Vec<(String, String)>, OAuthError> {
    let mut pairs = vec![("client_id".to_owned(), client_id.to_owned())];
    for (name, value) in claims {
        if matches!(
            name.as_str(),
            "iss" | "aud" | "exp" | "nbf" | "iat" | "jti" | "client_id"
        ) {
            continue;
        }
        match value {
            Value::String(s) => pairs.push((name, s)),
            Value::Number(n) => pairs.push((name, n.to_string())),
            Value::Array(items) if name == "resource" => {
                for item in items {
                    let s = item.as_str().ok_or_else(|| invalid("resource must be strings"))?;
                    pairs.push((name.clone(), s.to_owned()));
                }
            }
            Value::Object(_) | Value::Array(_) => pairs.push((name, value.to_string())),
            Value::Bool(_) | Value::Null => return Err(invalid(format!("{name} has an unusable value"))),
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_become_parameters() {
        let claims = serde_json::json!({
            "iss": "a", "aud": "x", "exp": 1, "client_id": "a", "scope": "openid",
            "max_age": 300, "resource": ["https://r1", "https://r2"],
            "claims": {"id_token": {"email": null}}, "authorization_details": [{"type": "t"}],
        });
        let Value::Object(map) = claims else {
            unreachable!()
        };
        let mut pairs = parameters(map, "a").unwrap();
        pairs.sort();
        let get = |n: &str| -> Vec<&str> {
            pairs
                .iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("client_id"), ["a"]);
        assert_eq!(get("max_age"), ["300"]);
        assert_eq!(get("resource"), ["https://r1", "https://r2"]);
        assert_eq!(get("claims"), [r#"{"id_token":{"email":null}}"#]);
        assert_eq!(get("authorization_details"), [r#"[{"type":"t"}]"#]);
        assert!(get("iss").is_empty() && get("exp").is_empty());
        let Value::Object(bad) = serde_json::json!({"prompt": true}) else {
            unreachable!()
        };
        assert!(parameters(bad, "a").is_err());
    }
}
