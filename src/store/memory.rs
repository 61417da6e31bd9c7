//! The in-memory backend: the zero-config, single-process default. Same contract as Redis
//! (one mutex makes every operation atomic; the record checks mirror `store::redis::scripts`),
//! so `tests/api/store_contract.rs` runs against both. It cannot be shared between
//! processes; start-up says so loudly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::StoreError;
use super::keyspace::Key;
use super::limits::{Backoff, Bucket, backoff_after, gcra};
use super::outcome::{ClaimOutcome, TakeOutcome};

struct Entry {
    value: Vec<u8>,
    expires_at: Instant,
}

#[derive(Default)]
pub(crate) struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
}

/// Sweep expired entries once the map grows past this size, so an idle-but-abandoned
/// workload cannot grow memory without bound.
const SWEEP_THRESHOLD: usize = 10_000;

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> T) -> T {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() > SWEEP_THRESHOLD {
            map.retain(|_, e| e.expires_at > now);
        }
        f(&mut map, now)
    }

    fn live<'m>(map: &'m mut HashMap<String, Entry>, key: &Key, now: Instant) -> Option<&'m mut Entry> {
        if map.get(key.as_str()).is_some_and(|e| e.expires_at <= now) {
            map.remove(key.as_str());
        }
        map.get_mut(key.as_str())
    }

    pub(crate) fn put_new(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.with(|map, now| {
            if Self::live(map, key, now).is_some() {
                return false;
            }
            map.insert(
                key.as_str().to_owned(),
                Entry {
                    value: value.to_vec(),
                    expires_at: now + ttl,
                },
            );
            true
        }))
    }

    pub(crate) fn put(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.with(|map, now| {
            map.insert(
                key.as_str().to_owned(),
                Entry {
                    value: value.to_vec(),
                    expires_at: now + ttl,
                },
            );
        });
        Ok(())
    }

    pub(crate) fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|map, now| Self::live(map, key, now).map(|e| e.value.clone())))
    }

    pub(crate) fn take(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|map, now| {
            Self::live(map, key, now)?;
            map.remove(key.as_str()).map(|e| e.value)
        }))
    }

    pub(crate) fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.with(|map, _| map.remove(key.as_str()));
        Ok(())
    }

    pub(crate) fn redeem(
        &self,
        code: &Key,
        used: &Key,
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|map, now| {
            Self::live(map, code, now)?;
            let value = map.remove(code.as_str())?.value;
            let grant = record_grant_id(&value).unwrap_or_default();
            map.insert(
                used.as_str().to_owned(),
                Entry {
                    value: grant.into_bytes(),
                    expires_at: now + ttl,
                },
            );
            Some(value)
        }))
    }

    pub(crate) fn claim(
        &self,
        record: &Key,
        claim: &Key,
        client_id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        Ok(self.with(|map, now| {
            let Some(entry) = Self::live(map, record, now) else {
                return ClaimOutcome::Missing;
            };
            if !record_client_is(&entry.value, client_id) {
                return ClaimOutcome::WrongClient;
            }
            let value = entry.value.clone();
            match Self::live(map, claim, now).map(|e| e.value.clone()) {
                None => {
                    if let Some(e) = map.get_mut(record.as_str()) {
                        e.expires_at = now + ttl;
                    }
                    map.insert(
                        claim.as_str().to_owned(),
                        Entry {
                            value: owner.as_bytes().to_vec(),
                            expires_at: now + ttl,
                        },
                    );
                    ClaimOutcome::Claimed(value)
                }
                Some(o) if o == owner.as_bytes() => ClaimOutcome::Resumed(value),
                Some(_) => ClaimOutcome::ClaimedByOther,
            }
        }))
    }

    pub(crate) fn take_claimed(
        &self,
        record: &Key,
        claim: &Key,
        owner: &str,
    ) -> Result<TakeOutcome, StoreError> {
        Ok(self.with(|map, now| {
            let is_owner = Self::live(map, claim, now).is_some_and(|e| e.value == owner.as_bytes());
            if !is_owner {
                return if Self::live(map, record, now).is_some() {
                    TakeOutcome::NotOwner
                } else {
                    TakeOutcome::Missing
                };
            }
            map.remove(claim.as_str());
            match Self::live(map, record, now) {
                Some(_) => map
                    .remove(record.as_str())
                    .map_or(TakeOutcome::Missing, |e| TakeOutcome::Taken(e.value)),
                None => TakeOutcome::Missing,
            }
        }))
    }
}

impl MemoryStore {
    /// Milliseconds on this process's monotonic clock (the Redis scripts use `TIME`).
    fn now_ms(now: Instant) -> u64 {
        static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
        now.saturating_duration_since(*EPOCH).as_millis() as u64
    }

    fn number(entry: Option<&mut Entry>) -> Option<u64> {
        entry.and_then(|e| std::str::from_utf8(&e.value).ok()?.parse().ok())
    }

    pub(crate) fn gcra(&self, key: &Key, interval_ms: u64, burst: u64) -> Result<Bucket, StoreError> {
        Ok(self.with(|map, now| {
            let tat = Self::number(Self::live(map, key, now));
            let (bucket, next) = gcra(Self::now_ms(now), tat, interval_ms, burst);
            if let Some((tat, ttl)) = next {
                map.insert(
                    key.as_str().to_owned(),
                    Entry {
                        value: tat.to_string().into_bytes(),
                        expires_at: now + Duration::from_millis(ttl),
                    },
                );
            }
            bucket
        }))
    }

    /// The `BACKOFF` script's contract; the record is `n:until`.
    pub(crate) fn backoff(&self, key: &Key, policy: Backoff, count: bool) -> Result<u64, StoreError> {
        Ok(self.with(|map, now| {
            let ms = Self::now_ms(now);
            let (n, until) = Self::live(map, key, now)
                .and_then(|e| {
                    let text = std::str::from_utf8(&e.value).ok()?;
                    let (n, until) = text.split_once(':')?;
                    Some((n.parse::<u64>().ok()?, until.parse::<u64>().ok()?))
                })
                .unwrap_or((0, 0));
            if until > ms {
                return until - ms;
            }
            if !count {
                return 0;
            }
            let n = n + 1;
            let wait = backoff_after(
                n,
                u64::from(policy.free),
                policy.base.as_millis() as u64,
                policy.max.as_millis() as u64,
            );
            let keep = Duration::from_millis(wait)
                .max(policy.forget)
                .max(Duration::from_millis(1));
            map.insert(
                key.as_str().to_owned(),
                Entry {
                    value: format!("{n}:{}", ms + wait).into_bytes(),
                    expires_at: now + keep,
                },
            );
            0
        }))
    }
}

/// What the `CLAIM` script checks: the record is a JSON object whose `client_id` is this one.
fn record_client_is(value: &[u8], client_id: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Binding<'a> {
        #[serde(borrow)]
        client_id: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Binding>(value).is_ok_and(|b| b.client_id == client_id)
}

/// What the `REDEEM` script marks as used: the code record's `grant_id`.
fn record_grant_id(value: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Grant {
        grant_id: String,
    }
    serde_json::from_slice::<Grant>(value).ok().map(|g| g.grant_id)
}
