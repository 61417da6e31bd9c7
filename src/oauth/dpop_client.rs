//! The client side of DPoP (RFC 9449 §4.2): a proof key and the proofs it makes, for the
//! playground and the load generator (the server side is `oauth::dpop`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;

use super::dpop::{PROOF_TYP, ath, thumbprint};

/// A client's DPoP key and the proofs it makes (RFC 9449 §4.2): the client side, for the
/// playground and the load generator. A fresh P-256 key; ES256 proofs.
pub struct ProofKey {
    pkcs8: String,
    key: jsonwebtoken::EncodingKey,
    jwk: Jwk,
}

impl ProofKey {
    pub fn generate() -> Result<Self, String> {
        let der = crate::crypto::generate_es256_pkcs8().map_err(|e| e.to_string())?;
        Self::from_pkcs8(&URL_SAFE_NO_PAD.encode(der))
    }

    /// From [`ProofKey::pkcs8`]'s form.
    pub fn from_pkcs8(pkcs8: &str) -> Result<Self, String> {
        let der = URL_SAFE_NO_PAD
            .decode(pkcs8)
            .map_err(|_| "unreadable DPoP key".to_owned())?;
        let key = jsonwebtoken::EncodingKey::from_ec_der(&der);
        let jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(|e| format!("DPoP key: {e}"))?;
        Ok(Self {
            pkcs8: pkcs8.to_owned(),
            key,
            jwk,
        })
    }

    /// The private key, PKCS#8 DER in base64url: a secret.
    pub fn pkcs8(&self) -> &str {
        &self.pkcs8
    }

    /// The RFC 7638 thumbprint of the public key.
    pub fn jkt(&self) -> Option<String> {
        thumbprint(&self.jwk)
    }

    /// A proof for one request: `htu` is the endpoint's public URL; `access_token` adds
    /// `ath` (resource requests), `nonce` the server's nonce.
    pub fn proof(&self, htm: &str, htu: &str, access_token: Option<&str>, nonce: Option<&str>) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.typ = Some(PROOF_TYP.into());
        header.jwk = Some(self.jwk.clone());
        let mut claims = serde_json::json!({
            "jti": crate::crypto::random_token(16),
            "htm": htm,
            "htu": htu,
            "iat": crate::clock::now(),
        });
        if let Some(token) = access_token {
            claims["ath"] = ath(token).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::oauth::dpop::{Expected, ProofPolicy, verify};

    #[test]
    fn a_proof_key_makes_proofs_the_server_accepts() {
        let key = ProofKey::generate().unwrap();
        let again = ProofKey::from_pkcs8(key.pkcs8()).unwrap();
        let at_resource = Expected {
            method: "GET",
            url: "https://as.example/oauth2/userinfo",
            access_token: Some("t"),
            now: crate::clock::now(),
        };
        let policy = ProofPolicy {
            algs: vec![Algorithm::ES256],
            max_age: 60,
            leeway: 5,
        };
        let proof = again.proof("GET", at_resource.url, Some("t"), Some("n"));
        let p = verify(&proof, &at_resource, &policy).unwrap();
        assert_eq!(Some(p.jkt), key.jkt());
        assert_eq!(p.nonce.as_deref(), Some("n"));
    }
}
