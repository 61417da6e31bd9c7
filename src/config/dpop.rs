//! The `dpop` section: the proof policy (algorithms, `iat` window) and the nonce keys
//! (RFC 9449 §8), checked once at start.

use super::error::{ConfigError, fail};
use super::settings::DpopSettings;
use crate::oauth::client::ClientRegistry;
use crate::oauth::dpop::{DpopRules, ProofPolicy};
use crate::oauth::dpop_nonce::NonceKeys;

/// Proof algorithms a deployment may enable: asymmetric only (RFC 9449 §4.3 check 5).
/// jsonwebtoken verifies all of them; `dpop.signing_algs` picks from this list.
const ALLOWED_ALGS: &[&str] = &[
    "ES256", "ES384", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA",
];
/// Shortest accepted nonce key: 256 bits of ASCII.
const MIN_NONCE_KEY_LEN: usize = 32;

/// The DPoP rules in force. `shared_store`: replicas share state (Redis), so a nonce key
/// generated here would be known to this process only.
pub(super) fn dpop_rules(
    s: &DpopSettings,
    clients: &ClientRegistry,
    shared_store: bool,
) -> Result<DpopRules, ConfigError> {
    if s.signing_algs.is_empty() {
        return fail("dpop.signing_algs", "at least one algorithm is required");
    }
    let mut algs = Vec::with_capacity(s.signing_algs.len());
    for (i, name) in s.signing_algs.iter().enumerate() {
        let alg = ALLOWED_ALGS
            .contains(&name.as_str())
            .then(|| name.parse().ok())
            .flatten()
            .ok_or_else(|| {
                ConfigError::new(
                    format!("dpop.signing_algs[{i}]"),
                    format!(
                        "'{name}' is not supported; use some of {}",
                        ALLOWED_ALGS.join(", ")
                    ),
                )
            })?;
        algs.push(alg);
    }
    if !(1..=3600).contains(&s.proof_max_age) {
        return fail("dpop.proof_max_age", "must be between 1 and 3600 seconds");
    }
    if s.clock_skew > 300 {
        return fail("dpop.clock_skew", "must be at most 300 seconds");
    }
    if !(10..=3600).contains(&s.nonce_lifetime) {
        return fail("dpop.nonce_lifetime", "must be between 10 and 3600 seconds");
    }
    for (key, value) in [
        ("dpop.nonce_key", &s.nonce_key),
        ("dpop.previous_nonce_key", &s.previous_nonce_key),
    ] {
        if value
            .as_ref()
            .is_some_and(|k| k.expose().len() < MIN_NONCE_KEY_LEN)
        {
            return fail(key, format!("must be at least {MIN_NONCE_KEY_LEN} characters"));
        }
    }
    if s.previous_nonce_key.is_some() && s.nonce_key.is_none() {
        return fail("dpop.previous_nonce_key", "only with dpop.nonce_key");
    }
    let nonces_needed = clients.any(|c| c.require_dpop_nonce);
    let nonces = match &s.nonce_key {
        Some(key) => Some(NonceKeys::new(
            key.expose().as_bytes(),
            s.previous_nonce_key.as_ref().map(|k| k.expose().as_bytes()),
            s.nonce_lifetime,
        )),
        None if nonces_needed && shared_store => {
            return fail(
                "dpop.nonce_key",
                "required when DPoP nonces are required with a Redis store: replicas must share it",
            );
        }
        // One process: a key of its own is as good as a shared one.
        None if nonces_needed => Some(NonceKeys::new(
            crate::crypto::random_token(32).as_bytes(),
            None,
            s.nonce_lifetime,
        )),
        None => None,
    };
    Ok(DpopRules {
        policy: ProofPolicy {
            algs,
            max_age: s.proof_max_age,
            leeway: s.clock_skew,
        },
        nonces,
    })
}
