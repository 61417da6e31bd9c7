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
use crate::crypto::sha256_parts_b64;

/// `requests` per `per`, in a burst or spread out (GCRA: one request every `per/requests`,
/// up to `requests` at once). `requests == 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub requests: u32,
    pub per: Duration,
}

impl Rate {
    pub fn is_off(&self) -> bool {
        self.requests == 0 || self.per.is_zero()
    }

    /// The emission interval in ms (at least 1).
    fn interval_ms(&self) -> u64 {
        (self.per.as_millis() as u64 / u64::from(self.requests.max(1))).max(1)
    }
}

/// Password failures: the first `free` cost nothing; after the `free`-th and each later one
/// the next attempt must wait `base`, `2·base`, `4·base` … at most `max`. Counting starts
/// over `forget` after the last failure, or at a successful login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub free: u32,
    pub base: Duration,
    pub max: Duration,
    pub forget: Duration,
}

/// A limit's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go on; `remaining` more fit in the limit now, which is full again after `reset`.
    Allowed {
        limit: u32,
        remaining: u32,
        reset: Duration,
    },
    /// Refused: try again after `retry_after`.
    Refused { limit: u32, retry_after: Duration },
}

impl Admission {
    /// Combines the answers of several limits: refused if any refused (with the longest
    /// wait), else the tightest allowance.
    pub fn all(answers: impl IntoIterator<Item = Admission>) -> Option<Admission> {
        answers.into_iter().reduce(|a, b| match (a, b) {
            (Admission::Refused { retry_after: x, .. }, Admission::Refused { retry_after: y, .. }) => {
                if x >= y { a } else { b }
            }
            (Admission::Refused { .. }, _) => a,
            (_, Admission::Refused { .. }) => b,
            (Admission::Allowed { remaining: x, .. }, Admission::Allowed { remaining: y, .. }) => {
                if x <= y {
                    a
                } else {
                    b
                }
            }
        })
    }
}

/// What a backend's GCRA step answers: allowed or not, `remaining` (allowed) or the wait
/// in ms (refused), and ms until the bucket is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub allowed: bool,
    pub remaining_or_wait: u64,
    pub reset_ms: u64,
}

/// GCRA (the generic cell rate algorithm) on a stored theoretical arrival time `tat`:
/// the one formula both backends apply (the Redis script mirrors it line by line).
/// Returns the answer and the new `tat` to store (with its TTL in ms), if allowed.
pub(crate) fn gcra(now: u64, tat: Option<u64>, interval: u64, burst: u64) -> (Bucket, Option<(u64, u64)>) {
    let limit = interval * burst;
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + interval;
    let ahead = new_tat - now;
    if ahead > limit {
        let bucket = Bucket {
            allowed: false,
            remaining_or_wait: ahead - limit,
            reset_ms: tat - now,
        };
        return (bucket, None);
    }
    let bucket = Bucket {
        allowed: true,
        remaining_or_wait: (limit - ahead) / interval,
        reset_ms: ahead,
    };
    (bucket, Some((new_tat, ahead)))
}

/// The back-off after the `n`-th counted failure (ms): 0 for the first `free - 1`, then
/// `base · 2^k`, at most `max`.
pub(crate) fn backoff_after(n: u64, free: u64, base_ms: u64, max_ms: u64) -> u64 {
    if n < free.max(1) {
        return 0;
    }
    let k = (n - free.max(1)).min(32) as u32;
    base_ms.saturating_mul(1u64 << k).min(max_ms)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_a_burst_then_one_per_interval() {
        // 3 per 3 s: interval 1000 ms, burst 3.
        let (mut tat, mut answers) = (None, Vec::new());
        for _ in 0..4 {
            let (b, next) = gcra(10_000, tat, 1000, 3);
            answers.push(b);
            if let Some((t, _)) = next {
                tat = Some(t);
            }
        }
        assert!(answers[..3].iter().all(|b| b.allowed));
        assert_eq!(answers[2].remaining_or_wait, 0);
        assert!(!answers[3].allowed);
        assert_eq!(
            answers[3].remaining_or_wait, 1000,
            "the next slot frees in one interval"
        );
        let (later, _) = gcra(11_000, tat, 1000, 3);
        assert!(later.allowed, "one interval later one more fits");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff_after(n, 3, 1000, 5000)).collect();
        assert_eq!(waits, [0, 0, 1000, 2000, 4000, 5000, 5000, 5000]);
    }

    #[test]
    fn the_strictest_answer_wins() {
        let ok = |r| Admission::Allowed {
            limit: 10,
            remaining: r,
            reset: Duration::ZERO,
        };
        let no = |s| Admission::Refused {
            limit: 10,
            retry_after: Duration::from_secs(s),
        };
        assert_eq!(Admission::all([ok(5), ok(2)]), Some(ok(2)));
        assert_eq!(Admission::all([ok(5), no(3), no(7)]), Some(no(7)));
        assert_eq!(Admission::all([]), None);
    }
}
