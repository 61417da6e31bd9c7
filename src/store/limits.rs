//! Rate limits and password back-off, shared by every replica (docs/operations.md,
//! "Limits"). Each limit is one atomic script on one key — a GCRA bucket
//! ([`Store::admit`]) or a failure counter with growing back-off
//! ([`Store::password_wait`], [`Store::password_failed`]) — and the checks of one request
//! are sent together: one round trip however many limits apply. Time is the store's own (`TIME` in Redis), so
//! replicas with skewed clocks share one schedule.
//!
//! | key (after `redis.key_prefix`) | value | TTL |
//! |---|---|---|
//! | `rl:{H}` | GCRA theoretical arrival time (ms) | until the bucket is full again |
//! | `pw:{H}` | hash: `n` failures, `until` (ms) | `forget` after the last failure (at least the back-off) |
//!
//! `H` = SHA-256 of (scope, subject): no client id, address or username appears in a key.

use std::time::Duration;

use super::error::StoreError;
use super::flow::Store;
use super::rate::{Admission, Backoff, Rate};
use crate::crypto::sha256_parts_b64;

impl Store {
    /// Counts one request against `rate` for `subject` (a client id, an address) in `scope`
    /// (which limit), atomically across replicas. Several calls may run together (join).
    #[tracing::instrument(name = "store.admit", level = "debug", skip_all, fields(scope))]
    pub async fn admit(&self, scope: &str, subject: &str, rate: Rate) -> Result<Admission, StoreError> {
        if rate.is_off() {
            return Ok(Admission::Allowed {
                limit: 0,
                remaining: u32::MAX,
                reset: Duration::ZERO,
            });
        }
        let key = self
            .keys
            .rate(&sha256_parts_b64(&[scope.as_bytes(), subject.as_bytes()]));
        let b = self
            .backend
            .gcra(&key, rate.interval_ms(), u64::from(rate.requests))
            .await?;
        Ok(if b.allowed {
            Admission::Allowed {
                limit: rate.requests,
                remaining: b.remaining_or_wait.min(u64::from(u32::MAX)) as u32,
                reset: Duration::from_millis(b.reset_ms),
            }
        } else {
            Admission::Refused {
                limit: rate.requests,
                retry_after: Duration::from_millis(b.remaining_or_wait),
            }
        })
    }

    /// The back-off `subject` (a username, or a username and address) must still wait
    /// in `scope` before its password is checked again, if any. The subject need not exist:
    /// unknown usernames are counted the same way, so the answers reveal nothing.
    #[tracing::instrument(name = "store.password_wait", level = "debug", skip_all)]
    pub async fn password_wait(
        &self,
        scope: &str,
        subject: &str,
        policy: Backoff,
    ) -> Result<Option<Duration>, StoreError> {
        self.password_backoff(scope, subject, policy, false).await
    }

    /// Counts a failed password for `subject` in `scope` and sets the next back-off.
    #[tracing::instrument(name = "store.password_failed", level = "debug", skip_all)]
    pub async fn password_failed(
        &self,
        scope: &str,
        subject: &str,
        policy: Backoff,
    ) -> Result<(), StoreError> {
        self.password_backoff(scope, subject, policy, true)
            .await
            .map(|_| ())
    }

    async fn password_backoff(
        &self,
        scope: &str,
        subject: &str,
        policy: Backoff,
        count: bool,
    ) -> Result<Option<Duration>, StoreError> {
        if policy.free == 0 {
            return Ok(None);
        }
        let key = self
            .keys
            .password(&sha256_parts_b64(&[scope.as_bytes(), subject.as_bytes()]));
        let wait = self.backend.backoff(&key, policy, count).await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }

    /// After a successful login: the attempts of `subject` in `scope` start over.
    pub async fn password_succeeded(&self, scope: &str, subject: &str) -> Result<(), StoreError> {
        let key = self
            .keys
            .password(&sha256_parts_b64(&[scope.as_bytes(), subject.as_bytes()]));
        self.backend.delete(&key).await
    }
}
