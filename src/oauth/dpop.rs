//! DPoP proofs (RFC 9449): verification of a `DPoP` header's proof JWT (§4.3). What binds
//! codes and tokens to the proof's key (thumbprint, `ath`, `dpop_jkt`) is in
//! `oauth::dpop_binding`, re-exported here.
//!
//! Pure: the caller passes the endpoint's public URL (derived from the issuer, never from
//! request headers, so it is right behind the load balancer), the method, `now` and the
//! policy; it records the returned `jti` in the store to refuse replays on every replica,
//! and checks the server nonce (`oauth::dpop_nonce`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

pub use super::dpop_binding::{ath, parse_jkt, thumbprint};
use super::error::OAuthError;

/// The proof's JOSE `typ` (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";
/// The token type of a DPoP-bound access token (RFC 9449 §5).
pub const TOKEN_TYPE: &str = "DPoP";
/// A proof larger than this is refused before any parsing (hostile input stays cheap).
const MAX_PROOF_LEN: usize = 8 * 1024;
const MAX_JTI_LEN: usize = 256;
/// JWK members that only a private key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The algorithms a deployment accepts, and the `iat` window.
#[derive(Debug, Clone)]
pub struct ProofPolicy {
    /// Asymmetric algorithms only (RFC 9449 §4.3 check 5; configuration refuses the rest).
    pub algs: Vec<Algorithm>,
    /// How old a proof's `iat` may be, in seconds.
    pub max_age: u64,
    /// How far in the future `iat` may be (clock skew), in seconds.
    pub leeway: u64,
}

impl ProofPolicy {
    /// The algorithm names, in configured order (metadata, challenges).
    pub fn alg_names(&self) -> Vec<String> {
        self.algs.iter().map(|a| format!("{a:?}")).collect()
    }

    /// How long a proof's `jti` must be remembered: as long as its `iat` could be accepted.
    pub fn jti_lifetime(&self) -> u64 {
        self.max_age + self.leeway + 1
    }
}

/// The DPoP rules of a deployment: the proof policy, and the nonce keys when nonces are in
/// use (`None`: no client requires nonces and no key is configured).
#[derive(Debug)]
pub struct DpopRules {
    pub policy: ProofPolicy,
    pub nonces: Option<super::dpop_nonce::NonceKeys>,
}

/// What the proof must match: the request it came with.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's HTTP method.
    pub method: &'a str,
    /// The endpoint's public URL (from the issuer).
    pub url: &'a str,
    /// At a resource endpoint: the access token the proof must be bound to (`ath`).
    pub access_token: Option<&'a str>,
    pub now: u64,
}

/// A verified proof.
#[derive(Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof's public key, base64url.
    pub jkt: String,
    pub jti: String,
    /// The server nonce the proof carries, if any (checked by the caller, §8).
    pub nonce: Option<String>,
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proof")
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

/// Why a proof was refused, as a bounded label for metrics and span attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Malformed,
    Typ,
    Alg,
    Jwk,
    Signature,
    Htm,
    Htu,
    Iat,
    Jti,
    Ath,
}

impl Failure {
    pub fn label(self) -> &'static str {
        match self {
            Failure::Malformed => "malformed",
            Failure::Typ => "typ",
            Failure::Alg => "alg",
            Failure::Jwk => "jwk",
            Failure::Signature => "signature",
            Failure::Htm => "htm",
            Failure::Htu => "htu",
            Failure::Iat => "iat",
            Failure::Jti => "jti",
            Failure::Ath => "ath",
        }
    }
}

/// A refused proof: the reason label and the client-facing error (`invalid_dpop_proof`).
#[derive(Debug, Clone)]
pub struct Refused {
    pub reason: Failure,
    pub error: OAuthError,
}

fn refuse(reason: Failure, why: &'static str) -> Refused {
    Refused {
        reason,
        error: OAuthError::invalid_dpop_proof(why),
    }
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    /// NumericDate; a fraction is legal (RFC 7519 §2).
    iat: Option<f64>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// RFC 9449 §4.3: checks the proof of one request.
pub fn verify(proof: &str, expected: &Expected<'_>, policy: &ProofPolicy) -> Result<Proof, Refused> {
    // Check 1 and 2: one well-formed JWS in compact form.
    if proof.len() > MAX_PROOF_LEN || proof.split('.').count() != 3 {
        return Err(refuse(Failure::Malformed, "the DPoP proof is not a JWT"));
    }
    let header = decode_segment(proof.split('.').next().unwrap_or_default())
        .ok_or_else(|| refuse(Failure::Malformed, "the DPoP proof header is not readable"))?;
    // Check 4: typ.
    if header.get("typ").and_then(Value::as_str) != Some(PROOF_TYP) {
        return Err(refuse(Failure::Typ, "the DPoP proof's typ must be dpop+jwt"));
    }
    // Check 5: an asymmetric algorithm this server accepts (never `none`, never HMAC).
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<Algorithm>().ok())
        .filter(|a| policy.algs.contains(a))
        .ok_or_else(|| refuse(Failure::Alg, "the DPoP proof's alg is not supported"))?;
    // Check 7: a public key only.
    let jwk = public_jwk(header.get("jwk"))?;
    let jkt = thumbprint(&jwk).ok_or_else(|| refuse(Failure::Jwk, "the DPoP proof's jwk is not usable"))?;
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|_| refuse(Failure::Jwk, "the DPoP proof's jwk is not usable"))?;

    // Check 6: the signature, with the key in the header. No registered claim is required
    // by the library: §4.3 has its own rules, checked below.
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(proof, &key, &validation)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::Json(_) => refuse(Failure::Malformed, "the DPoP proof's claims are not readable"),
                K::InvalidAlgorithm | K::InvalidKeyFormat | K::InvalidEcdsaKey | K::InvalidRsaKey(_) => {
                    refuse(Failure::Jwk, "the DPoP proof's jwk does not fit its alg")
                }
                _ => refuse(Failure::Signature, "the DPoP proof's signature is invalid"),
            }
        })?
        .claims;

    // Check 3: the required claims.
    let (Some(jti), Some(htm), Some(htu), Some(iat)) = (claims.jti, claims.htm, claims.htu, claims.iat)
    else {
        return Err(refuse(
            Failure::Malformed,
            "the DPoP proof must have jti, htm, htu and iat",
        ));
    };
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(refuse(
            Failure::Jti,
            "the DPoP proof's jti is missing or too long",
        ));
    }
    // Check 8: htm is the request's method.
    if htm != expected.method {
        return Err(refuse(
            Failure::Htm,
            "the DPoP proof's htm is not this request's method",
        ));
    }
    // Check 9: htu is this endpoint's URL, without query and fragment (§4.3, RFC 3986 §6.2).
    if !same_target(&htu, expected.url) {
        return Err(refuse(Failure::Htu, "the DPoP proof's htu is not this endpoint"));
    }
    // Check 11: iat within the window (§11.1).
    let now = expected.now as f64;
    if iat < now - policy.max_age as f64 || iat > now + policy.leeway as f64 {
        return Err(refuse(
            Failure::Iat,
            "the DPoP proof's iat is outside the accepted window",
        ));
    }
    // Check 12: at a resource, ath is the hash of the presented token.
    if let Some(token) = expected.access_token
        && claims.ath.as_deref() != Some(ath(token).as_str())
    {
        return Err(refuse(
            Failure::Ath,
            "the DPoP proof's ath does not match the access token",
        ));
    }
    Ok(Proof {
        jkt,
        jti,
        nonce: claims.nonce,
    })
}

/// The JSON object in a base64url JWS segment.
fn decode_segment(segment: &str) -> Option<serde_json::Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The header's `jwk`: an asymmetric public key (EC, RSA, OKP) without private members.
fn public_jwk(value: Option<&Value>) -> Result<Jwk, Refused> {
    let Some(Value::Object(members)) = value else {
        return Err(refuse(
            Failure::Jwk,
            "the DPoP proof must carry its public key in jwk",
        ));
    };
    if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
        return Err(refuse(
            Failure::Jwk,
            "the DPoP proof's jwk must not contain a private key",
        ));
    }
    let jwk: Jwk = serde_json::from_value(Value::Object(members.clone()))
        .map_err(|_| refuse(Failure::Jwk, "the DPoP proof's jwk is not a valid JWK"))?;
    match jwk.algorithm {
        AlgorithmParameters::EllipticCurve(_)
        | AlgorithmParameters::RSA(_)
        | AlgorithmParameters::OctetKeyPair(_) => Ok(jwk),
        _ => Err(refuse(
            Failure::Jwk,
            "the DPoP proof's jwk must be an asymmetric public key",
        )),
    }
}

/// `htu` against the endpoint URL: both parsed (scheme and host lower-cased, default port
/// dropped, dot segments removed), the proof's query and fragment ignored (RFC 9449 §4.3).
fn same_target(htu: &str, endpoint: &str) -> bool {
    let (Ok(mut htu), Ok(endpoint)) = (url::Url::parse(htu), url::Url::parse(endpoint)) else {
        return false;
    };
    htu.set_query(None);
    htu.set_fragment(None);
    htu.username().is_empty() && htu.password().is_none() && htu == endpoint
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    pub(crate) const URL: &str = "https://as.example/oauth2/token";
    const NOW: u64 = 1_700_000_000;

    /// A client's DPoP key pair: a fresh P-256 key.
    pub(crate) struct ClientKey {
        pub encoding: EncodingKey,
        pub jwk: Value,
    }

    impl ClientKey {
        pub(crate) fn es256() -> Self {
            let pkcs8 = crate::crypto::generate_es256_pkcs8().unwrap();
            let encoding = EncodingKey::from_ec_der(&pkcs8);
            let jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
            let mut jwk = serde_json::to_value(jwk).unwrap();
            // The library's JWK names alg and use; a client's proof key need not.
            jwk.as_object_mut()
                .unwrap()
                .retain(|k, _| ["kty", "crv", "x", "y"].contains(&k.as_str()));
            Self { encoding, jwk }
        }

        pub(crate) fn jkt(&self) -> String {
            thumbprint(&serde_json::from_value(self.jwk.clone()).unwrap()).unwrap()
        }

        /// A proof with `header` and `claims` merged over valid defaults.
        pub(crate) fn proof_with(&self, header: Value, claims: Value) -> String {
            let mut h = json!({ "typ": PROOF_TYP, "alg": "ES256", "jwk": self.jwk });
            merge(&mut h, header);
            let mut c =
                json!({ "jti": uuid::Uuid::new_v4().to_string(), "htm": "POST", "htu": URL, "iat": NOW });
            merge(&mut c, claims);
            sign_raw(&h, &c, &self.encoding)
        }
    }

    fn merge(base: &mut Value, over: Value) {
        if let (Some(b), Value::Object(o)) = (base.as_object_mut(), over) {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    b.insert(k, v);
                }
            }
        }
    }

    /// Signs exactly this header (the library's `Header` cannot carry arbitrary members).
    fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey) -> String {
        let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
        let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
        let input = format!("{h}.{c}");
        // Always an ES256 signature: a header naming another alg must be refused anyway.
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, Algorithm::ES256).unwrap();
        format!("{input}.{sig}")
    }

    fn policy() -> ProofPolicy {
        ProofPolicy {
            algs: vec![Algorithm::ES256, Algorithm::PS256, Algorithm::EdDSA],
            max_age: 60,
            leeway: 5,
        }
    }

    fn expected() -> Expected<'static> {
        Expected {
            method: "POST",
            url: URL,
            access_token: None,
            now: NOW,
        }
    }

    fn reason(proof: &str, expected: &Expected<'_>) -> &'static str {
        let refused = verify(proof, expected, &policy()).unwrap_err();
        assert_eq!(refused.error.code(), "invalid_dpop_proof");
        refused.reason.label()
    }

    #[test]
    fn a_valid_proof_yields_the_key_thumbprint() {
        let key = ClientKey::es256();
        let proof = key.proof_with(json!({}), json!({ "jti": "j1", "nonce": "n" }));
        let p = verify(&proof, &expected(), &policy()).unwrap();
        assert_eq!(p.jkt, key.jkt());
        assert_eq!((p.jti.as_str(), p.nonce.as_deref()), ("j1", Some("n")));
        // The query and fragment of htu are ignored; host case and default port normalised.
        for htu in [
            "https://as.example/oauth2/token?x=1",
            "https://AS.example:443/oauth2/token#f",
        ] {
            let proof = key.proof_with(json!({}), json!({ "htu": htu }));
            verify(&proof, &expected(), &policy()).unwrap();
        }
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1.
        let jwk: Jwk = serde_json::from_value(json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rfc9449_ath_example() {
        // RFC 9449 §7.1 example token and ath.
        assert_eq!(
            ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn each_malformed_proof_is_refused_for_its_reason() {
        let key = ClientKey::es256();
        let other = ClientKey::es256();
        let mut private = key.jwk.clone();
        private["d"] = json!("AAAA");
        let cases: Vec<(&str, String, &str)> = vec![
            ("not a JWT", "abc.def".into(), "malformed"),
            ("garbage header", "e30.e30.e30x".into(), "typ"),
            ("no typ", key.proof_with(json!({ "typ": null }), json!({})), "typ"),
            (
                "typ JWT",
                key.proof_with(json!({ "typ": "JWT" }), json!({})),
                "typ",
            ),
            (
                "alg none",
                key.proof_with(json!({ "alg": "none" }), json!({})),
                "alg",
            ),
            (
                "alg HS256",
                key.proof_with(json!({ "alg": "HS256" }), json!({})),
                "alg",
            ),
            (
                "alg not allowed",
                key.proof_with(json!({ "alg": "RS256" }), json!({})),
                "alg",
            ),
            ("no jwk", key.proof_with(json!({ "jwk": null }), json!({})), "jwk"),
            (
                "private jwk",
                key.proof_with(json!({ "jwk": private }), json!({})),
                "jwk",
            ),
            (
                "symmetric jwk",
                key.proof_with(json!({ "jwk": { "kty": "oct", "k": "c2VjcmV0" } }), json!({})),
                "jwk",
            ),
            (
                "jwk not a key",
                key.proof_with(json!({ "jwk": { "kty": "EC" } }), json!({})),
                "jwk",
            ),
            (
                "alg does not fit the key",
                key.proof_with(json!({ "alg": "EdDSA" }), json!({})),
                "jwk",
            ),
            (
                "signed by another key",
                key.proof_with(json!({ "jwk": other.jwk }), json!({})),
                "signature",
            ),
            (
                "no jti",
                key.proof_with(json!({}), json!({ "jti": null })),
                "malformed",
            ),
            (
                "no htm",
                key.proof_with(json!({}), json!({ "htm": null })),
                "malformed",
            ),
            (
                "no htu",
                key.proof_with(json!({}), json!({ "htu": null })),
                "malformed",
            ),
            (
                "no iat",
                key.proof_with(json!({}), json!({ "iat": null })),
                "malformed",
            ),
            (
                "empty jti",
                key.proof_with(json!({}), json!({ "jti": "" })),
                "jti",
            ),
            (
                "htm GET",
                key.proof_with(json!({}), json!({ "htm": "GET" })),
                "htm",
            ),
            (
                "htm lower case",
                key.proof_with(json!({}), json!({ "htm": "post" })),
                "htm",
            ),
            (
                "htu another endpoint",
                key.proof_with(json!({}), json!({ "htu": "https://as.example/oauth2/par" })),
                "htu",
            ),
            (
                "htu another host",
                key.proof_with(json!({}), json!({ "htu": "https://evil.example/oauth2/token" })),
                "htu",
            ),
            (
                "htu http",
                key.proof_with(json!({}), json!({ "htu": "http://as.example/oauth2/token" })),
                "htu",
            ),
            (
                "htu relative",
                key.proof_with(json!({}), json!({ "htu": "/oauth2/token" })),
                "htu",
            ),
            (
                "iat too old",
                key.proof_with(json!({}), json!({ "iat": NOW - 61 })),
                "iat",
            ),
            (
                "iat in the future",
                key.proof_with(json!({}), json!({ "iat": NOW + 6 })),
                "iat",
            ),
            (
                "iat a string",
                key.proof_with(json!({}), json!({ "iat": "now" })),
                "malformed",
            ),
        ];
        for (why, proof, expected_reason) in cases {
            let refused = verify(&proof, &expected(), &policy());
            let refused = refused.expect_err(why);
            assert_eq!(refused.error.code(), "invalid_dpop_proof", "{why}");
            assert_eq!(refused.reason.label(), expected_reason, "{why}");
        }
        // A tampered signature.
        let mut proof = key.proof_with(json!({}), json!({}));
        proof.push('A');
        assert_eq!(reason(&proof, &expected()), "signature");
        // An oversized proof.
        assert_eq!(reason(&"a.".repeat(5000), &expected()), "malformed");
    }

    #[test]
    fn at_a_resource_the_proof_must_carry_the_token_hash() {
        let key = ClientKey::es256();
        let at_resource = Expected {
            method: "GET",
            url: "https://as.example/oauth2/userinfo",
            access_token: Some("token-1"),
            now: NOW,
        };
        let htu = json!("https://as.example/oauth2/userinfo");
        let ok = key.proof_with(
            json!({}),
            json!({ "htm": "GET", "htu": htu, "ath": ath("token-1") }),
        );
        verify(&ok, &at_resource, &policy()).unwrap();
        let missing = key.proof_with(json!({}), json!({ "htm": "GET", "htu": htu }));
        assert_eq!(reason(&missing, &at_resource), "ath");
        let other = key.proof_with(
            json!({}),
            json!({ "htm": "GET", "htu": htu, "ath": ath("token-2") }),
        );
        assert_eq!(reason(&other, &at_resource), "ath");
    }
}
