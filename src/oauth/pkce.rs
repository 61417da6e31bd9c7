//! PKCE (RFC 7636) with `S256` only: `plain` is refused (RFC 9700 §2.1.1, FAPI 2.0 §5.3.2.2).

use crate::crypto::sha256_b64;

use super::error::OAuthError;

pub(crate) const METHOD_S256: &str = "S256";

/// RFC 7636 §4.1: unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Checks `code_challenge` + `code_challenge_method` from an authorization request.
/// An absent method means `plain` (RFC 7636 §4.3), which is refused.
pub(crate) fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), OAuthError> {
    match method {
        Some(METHOD_S256) => {}
        Some(_) | None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256 (plain is not supported)",
            ));
        }
    }
    // A base64url SHA-256 digest is exactly 43 characters (RFC 7636 §4.2).
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(OAuthError::invalid_request(
            "code_challenge must be a base64url-encoded SHA-256 digest (43 characters)",
        ));
    }
    Ok(())
}

/// RFC 7636 §4.6: the challenge a verifier answers, `BASE64URL(SHA256(code_verifier))`, with
/// the verifier's syntax (§4.1: 43–128 unreserved characters) checked first. The store
/// compares it with the code's challenge before the code is consumed.
pub fn challenge_of(verifier: &str) -> Result<String, OAuthError> {
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(is_unreserved) {
        return Err(OAuthError::invalid_grant(
            "code_verifier must be 43-128 unreserved characters",
        ));
    }
    Ok(sha256_b64(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_example_verifies() {
        check_challenge(CHALLENGE, Some("S256")).unwrap();
        assert_eq!(challenge_of(VERIFIER).unwrap(), CHALLENGE);
    }

    #[test]
    fn plain_and_missing_method_are_refused() {
        assert!(check_challenge(CHALLENGE, Some("plain")).is_err());
        assert!(check_challenge(CHALLENGE, None).is_err());
    }

    #[test]
    fn malformed_verifiers_are_refused() {
        assert_ne!(challenge_of(&VERIFIER.replace('d', "e")).unwrap(), CHALLENGE);
        for bad in [&VERIFIER[..42], &"a".repeat(129), &VERIFIER.replace('d', "+")] {
            assert_eq!(challenge_of(bad).unwrap_err().code(), "invalid_grant", "{bad}");
        }
    }
}
