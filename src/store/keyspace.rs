//! The Redis key space: every key, its value and lifetime. The only place that formats a key;
//! `store::Store`'s step methods are the only callers.
//!
//! | key (after `redis.key_prefix`)    | value                         | TTL                                  | written / read by |
//! |-----------------------------------|-------------------------------|--------------------------------------|-------------------|
//! | `par:{D}`                         | pushed request (JSON, `v:1`)  | `par.request_uri_lifetime` (60 s), extended to `par.interaction_lifetime` (600 s) when claimed | `SET EX NX` at `POST /par`; claim script at `/authorize`; take script at code issuance |
//! | `par:{D}:claim`                   | owner: hash of the browser binding | `par.interaction_lifetime`     | claim script / take script |
//! | `par:{D}:login`                   | user who logged in, awaiting consent | `par.interaction_lifetime`  | login POST / consent POST |
//! | `code:{C}`                        | authorization code record     | `tokens.code_lifetime` (≤ 60 s)       | `SET EX NX` at code issuance; `GETDEL` at `/token` |
//! | `code:{C}:used`                   | grant id of the tokens issued | access-token lifetime                | `/token` (replay → revoke) |
//! | `grant:{G}:revoked`               | `1`                           | access-token lifetime                | replayed code; checked at `/userinfo` |
//! | `jti:{J}`                         | `1`                           | assertion lifetime + skew            | `SET EX NX` per `private_key_jwt` assertion |
//! | `playground:{P}`                  | the playground's PKCE verifier | `par.interaction_lifetime`        | `/playground/start` / callback (`GETDEL`) |
//! | `sso:{S}`                         | SSO session (JSON)            | `session.lifetime`                   | login / `/authorize` |
//! | `rl:{H}`, `pw:{H}`                | rate-limit bucket, password back-off (`store::limits`) | until they no longer matter | every limited request |
//!
//! `D` = SHA-256 of the request_uri's random part, `C` = SHA-256 of the code, `J` = SHA-256
//! of (client_id, jti), `S` = SHA-256 of the session cookie: no live credential is ever a key
//! or a value. The `{…}` are Redis Cluster hash tags, so a record and its companion key live
//! in one slot and a script may touch both.

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

    /// Which browser interaction claimed the pushed request.
    pub(crate) fn par_claim(&self, digest: &str) -> Key {
        self.key("par", digest, ":claim")
    }

    /// The user authenticated in this interaction while consent is pending.
    pub(crate) fn par_login(&self, digest: &str) -> Key {
        self.key("par", digest, ":login")
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

    pub(crate) fn assertion_jti(&self, client_id: &str, jti: &str) -> Key {
        self.key(
            "jti",
            &sha256_parts_b64(&[client_id.as_bytes(), jti.as_bytes()]),
            "",
        )
    }

    /// The playground's pending login (PKCE verifier), by digest of its `state`.
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
        assert_eq!(k.par_claim("abc").as_str(), "t:par:{abc}:claim");
        assert_eq!(k.code_used("c").as_str(), "t:code:{c}:used");
    }
}
