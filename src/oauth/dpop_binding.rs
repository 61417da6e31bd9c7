//! What binds a login and its tokens to a DPoP key (RFC 9449): the key's RFC 7638
//! thumbprint (§6.1, `cnf.jkt`), the `dpop_jkt` authorization request parameter (§10), and
//! the access-token hash `ath` a resource proof carries (§4.2).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use sha2::{Digest, Sha256};

use super::error::OAuthError;

/// RFC 7638 JWK SHA-256 thumbprint, base64url.
pub fn thumbprint(jwk: &Jwk) -> Option<String> {
    jwk.thumbprint(ThumbprintHash::SHA256).ok()
}

/// `ath`: base64url SHA-256 of the access token's ASCII octets (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// The `dpop_jkt` authorization request parameter (RFC 9449 §10): a base64url SHA-256
/// thumbprint (43 characters).
pub fn parse_jkt(value: &str) -> Result<String, OAuthError> {
    let ok = value.len() == 43 && URL_SAFE_NO_PAD.decode(value).is_ok_and(|b| b.len() == 32);
    if ok {
        Ok(value.to_owned())
    } else {
        Err(OAuthError::invalid_request(
            "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpop_jkt_parameter_syntax() {
        // RFC 9449 §10 example.
        let jkt = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        assert_eq!(parse_jkt(jkt).unwrap(), jkt);
        for bad in ["", "abc", &format!("{jkt}A"), &jkt.replace('N', "+")] {
            assert_eq!(parse_jkt(bad).unwrap_err().code(), "invalid_request", "{bad}");
        }
    }
}
