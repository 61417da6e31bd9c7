//! The Redis key space: every key, its value and lifetime. The only place that formats a key;
//! `store::Store`'s step methods are the only callers.
//!
//! | key (after `redis.key_prefix`)    | value                         | TTL                                  | written / read by |
//! |-----------------------------------|-------------------------------|--------------------------------------|-------------------|
//! | `par:{D}`                         | `client_id`, newline, pushed request (JSON, `v:1`) | `par.request_uri_lifetime` (60 s), extended once to `par.interaction_lifetime` (600 s) by the first visit | `SET EX NX` at `POST /par`; open script at `/authorize` and the form POSTs; take script at code issuance |
//! | `par:{D}:opened`                  | `1`: the one extension happened | `par.interaction_lifetime`         | open script / take script |
//! | `par:{D}:bound`                   | owner (hash of the browser binding), newline, the user who signed in (JSON), awaiting consent | the record's remaining life | bind script (login POST) / open and take scripts |
//! | `code:{C}`                        | authorization code record     | `tokens.code_lifetime` (≤ 60 s)       | `SET EX NX` at code issuance; redeem script at `/token` |
//! | `code:{C}:used`                   | the redeemed record (for replay detection) | access-token lifetime   | redeem script (replay → revoke) |
//! | `grant:{G}:revoked`               | `1`                           | access-token lifetime                | replayed code, reused refresh token, revoked refresh token; checked at `/userinfo` and by the rotate script |
//! | `grant:{G}:rt`                    | refresh-token record (JSON, `v:1`) | idle lifetime, capped by the absolute end | token endpoint (issue, rotate script); revocation |
//! | `grant:{G}:rt:current`            | digest of the current refresh token | as the record                | rotate script |
//! | `grant:{G}:rt:used`               | set of digests of retired refresh tokens | until the absolute end    | rotate script (reuse → revoke the grant) |
//! | `at:{A}:revoked`                  | `1`                           | the access token's remaining life    | `/revoke`; checked at `/userinfo` |
//! | `jti:{J}`                         | `1`                           | assertion lifetime + skew            | `SET EX NX` per `private_key_jwt` assertion |
//! | `dpop:{K}`                        | `1`                           | `dpop.proof_max_age` + `dpop.clock_skew` + 1 s | `SET EX NX` per DPoP proof |
//! | `playground:{P}`                  | that a playground login started, and with DPoP its throwaway proof key (its verifier is derived, its request_uri is in the browser's cookie) | `par.interaction_lifetime`        | `/playground/start` / callback (`GETDEL`) |
//! | `sso:{S}`                         | SSO session (JSON)            | `session.lifetime`                   | login / `/authorize` |
//! | `rl:{H}`, `pw:{H}`                | rate-limit bucket, password back-off (`store::limits`) | until they no longer matter | every limited request |
//!
//! `D` = SHA-256 of the request_uri's random part, `C` = SHA-256 of the code, `J` = SHA-256
//! of (client_id, jti), `A` = SHA-256 of an access token's `jti`, `K` = SHA-256 of (DPoP
//! key thumbprint, proof jti), `G` = grant id (also the first part of the grant's refresh
//! tokens), `S` = SHA-256 of the session cookie: no live credential is ever a key or a
//! value. The `{…}` are Redis Cluster hash tags, so a record and its companion key live in
//! one slot and a script may touch both.

use crate::crypto::sha256_parts_b64;

/// A fully-formed store key. Only [`KeySpace`] makes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key(String);

impl Key {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Keys under one `redis.key_prefix`.
#[derive(Debug, Clone)]
pub(crate) struct KeySpace {
    prefix: String,
}

impl KeySpace {
    pub(crate) fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    fn key(&self, kind: &str, tag: &str, suffix: &str) -> Key {
        Key(format!("{}{kind}:{{{tag}}}{suffix}", self.prefix))
    }

    /// Pushed request, by digest of the request_uri reference.
    pub(crate) fn par(&self, digest: &str) -> Key {
        self.key("par", digest, "")
    }

    /// Marks that the first visit extended the pushed request's life (it happens once).
    pub(crate) fn par_opened(&self, digest: &str) -> Key {
        self.key("par", digest, ":opened")
    }

    /// The browser that authenticated for the pushed request, and its user, while consent
    /// is pending.
    pub(crate) fn par_bound(&self, digest: &str) -> Key {
        self.key("par", digest, ":bound")
    }

    pub(crate) fn code(&self, digest: &str) -> Key {
        self.key("code", digest, "")
    }

    pub(crate) fn code_used(&self, digest: &str) -> Key {
        self.key("code", digest, ":used")
    }

    pub(crate) fn grant_revoked(&self, grant_id: &str) -> Key {
        self.key("grant", grant_id, ":revoked")
    }

    /// A grant's refresh-token record (`store::flow::Store::start_refresh`).
    pub(crate) fn refresh(&self, grant_id: &str) -> Key {
        self.key("grant", grant_id, ":rt")
    }

    /// The digest of the grant's current refresh token.
    pub(crate) fn refresh_current(&self, grant_id: &str) -> Key {
        self.key("grant", grant_id, ":rt:current")
    }

    /// The digests of the grant's retired refresh tokens (a Redis set).
    pub(crate) fn refresh_used(&self, grant_id: &str) -> Key {
        self.key("grant", grant_id, ":rt:used")
    }

    /// An access token revoked by its `jti` (RFC 7009).
    pub(crate) fn access_token_revoked(&self, jti: &str) -> Key {
        self.key("at", &crate::crypto::sha256_b64(jti.as_bytes()), ":revoked")
    }

    pub(crate) fn assertion_jti(&self, client_id: &str, jti: &str) -> Key {
        self.key(
            "jti",
            &sha256_parts_b64(&[client_id.as_bytes(), jti.as_bytes()]),
            "",
        )
    }

    /// A DPoP proof's `jti`, per proof key.
    pub(crate) fn dpop_jti(&self, jkt: &str, jti: &str) -> Key {
        self.key("dpop", &sha256_parts_b64(&[jkt.as_bytes(), jti.as_bytes()]), "")
    }

    /// The playground's pending login (a start time only), by digest of its `state`.
    pub(crate) fn playground(&self, digest: &str) -> Key {
        self.key("playground", digest, "")
    }

    pub(crate) fn sso_session(&self, digest: &str) -> Key {
        self.key("sso", digest, "")
    }

    /// What `/readyz` writes: a replica is ready when a write succeeds.
    pub(crate) fn health(&self) -> Key {
        self.key("health", "probe", "")
    }

    /// A rate limit's GCRA bucket, by digest of (scope, subject).
    pub(crate) fn rate(&self, digest: &str) -> Key {
        self.key("rl", digest, "")
    }

    /// Password attempts and back-off, by digest of (scope, subject).
    pub(crate) fn password(&self, digest: &str) -> Key {
        self.key("pw", digest, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companion_keys_share_a_hash_tag() {
        let k = KeySpace::new("t:");
        assert_eq!(k.par("abc").as_str(), "t:par:{abc}");
        assert_eq!(k.par_bound("abc").as_str(), "t:par:{abc}:bound");
        assert_eq!(k.code_used("c").as_str(), "t:code:{c}:used");
    }
}
