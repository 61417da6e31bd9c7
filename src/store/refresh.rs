//! Refresh tokens in the store (RFC 6749 §6, RFC 9700 §4.14; docs/tokens.md §7): a grant's
//! record and its current token (by digest), and the rotation — one script that rotates the
//! current token, or revokes the whole grant when a retired one comes back. All keys of a
//! grant share its hash tag (`store::keyspace`).

use std::time::Duration;

use super::error::StoreError;
use super::flow::Store;
use super::outcome::RotateOutcome;
use super::records;
use crate::crypto::sha256_b64;
use crate::oauth::refresh::RefreshRecord;

/// What a refresh request asserts, and the lifetimes a rotation applies.
#[derive(Debug)]
pub struct RefreshCheck<'a> {
    /// The authenticated client: must be the grant's.
    pub client_id: &'a str,
    /// The key of the request's DPoP proof: must be the token's when it is bound.
    pub dpop_jkt: Option<&'a str>,
    /// The new token's idle lifetime (capped by the grant's absolute end).
    pub idle_lifetime: Duration,
    /// How long a revoked grant's mark must outlive its access tokens.
    pub revoked_lifetime: Duration,
    /// Seconds since the epoch.
    pub now: u64,
}

/// The result of presenting a refresh token.
#[derive(Debug)]
pub enum Refresh {
    /// The grant's record; the presented token is retired, the new one current.
    Rotated(Box<RefreshRecord>),
    /// The token had been rotated before: the whole grant is now revoked.
    Reused,
    /// The token is bound to another DPoP key than the proof's; nothing changed.
    KeyMismatch,
    /// Unknown, expired, revoked, or another client's; nothing changed.
    Unknown,
}

impl Store {
    /// Stores a new grant's refresh-token record and its first token (by digest) for
    /// `lifetime` (the idle lifetime, capped by the record's absolute end).
    #[tracing::instrument(name = "store.start_refresh", level = "debug", skip_all)]
    pub async fn start_refresh(
        &self,
        grant_id: &str,
        token: &str,
        record: &RefreshRecord,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        let value = records::encode(record)?;
        let digest = sha256_b64(token.as_bytes());
        let (record, current) = (self.keys.refresh(grant_id), self.keys.refresh_current(grant_id));
        let (a, b) = tokio::join!(
            self.backend.put(&record, &value, lifetime),
            self.backend.put(&current, digest.as_bytes(), lifetime),
        );
        a.and(b)
    }

    /// Presents the refresh token `token` of `grant_id` for `client_id` (with `dpop_jkt`,
    /// the key of the request's DPoP proof): rotated to `new_token` when it is the current
    /// one, the grant revoked (for `revoked_lifetime`) when it was retired before. One
    /// atomic step (RFC 9700 §4.14.2). See [`Refresh`].
    #[tracing::instrument(name = "store.rotate_refresh", level = "debug", skip_all)]
    pub async fn rotate_refresh(
        &self,
        grant_id: &str,
        token: &str,
        new_token: &str,
        check: &RefreshCheck<'_>,
    ) -> Result<Refresh, StoreError> {
        let keys = [
            &self.keys.refresh(grant_id),
            &self.keys.refresh_current(grant_id),
            &self.keys.refresh_used(grant_id),
            &self.keys.grant_revoked(grant_id),
        ];
        let (presented, new) = (sha256_b64(token.as_bytes()), sha256_b64(new_token.as_bytes()));
        let (idle, now, revoked) = (
            check.idle_lifetime.as_secs().max(1).to_string(),
            check.now.to_string(),
            check.revoked_lifetime.as_secs().max(1).to_string(),
        );
        let args = [
            presented.as_str(),
            new.as_str(),
            idle.as_str(),
            now.as_str(),
            revoked.as_str(),
            check.client_id,
            check.dpop_jkt.unwrap_or(""),
        ];
        Ok(match self.backend.rotate(keys, args).await? {
            RotateOutcome::Rotated(v) => Refresh::Rotated(Box::new(records::decode(&v, "refresh token")?)),
            RotateOutcome::Reused => Refresh::Reused,
            RotateOutcome::KeyMismatch => Refresh::KeyMismatch,
            RotateOutcome::Unknown => Refresh::Unknown,
        })
    }

    /// The record of the grant `token` belongs to, if `token` is its current refresh token
    /// (for revocation, RFC 7009, and scope checks; both reads sent together).
    #[tracing::instrument(name = "store.refresh_record", level = "debug", skip_all)]
    pub async fn refresh_record(
        &self,
        grant_id: &str,
        token: &str,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let keys = (self.keys.refresh(grant_id), self.keys.refresh_current(grant_id));
        let (record, current) = tokio::join!(self.backend.get(&keys.0), self.backend.get(&keys.1));
        let (record, current) = (record?, current?);
        if current.as_deref() != Some(sha256_b64(token.as_bytes()).as_bytes()) {
            return Ok(None);
        }
        record.map(|v| records::decode(&v, "refresh token")).transpose()
    }
}
