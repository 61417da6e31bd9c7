//! The in-memory backend: the zero-config, single-process default. Same contract as Redis
//! (one mutex makes every operation atomic; the record checks mirror `store::redis::scripts`),
//! so `tests/api/store_contract.rs` runs against both. It cannot be shared between
//! processes; start-up says so loudly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::StoreError;
use super::keyspace::Key;
use super::outcome::{Bind, OpenOutcome, RedeemOutcome, RotateOutcome, Take};
use super::rate::{Backoff, Bucket, backoff_after, gcra};

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

    fn insert(map: &mut HashMap<String, Entry>, key: &Key, value: Vec<u8>, expires_at: Instant) {
        map.insert(key.as_str().to_owned(), Entry { value, expires_at });
    }

    /// The `REDEEM` script's contract.
    pub(crate) fn redeem(
        &self,
        code: &Key,
        used: &Key,
        ttl: Duration,
        client_id: &str,
        expected: &[(&str, &str)],
    ) -> Result<RedeemOutcome, StoreError> {
        Ok(self.with(|map, now| {
            let live = Self::live(map, code, now).is_some();
            let Some(entry) = Self::live(map, if live { code } else { used }, now) else {
                return RedeemOutcome::Unknown;
            };
            let Ok(serde_json::Value::Object(rec)) = serde_json::from_slice(&entry.value) else {
                return RedeemOutcome::Unknown;
            };
            let field = |name: &str| rec.get(name).and_then(|v| v.as_str()).unwrap_or("");
            if field("client_id") != client_id {
                return RedeemOutcome::Unknown;
            }
            for (name, value) in expected {
                let (name, optional) = match name.strip_prefix('?') {
                    Some(n) => (n, true),
                    None => (*name, false),
                };
                if (!optional || rec.contains_key(name)) && field(name) != *value {
                    return RedeemOutcome::Mismatch(name.to_owned());
                }
            }
            if !live {
                return RedeemOutcome::Replayed(field("grant_id").to_owned());
            }
            let value = map.remove(code.as_str()).map(|e| e.value).unwrap_or_default();
            Self::insert(map, used, value.clone(), now + ttl);
            RedeemOutcome::Redeemed(value)
        }))
    }

    /// The `ROTATE` script's contract. The used set is kept as newline-separated digests.
    pub(crate) fn rotate(&self, keys: [&Key; 4], args: [&str; 7]) -> Result<RotateOutcome, StoreError> {
        let [record, current, used, revoked] = keys;
        let [presented, new, idle, now_secs, revoked_ttl, client_id, jkt] = args;
        let secs = |s: &str| s.parse::<u64>().unwrap_or(0);
        Ok(self.with(|map, now| {
            if Self::live(map, revoked, now).is_some() {
                return RotateOutcome::Unknown;
            }
            let Some(entry) = Self::live(map, record, now) else {
                return RotateOutcome::Unknown;
            };
            let value = entry.value.clone();
            let Ok(serde_json::Value::Object(rec)) = serde_json::from_slice(&value) else {
                return RotateOutcome::Unknown;
            };
            if rec.get("client_id").and_then(|v| v.as_str()) != Some(client_id) {
                return RotateOutcome::Unknown;
            }
            if let Some(bound) = rec.get("dpop_jkt").and_then(|v| v.as_str())
                && bound != jkt
            {
                return RotateOutcome::KeyMismatch;
            }
            let end = rec.get("expires_at").and_then(|v| v.as_u64()).unwrap_or(0);
            let left = end.saturating_sub(secs(now_secs));
            if left == 0 {
                return RotateOutcome::Unknown;
            }
            let is_current = Self::live(map, current, now).is_some_and(|e| e.value == presented.as_bytes());
            let mut retired: Vec<u8> = Self::live(map, used, now)
                .map(|e| e.value.clone())
                .unwrap_or_default();
            if is_current {
                let ttl = Duration::from_secs(secs(idle).min(left));
                Self::insert(map, current, new.as_bytes().to_vec(), now + ttl);
                Self::insert(map, record, value.clone(), now + ttl);
                retired.extend_from_slice(presented.as_bytes());
                retired.push(b'\n');
                Self::insert(map, used, retired, now + Duration::from_secs(left));
                return RotateOutcome::Rotated(value);
            }
            if retired.split(|b| *b == b'\n').any(|d| d == presented.as_bytes()) {
                for k in [record, current, used] {
                    map.remove(k.as_str());
                }
                Self::insert(
                    map,
                    revoked,
                    b"1".to_vec(),
                    now + Duration::from_secs(secs(revoked_ttl)),
                );
                return RotateOutcome::Reused;
            }
            RotateOutcome::Unknown
        }))
    }

    /// The `OPEN` script's contract.
    pub(crate) fn open(
        &self,
        [record, opened, bound]: [&Key; 3],
        client_id: &str,
        owner: &str,
        ttl: Duration,
        extend: bool,
    ) -> Result<OpenOutcome, StoreError> {
        Ok(self.with(|map, now| {
            let Some(entry) = Self::live(map, record, now) else {
                return OpenOutcome::Missing;
            };
            if after_tag(&entry.value, client_id).is_none() {
                return OpenOutcome::WrongClient;
            }
            let value = entry.value.clone();
            if extend && Self::live(map, opened, now).is_none() {
                Self::insert(map, opened, b"1".to_vec(), now + ttl);
                if let Some(e) = map.get_mut(record.as_str()) {
                    e.expires_at = now + ttl;
                }
            }
            match Self::live(map, bound, now) {
                None => OpenOutcome::Open(value),
                Some(b) => match after_tag(&b.value, owner) {
                    Some(user) => OpenOutcome::BoundHere(value, user.to_vec()),
                    None => OpenOutcome::BoundElsewhere,
                },
            }
        }))
    }

    /// The `BIND` script's contract.
    pub(crate) fn bind(
        &self,
        [record, bound]: [&Key; 2],
        owner: &str,
        value: &[u8],
    ) -> Result<Bind, StoreError> {
        Ok(self.with(|map, now| {
            let Some(expires_at) = Self::live(map, record, now).map(|e| e.expires_at) else {
                return Bind::Missing;
            };
            if let Some(b) = Self::live(map, bound, now)
                && after_tag(&b.value, owner).is_none()
            {
                return Bind::BoundElsewhere;
            }
            Self::insert(map, bound, value.to_vec(), expires_at);
            Bind::Bound
        }))
    }

    /// The `TAKE` script's contract.
    pub(crate) fn take_request(
        &self,
        [record, bound, opened]: [&Key; 3],
        owner: &str,
    ) -> Result<Take, StoreError> {
        Ok(self.with(|map, now| {
            let elsewhere = Self::live(map, bound, now).is_some_and(|b| after_tag(&b.value, owner).is_none());
            if Self::live(map, record, now).is_none() {
                return Take::Missing;
            }
            if elsewhere {
                return Take::NotOwner;
            }
            for key in [record, bound, opened] {
                map.remove(key.as_str());
            }
            Take::Taken
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

    /// The `GCRA` script's contract: one step on each bucket, atomically.
    pub(crate) fn gcra(&self, keys: &[Key], params: &[(u64, u64, u64)]) -> Result<Vec<Bucket>, StoreError> {
        Ok(self.with(|map, now| {
            keys.iter()
                .zip(params)
                .map(|(key, (interval_ms, burst, want))| {
                    let tat = Self::number(Self::live(map, key, now));
                    let (bucket, next) = gcra(Self::now_ms(now), tat, *interval_ms, *burst, *want);
                    if let Some((tat, ttl)) = next {
                        Self::insert(
                            map,
                            key,
                            tat.to_string().into_bytes(),
                            now + Duration::from_millis(ttl),
                        );
                    }
                    bucket
                })
                .collect()
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

/// What follows `tag` and a newline in a tagged value (`store::records`), if `value` has
/// this tag: compared by length, as the scripts do.
fn after_tag<'v>(value: &'v [u8], tag: &str) -> Option<&'v [u8]> {
    value.strip_prefix(tag.as_bytes())?.strip_prefix(b"\n")
}
