//! PAR `request_uri` values (RFC 9126 §2.2): `<prefix><reference>`, where the reference is
//! 256 bits from a CSPRNG in base64url. The store keeps only a hash of the reference, so a
//! Redis dump holds no live `request_uri`.

use crate::crypto::{random_token, sha256_b64};

/// The IANA-registered prefix (RFC 9126 §2.2, §9.3).
pub(crate) const RFC_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

const REFERENCE_BYTES: usize = 32;
/// base64url of 32 bytes.
const REFERENCE_LEN: usize = 43;

/// The random part of a `request_uri`. Never logged, never stored in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct Reference(String);

impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reference([redacted])")
    }
}

impl Reference {
    pub fn generate() -> Self {
        Self(random_token(REFERENCE_BYTES))
    }

    /// The request_uri handed to the client.
    pub(crate) fn to_request_uri(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.0)
    }

    /// Extracts the reference from a `request_uri` that carries one of the `accepted`
    /// prefixes. Anything else (another prefix, a URL, a malformed reference) is `None`.
    pub fn parse(request_uri: &str, accepted: &[String]) -> Option<Self> {
        let reference = accepted
            .iter()
            .find_map(|p| request_uri.strip_prefix(p.as_str()))?;
        let well_formed = reference.len() == REFERENCE_LEN
            && reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(reference.to_owned()))
    }

    /// The storage handle: SHA-256 of the reference, base64url. Not reversible, so a leaked
    /// store dump cannot be turned back into a usable `request_uri`.
    pub(crate) fn digest(&self) -> String {
        sha256_b64(self.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The prefix WSO2 Identity Server emits (`par.request_uri_prefix` for compatible
    /// deployments, docs/configuration.md).
    const WSO2_PREFIX: &str = "urn:ietf:params:oauth:par:request_uri:";

    fn accepted() -> Vec<String> {
        vec![RFC_PREFIX.to_owned()]
    }

    #[test]
    fn generated_uris_round_trip_and_are_unique() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let r = Reference::generate();
            let uri = r.to_request_uri(RFC_PREFIX);
            assert!(uri.len() <= 512, "JAR §5.2 length");
            assert_eq!(Reference::parse(&uri, &accepted()), Some(r.clone()));
            assert!(seen.insert(r.digest()));
        }
    }

    #[test]
    fn foreign_prefixes_and_malformed_references_are_refused() {
        let r = Reference::generate();
        assert!(Reference::parse(&r.to_request_uri(WSO2_PREFIX), &accepted()).is_none());
        assert!(Reference::parse("https://evil.example/req", &accepted()).is_none());
        assert!(Reference::parse(&format!("{RFC_PREFIX}short"), &accepted()).is_none());
        assert!(Reference::parse(&format!("{RFC_PREFIX}{}", "a".repeat(42) + "!"), &accepted()).is_none());
    }
}
