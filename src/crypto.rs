//! Small cryptographic helpers used across the crate: CSPRNG tokens, SHA-256 digests in
//! base64url, constant-time comparison, and fresh P-256 keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `bytes` random bytes from the operating-system-seeded CSPRNG, base64url without padding.
/// 32 bytes (256 bits) is the default for every server-issued credential; FAPI 2.0 §5.4 and
/// JAR §10.2(d) ask for at least 128 bits.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    URL_SAFE_NO_PAD.encode(&buf)
}

/// SHA-256 of `data`, base64url without padding (43 characters).
pub(crate) fn sha256_b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(data))
}

/// SHA-256 of the concatenation of `parts`, each length-prefixed so that `("ab","c")` and
/// `("a","bc")` differ.
pub(crate) fn sha256_parts_b64(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Compares two secrets in time independent of where they differ and of their lengths
/// (both sides are hashed first).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

pub(crate) fn b64url_encode(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// A fresh P-256 private key (PKCS#8 DER), for ES256: our signing keys (`par-server
/// gen-key`, the demo) and throwaway DPoP proof keys (the playground, the load generator).
pub(crate) fn generate_es256_pkcs8() -> anyhow::Result<Vec<u8>> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| anyhow::anyhow!("could not generate an ES256 key"))?;
    Ok(pkcs8.as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_long_enough() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn constant_time_eq_compares_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn length_prefixed_hash_separates_parts() {
        assert_ne!(sha256_parts_b64(&[b"ab", b"c"]), sha256_parts_b64(&[b"a", b"bc"]));
    }
}
