//! The server's own signing keys: loaded from `keys: [...]` (PKCS#8 PEM inline or from a
//! file), published as a JWK Set, and used to sign and verify the tokens this server issues.
//!
//! - Algorithms: `ES256` (default), `PS256`, `EdDSA` (Ed25519), `RS256` (RSA ≥ 2048 bits).
//!   FAPI 2.0 §5.4 allows PS256, ES256 and EdDSA; RS256 is for relying parties that know
//!   nothing else (OIDC Core §15.1 makes it mandatory to implement). Never `none`, never HMAC.
//! - Rotation: exactly one key is `active` and signs; every configured key verifies and is
//!   published, so tokens signed by the previous key stay valid until they expire.
//! - `kid` is in every token header; it defaults to the RFC 7638 JWK thumbprint (SHA-256).
//! - With no key configured and no Redis (the single-process demo) an ES256 key is generated
//!   at start. With Redis, replicas must share keys, so configuration validation refuses that.
//!
//! Private key material never leaves this module — except a freshly generated key that
//! `par-server gen-key` writes to its file ([`crate::crypto::generate_es256_pkcs8`]):
//! [`SigningKeys::jwks`] holds public parameters only, and `Debug` is redacted by
//! `jsonwebtoken::EncodingKey`.

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, TokenData, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Smallest RSA modulus accepted (FAPI 2.0 §5.4.1, RFC 7518 §3.3).
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// Signing algorithms a key may be configured with.
pub(crate) const SUPPORTED_ALGS: &[&str] = &["ES256", "PS256", "EdDSA", "RS256"];

/// One key: private part for signing (if active), public part for verifying and publishing.
pub(crate) struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// ES256 only: the parsed key pair, kept for the process's life. `jsonwebtoken::encode`
    /// re-parses the PKCS#8 document (and recomputes the public point) on every call, which a
    /// profile of `/token` put at ~40 % of its signing cost (docs/benchmarks.md).
    es256: Option<aws_lc_rs::signature::EcdsaKeyPair>,
    decoding: DecodingKey,
    public: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Builds a key from PKCS#8 PEM for `alg`; checks the key type, the RSA size, and that a
    /// signature made with it verifies with the published public part.
    pub(crate) fn from_pem(pem: &[u8], alg: Algorithm, kid: Option<String>) -> Result<Self, String> {
        let encoding = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            Algorithm::PS256 | Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            other => return Err(format!("unsupported algorithm {other:?}")),
        }
        .map_err(|e| format!("not a PKCS#8 PEM private key for {}: {e}", alg_name(alg)))?;
        Self::from_encoding_key(encoding, alg, kid)
    }

    fn from_encoding_key(encoding: EncodingKey, alg: Algorithm, kid: Option<String>) -> Result<Self, String> {
        let mut public = Jwk::from_encoding_key(&encoding, alg)
            .map_err(|e| format!("not a usable {} private key: {e}", alg_name(alg)))?;
        if let jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) = &public.algorithm {
            let bits = modulus_bits(&rsa.n);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
        }
        let kid = match kid {
            Some(k) if !k.trim().is_empty() => k,
            Some(_) => return Err("kid must not be empty".into()),
            // RFC 7638 §3: SHA-256 thumbprint of the required public members.
            None => public
                .thumbprint(ThumbprintHash::SHA256)
                .map_err(|e| format!("cannot compute the key thumbprint: {e}"))?,
        };
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&public).map_err(|e| format!("unusable public key: {e}"))?;
        let es256 = match alg {
            Algorithm::ES256 => Some(
                aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    encoding.as_bytes(),
                )
                .map_err(|_| "not a usable ES256 private key (PKCS#8 P-256)".to_owned())?,
            ),
            _ => None,
        };
        let key = Self {
            kid,
            alg,
            encoding,
            es256,
            decoding,
            public,
        };
        // Self-test: a PEM of the wrong curve or a damaged key fails here, at start.
        let probe = key
            .sign_with_header(None, &serde_json::json!({"probe": 1}))
            .map_err(|e| format!("cannot sign with this key: {e}"))?;
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(&probe, &key.decoding, &validation)
            .map_err(|e| format!("signature self-test failed: {e}"))?;
        Ok(key)
    }

    /// Generates a fresh ES256 key (demo / single process only).
    pub(crate) fn generate_es256() -> anyhow::Result<Self> {
        let pkcs8 = crate::crypto::generate_es256_pkcs8()?;
        Self::from_encoding_key(EncodingKey::from_ec_der(&pkcs8), Algorithm::ES256, None)
            .map_err(anyhow::Error::msg)
    }

    pub(crate) fn alg_name(&self) -> &'static str {
        alg_name(self.alg)
    }

    fn sign_with_header<T: Serialize>(
        &self,
        typ: Option<&str>,
        claims: &T,
    ) -> jsonwebtoken::errors::Result<String> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = typ.map(str::to_owned);
        let Some(pair) = &self.es256 else {
            return jsonwebtoken::encode(&header, claims, &self.encoding);
        };
        // The JWS compact serialization exactly as `jsonwebtoken::encode` builds it
        // (RFC 7515 §7.1), signed with the cached key pair.
        let mut jws = crate::crypto::b64url_encode(&serde_json::to_vec(&header)?);
        jws.push('.');
        jws.push_str(&crate::crypto::b64url_encode(&serde_json::to_vec(claims)?));
        let signature = pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), jws.as_bytes())
            .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey)?;
        jws.push('.');
        jws.push_str(&crate::crypto::b64url_encode(signature.as_ref()));
        Ok(jws)
    }
}

/// Why a presented token was not accepted (for logs; the client only sees `invalid_token`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("unknown kid")]
    UnknownKey,
    #[error("algorithm {0:?} does not match the key")]
    WrongAlgorithm(Algorithm),
    #[error("token type is not {0}")]
    WrongType(&'static str),
    #[error("{0}")]
    Invalid(jsonwebtoken::errors::Error),
}

/// All configured keys: one signs, all verify and are published.
pub struct SigningKeys {
    keys: Vec<SigningKey>,
    active: usize,
    jwks: JwkSet,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("keys", &self.keys)
            .field("active", &self.active)
            .finish()
    }
}

impl SigningKeys {
    /// One ES256 key generated now: the single-process demo, which has no configured key
    /// (configuration validation requires keys whenever replicas share a Redis).
    pub fn generate() -> anyhow::Result<Self> {
        let key = SigningKey::generate_es256()?;
        tracing::warn!(
            kid = %key.kid,
            "no signing keys configured: generated an ES256 key for this process only; tokens will not survive a restart. Configure `keys` for production."
        );
        Ok(Self::new(vec![key], 0))
    }

    /// The key set; `active` indexes the key that signs.
    pub(crate) fn new(keys: Vec<SigningKey>, active: usize) -> Self {
        let jwks = JwkSet {
            keys: keys.iter().map(|k| k.public.clone()).collect(),
        };
        Self { keys, active, jwks }
    }

    /// The key that signs new tokens.
    pub(crate) fn active(&self) -> &SigningKey {
        &self.keys[self.active]
    }

    /// The public JWK Set (RFC 7517 §5) for `/jwks`.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// Signs `claims` with the active key; `typ` goes into the header (e.g. `at+jwt`).
    pub fn sign<T: Serialize>(&self, typ: Option<&str>, claims: &T) -> jsonwebtoken::errors::Result<String> {
        self.active().sign_with_header(typ, claims)
    }

    /// Verifies a token this server issued: `kid` names one of our keys, `alg` is that key's
    /// (RFC 8725 §3.1: never trust the header's alg alone), `typ` is `expected_typ`
    /// (RFC 8725 §3.11), then signature and the claims `validation` asks for.
    pub(crate) fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        expected_typ: &'static str,
        mut validation: Validation,
    ) -> Result<TokenData<T>, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(VerifyError::UnknownKey)?;
        if header.alg != key.alg {
            return Err(VerifyError::WrongAlgorithm(header.alg));
        }
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(expected_typ)
                || t.strip_prefix("application/")
                    .is_some_and(|t| t.eq_ignore_ascii_case(expected_typ))
        });
        if !typ_ok {
            return Err(VerifyError::WrongType(expected_typ));
        }
        validation.algorithms = vec![key.alg];
        jsonwebtoken::decode(token, &key.decoding, &validation).map_err(VerifyError::Invalid)
    }

    /// `id_token_signing_alg_values_supported`: what the active key signs with.
    pub(crate) fn signing_algs(&self) -> Vec<String> {
        vec![self.active().alg_name().to_owned()]
    }
}

pub(crate) fn parse_alg(name: &str) -> Option<Algorithm> {
    match name {
        "ES256" => Some(Algorithm::ES256),
        "PS256" => Some(Algorithm::PS256),
        "EdDSA" => Some(Algorithm::EdDSA),
        "RS256" => Some(Algorithm::RS256),
        _ => None,
    }
}

pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::PS256 => "PS256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        _ => "unsupported",
    }
}

/// Bit length of a base64url big-endian RSA modulus.
pub(crate) fn modulus_bits(n_b64: &str) -> usize {
    use base64::Engine;
    let Ok(n) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n_b64.trim_end_matches('=')) else {
        return 0;
    };
    let n: Vec<u8> = n.into_iter().skip_while(|b| *b == 0).collect();
    match n.first() {
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn key(name: &str, alg: &str) -> SigningKey {
        SigningKey::from_pem(fixture(name).as_bytes(), parse_alg(alg).unwrap(), None).unwrap()
    }

    fn one(name: &str, alg: &str) -> SigningKeys {
        SigningKeys::new(vec![key(name, alg)], 0)
    }

    #[test]
    fn each_supported_algorithm_loads_signs_and_verifies() {
        for (file, alg) in [
            ("signing-es256.pem", "ES256"),
            ("signing-rsa2048.pem", "PS256"),
            ("signing-rsa2048.pem", "RS256"),
            ("signing-ed25519.pem", "EdDSA"),
        ] {
            let keys = one(file, alg);
            let token = keys
                .sign(Some("at+jwt"), &serde_json::json!({"sub": "x"}))
                .unwrap();
            let mut v = Validation::new(Algorithm::ES256);
            v.required_spec_claims.clear();
            v.validate_exp = false;
            let data: TokenData<serde_json::Value> = keys.verify(&token, "at+jwt", v).unwrap();
            assert_eq!(data.claims["sub"], "x");
            assert_eq!(data.header.kid.as_deref(), Some(keys.active().kid.as_str()));
            assert_eq!(keys.signing_algs(), vec![alg.to_owned()]);
        }
    }

    #[test]
    fn default_kid_is_the_rfc7638_thumbprint() {
        let keys = one("signing-es256.pem", "ES256");
        let mut jwk = keys.jwks().keys[0].clone();
        jwk.common = Default::default();
        assert_eq!(keys.active().kid, jwk.thumbprint(ThumbprintHash::SHA256).unwrap());
        assert_eq!(keys.active().kid.len(), 43);
    }

    #[test]
    fn published_keys_have_no_private_members() {
        let keys = SigningKeys::new(
            vec![
                key("signing-es256.pem", "ES256"),
                key("signing-rsa2048.pem", "PS256"),
                key("signing-ed25519.pem", "EdDSA"),
            ],
            0,
        );
        let json = serde_json::to_value(keys.jwks()).unwrap();
        for k in json["keys"].as_array().unwrap() {
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(k.get(private).is_none(), "{private} in {k}");
            }
            assert_eq!(k["use"], "sig");
            assert!(k["kid"].is_string() && k["alg"].is_string());
        }
    }

    #[test]
    fn typ_kid_and_alg_are_enforced() {
        let keys = one("signing-es256.pem", "ES256");
        let mut v = Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let id_token = keys.sign(Some("JWT"), &serde_json::json!({})).unwrap();
        assert!(matches!(
            keys.verify::<serde_json::Value>(&id_token, "at+jwt", v.clone()),
            Err(VerifyError::WrongType(_))
        ));
        let other = SigningKey::generate_es256().unwrap();
        let foreign = other
            .sign_with_header(Some("at+jwt"), &serde_json::json!({}))
            .unwrap();
        assert!(matches!(
            keys.verify::<serde_json::Value>(&foreign, "at+jwt", v.clone()),
            Err(VerifyError::UnknownKey)
        ));
        // Same kid, different key: the signature check fails.
        let impostor = SigningKey {
            kid: keys.active().kid.clone(),
            ..other
        };
        let forged = impostor
            .sign_with_header(Some("at+jwt"), &serde_json::json!({}))
            .unwrap();
        assert!(matches!(
            keys.verify::<serde_json::Value>(&forged, "at+jwt", v),
            Err(VerifyError::Invalid(_))
        ));
    }

    #[test]
    fn a_generated_key_signs_es256() {
        let keys = SigningKeys::generate().unwrap();
        assert_eq!(keys.active().alg, Algorithm::ES256);
        assert!(keys.sign(None, &serde_json::json!({})).is_ok());
    }

    #[test]
    fn modulus_bits_counts_significant_bits() {
        use base64::Engine;
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        assert_eq!(modulus_bits(&enc(&[0x00, 0x80, 0x00])), 16);
        assert_eq!(modulus_bits(&enc(&[0x01, 0x00])), 9);
    }
}
