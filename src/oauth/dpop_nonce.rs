//! Server-provided DPoP nonces (RFC 9449 §8 at the authorization server, §9 at resources),
//! stateless so that any replica accepts a nonce another one issued, without a Redis round
//! trip: a nonce is the number of a time window and an HMAC-SHA-256 of it under a key the
//! replicas share (`dpop.nonce_key`).
//!
//! A nonce is accepted in its own window and the two next to it (the window before for
//! nonces issued late in a window, the window after for a replica whose clock runs ahead),
//! so it lives between one and two window lengths. Rotation: the new key signs, the
//! previous one (`dpop.previous_nonce_key`) still verifies for the rollout; nonces are
//! short-lived, so the previous key can be dropped one window later.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Domain separation: these MACs mean "a DPoP nonce for this window" and nothing else.
const LABEL: &[u8] = b"par-server dpop nonce v1";
const WINDOW_BYTES: usize = 8;
const TAG_BYTES: usize = 32;

/// The keys nonces are made and checked with.
pub struct NonceKeys {
    current: hmac::Key,
    previous: Option<hmac::Key>,
    window: u64,
}

impl std::fmt::Debug for NonceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKeys")
            .field("window", &self.window)
            .field("previous", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

impl NonceKeys {
    /// `window_secs` ≥ 1: the length of one time window.
    pub fn new(current: &[u8], previous: Option<&[u8]>, window_secs: u64) -> Self {
        Self {
            current: hmac::Key::new(hmac::HMAC_SHA256, current),
            previous: previous.map(|k| hmac::Key::new(hmac::HMAC_SHA256, k)),
            window: window_secs.max(1),
        }
    }

    /// A nonce for the window of `now`, to send in `DPoP-Nonce`.
    pub fn issue(&self, now: u64) -> String {
        let window = (now / self.window).to_be_bytes();
        let tag = hmac::sign(&self.current, &message(&window));
        let mut out = Vec::with_capacity(WINDOW_BYTES + TAG_BYTES);
        out.extend_from_slice(&window);
        out.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Whether `nonce` was issued by a replica sharing our keys, recently enough.
    pub fn accepts(&self, nonce: &str, now: u64) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if bytes.len() != WINDOW_BYTES + TAG_BYTES {
            return false;
        }
        let (window, tag) = bytes.split_at(WINDOW_BYTES);
        let Ok(window_bytes) = <[u8; WINDOW_BYTES]>::try_from(window) else {
            return false;
        };
        let issued = u64::from_be_bytes(window_bytes);
        let current = now / self.window;
        if issued + 1 < current || issued > current + 1 {
            return false;
        }
        let msg = message(&window_bytes);
        // hmac::verify compares in constant time.
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .any(|key| hmac::verify(key, &msg, tag).is_ok())
    }
}

fn message(window: &[u8; WINDOW_BYTES]) -> Vec<u8> {
    let mut m = Vec::with_capacity(LABEL.len() + WINDOW_BYTES);
    m.extend_from_slice(LABEL);
    m.extend_from_slice(window);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NEXT: &[u8] = b"fedcba9876543210fedcba9876543210";

    #[test]
    fn a_nonce_is_accepted_by_any_replica_with_the_key_for_a_while() {
        let a = NonceKeys::new(KEY, None, 60);
        let b = NonceKeys::new(KEY, None, 60);
        let nonce = a.issue(1_000_000);
        for now in [1_000_000, 999_950, 1_000_060, 1_000_079] {
            assert!(b.accepts(&nonce, now), "{now}");
        }
        // Two windows later it has expired; two windows earlier it is not yet valid.
        assert!(!b.accepts(&nonce, 1_000_000 + 120));
        assert!(!b.accepts(&nonce, 1_000_000 - 120));
    }

    #[test]
    fn forged_or_foreign_nonces_are_refused() {
        let keys = NonceKeys::new(KEY, None, 60);
        let other = NonceKeys::new(NEXT, None, 60);
        assert!(!keys.accepts(&other.issue(100), 100));
        let mut tampered = URL_SAFE_NO_PAD.decode(keys.issue(100)).unwrap();
        tampered[WINDOW_BYTES] ^= 1;
        assert!(!keys.accepts(&URL_SAFE_NO_PAD.encode(&tampered), 100));
        for junk in ["", "abc", "!!!!", &"A".repeat(54)] {
            assert!(!keys.accepts(junk, 100), "{junk}");
        }
    }

    #[test]
    fn the_previous_key_still_verifies_during_rotation() {
        let old = NonceKeys::new(KEY, None, 60);
        let rotated = NonceKeys::new(NEXT, Some(KEY), 60);
        assert!(rotated.accepts(&old.issue(100), 100));
        assert!(rotated.accepts(&rotated.issue(100), 100));
        // A replica still on the old key refuses the new key's nonces.
        assert!(!old.accepts(&rotated.issue(100), 100));
    }
}
