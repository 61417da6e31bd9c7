//! Rate limits and password back-off, shared by every replica (docs/operations.md,
//! "Limits"). Each limit is one atomic script on one key — a GCRA bucket
//! ([`Store::admit_all`]: every bucket of one request in one script) or a failure counter
//! with growing back-off ([`Store::password_wait`], [`Store::password_failed`]) — and the
//! checks of one request are sent together: one round trip however many limits apply. Time is the store's own (`TIME` in Redis), so
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
use super::rate::{Admission, Backoff, Bucket, Rate};
use crate::crypto::sha256_parts_b64;

impl Store {
    /// Counts one request against `rate` for `subject` (a client id, an address) in `scope`
    /// (which limit), atomically across replicas.
    pub async fn admit(&self, scope: &str, subject: &str, rate: Rate) -> Result<Admission, StoreError> {
        let mut answers = self.admit_all(&[(scope, subject, rate)]).await?;
        Ok(answers.remove(0))
    }

    /// [`Store::admit`] for every limit of one request, in one script (one call; a Cluster
    /// takes one per bucket, sent together). Limits that are off are answered here.
    #[tracing::instrument(name = "store.admit", level = "debug", skip_all)]
    pub async fn admit_all(&self, checks: &[(&str, &str, Rate)]) -> Result<Vec<Admission>, StoreError> {
        let on: Vec<&(&str, &str, Rate)> = checks.iter().filter(|(_, _, r)| !r.is_off()).collect();
        let keys: Vec<_> = on
            .iter()
            .map(|(scope, subject, _)| {
                self.keys
                    .rate(&sha256_parts_b64(&[scope.as_bytes(), subject.as_bytes()]))
            })
            .collect();
        let params: Vec<(u64, u64)> = on
            .iter()
            .map(|(_, _, r)| (r.interval_ms(), u64::from(r.requests)))
            .collect();
        let mut buckets = if keys.is_empty() {
            Vec::new()
        } else {
            self.backend.gcra(&keys, &params).await?
        }
        .into_iter();
        Ok(checks
            .iter()
            .map(|(_, _, rate)| {
                if rate.is_off() {
                    return Admission::Allowed {
                        limit: 0,
                        remaining: u32::MAX,
                        reset: Duration::ZERO,
                    };
                }
                let b = buckets.next().unwrap_or(Bucket {
                    allowed: true,
                    remaining_or_wait: 0,
                    reset_ms: 0,
                });
                if b.allowed {
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
                }
            })
            .collect())
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
