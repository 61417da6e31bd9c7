//! Rate limits and password back-off, shared by every replica (docs/operations.md,
//! "Limits"). Each limit is one atomic script on one key — a GCRA bucket
//! ([`Store::admit_all`]: every bucket of one request in one script, or none when this
//! replica's leases answer, `store::lease`) or a failure counter with growing back-off
//! ([`Store::password_wait`], [`Store::password_failed`]) — and the checks of one request
//! are sent together: at most one round trip however many limits apply. Time is the
//! store's own (`TIME` in Redis), so replicas with skewed clocks share one schedule.
//!
//! | key (after `redis.key_prefix`) | value | TTL |
//! |---|---|---|
//! | `rl:{H}` | GCRA theoretical arrival time (ms) | until the bucket is full again |
//! | `pw:{H}` | hash: `n` failures, `until` (ms) | `forget` after the last failure (at least the back-off) |
//!
//! `H` = SHA-256 of (scope, subject): no client id, address or username appears in a key.

use std::time::{Duration, Instant};

use super::error::StoreError;
use super::flow::Store;
use super::lease::Local;
use super::rate::{Admission, Backoff, Rate};
use crate::crypto::sha256_parts_b64;

impl Store {
    /// Counts one request against `rate` for `subject` (a client id, an address) in `scope`
    /// (which limit), atomically across replicas.
    pub async fn admit(&self, scope: &str, subject: &str, rate: Rate) -> Result<Admission, StoreError> {
        let mut answers = self.admit_all(&[(scope, subject, rate)]).await?;
        Ok(answers.remove(0))
    }

    /// [`Store::admit`] for every limit of one request. Limits that are off, and those this
    /// replica's leases answer (`store::lease`), are answered here; the others in one script
    /// (one call; a Cluster takes one per bucket, sent together).
    #[tracing::instrument(name = "store.admit", level = "debug", skip_all)]
    pub async fn admit_all(&self, checks: &[(&str, &str, Rate)]) -> Result<Vec<Admission>, StoreError> {
        let now = Instant::now();
        let mut answers = Vec::with_capacity(checks.len());
        // (index in `checks`, lease key, ask) of the limits the store must answer.
        let mut asks = Vec::new();
        for (i, (scope, subject, rate)) in checks.iter().enumerate() {
            if rate.is_off() {
                answers.push(Admission::Allowed {
                    limit: 0,
                    remaining: u32::MAX,
                    reset: Duration::ZERO,
                });
                continue;
            }
            let lease = self.leases.key(scope, subject);
            match self.leases.spend(lease, *rate, now) {
                Local::Answer(answer) => answers.push(answer),
                Local::Ask(ask) => {
                    asks.push((i, lease, ask));
                    // Overwritten below with the store's answer.
                    answers.push(Admission::Refused {
                        limit: rate.requests,
                        retry_after: Duration::ZERO,
                    });
                }
            }
        }
        if asks.is_empty() {
            return Ok(answers);
        }
        let keys: Vec<_> = asks
            .iter()
            .map(|&(i, _, _)| {
                let (scope, subject, _) = checks[i];
                self.keys
                    .rate(&sha256_parts_b64(&[scope.as_bytes(), subject.as_bytes()]))
            })
            .collect();
        let params: Vec<(u64, u64, u64)> = asks
            .iter()
            .map(|&(i, _, ask)| {
                let rate = checks[i].2;
                (rate.interval_ms(), u64::from(rate.requests), ask.want)
            })
            .collect();
        let buckets = self.backend.gcra(&keys, &params).await?;
        if buckets.len() != asks.len() {
            return Err(StoreError::Backend(format!(
                "{} buckets answered for {} asked",
                buckets.len(),
                asks.len()
            )));
        }
        let now = Instant::now();
        for ((i, lease, ask), bucket) in asks.into_iter().zip(buckets) {
            answers[i] = self.leases.record(lease, checks[i].2, ask, bucket, now);
        }
        Ok(answers)
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
