//! The `dpop` section of the settings tree (docs/configuration.md); checked and turned into
//! the proof policy and nonce keys by `config::dpop`.

use serde::Deserialize;

use crate::secret::Secret;

/// DPoP (RFC 9449): sender-constrained tokens (docs/tokens.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpopSettings {
    /// Proof algorithms accepted and advertised (`dpop_signing_alg_values_supported`);
    /// asymmetric only.
    pub signing_algs: Vec<String>,
    /// How old a proof's `iat` may be, in seconds.
    pub proof_max_age: u64,
    /// How far in the future a proof's `iat` may be, in seconds.
    pub clock_skew: u64,
    /// Require a server nonce in every proof (RFC 9449 §8), for all clients; a client's
    /// `require_dpop_nonce` overrides it.
    pub require_nonce: bool,
    /// HMAC key (≥ 32 characters) that nonces are made with; replicas must share it.
    /// Required with a Redis store when any client requires nonces.
    pub nonce_key: Option<Secret>,
    /// The key before the last rotation: its nonces are still accepted.
    pub previous_nonce_key: Option<Secret>,
    /// Length of a nonce time window in seconds; a nonce lives one to two windows.
    pub nonce_lifetime: u64,
}

impl Default for DpopSettings {
    fn default() -> Self {
        Self {
            signing_algs: vec!["ES256".into(), "PS256".into(), "EdDSA".into()],
            proof_max_age: 60,
            clock_skew: 5,
            require_nonce: false,
            nonce_key: None,
            previous_nonce_key: None,
            nonce_lifetime: 120,
        }
    }
}
