//! The byte-level backends behind [`crate::store::Store`]: Redis (the product; every replica
//! shares it) and in-memory (the zero-config single-process demo). An enum rather than a
//! trait object: two backends, static dispatch, no boxing on the hot path. Single-use
//! operations are atomic in both: `take` is `GETDEL`, `claim`/`take_claimed`/`redeem` are
//! Lua scripts (one mutex in memory) — never a read-then-write from the service.

use std::time::Duration;

use super::error::StoreError;
use super::keyspace::Key;
use super::limits::{Backoff, Bucket};
use super::memory::MemoryStore;
use super::outcome::{ClaimOutcome, TakeOutcome};
use super::redis::RedisStore;

pub(crate) enum Backend {
    Memory(MemoryStore),
    Redis(RedisStore),
}

macro_rules! dispatch {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        match $self {
            Backend::Memory(s) => s.$method($($arg),*),
            Backend::Redis(s) => s.$method($($arg),*).await,
        }
    };
}

impl Backend {
    /// `SET key value EX ttl NX`: `false` if the key already exists.
    pub(crate) async fn put_new(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        dispatch!(self, put_new(key, value, ttl))
    }

    /// `SET key value EX ttl`.
    pub(crate) async fn put(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        dispatch!(self, put(key, value, ttl))
    }

    pub(crate) async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, get(key))
    }

    /// Atomically fetches and deletes (`GETDEL`): `None` if the key never existed, expired,
    /// or was already taken by this or any other replica.
    pub(crate) async fn take(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, take(key))
    }

    pub(crate) async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        dispatch!(self, delete(key))
    }

    /// Takes `code` (`GETDEL`) and, if it was there, writes `used` = the record's
    /// `grant_id` for `ttl`, atomically. `None` if the code is unknown, expired or redeemed.
    pub(crate) async fn redeem(
        &self,
        code: &Key,
        used: &Key,
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, redeem(code, used, ttl))
    }

    /// Claims `record` for `owner` if it belongs to `client_id`; the first claim extends the
    /// record's life to `ttl`. See [`ClaimOutcome`].
    pub(crate) async fn claim(
        &self,
        record: &Key,
        claim: &Key,
        client_id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        dispatch!(self, claim(record, claim, client_id, owner, ttl))
    }

    /// Takes the claimed record if `owner` holds the claim: exactly one winner.
    pub(crate) async fn take_claimed(
        &self,
        record: &Key,
        claim: &Key,
        owner: &str,
    ) -> Result<TakeOutcome, StoreError> {
        dispatch!(self, take_claimed(record, claim, owner))
    }

    /// One GCRA step on the bucket `key` (`store::limits::gcra`), atomically.
    pub(crate) async fn gcra(&self, key: &Key, interval_ms: u64, burst: u64) -> Result<Bucket, StoreError> {
        dispatch!(self, gcra(key, interval_ms, burst))
    }

    /// The password back-off on `key`: the wait in ms while it runs (nothing counted), else
    /// 0 — with `count`, after counting a failure and setting the next back-off.
    pub(crate) async fn backoff(&self, key: &Key, policy: Backoff, count: bool) -> Result<u64, StoreError> {
        dispatch!(self, backoff(key, policy, count))
    }

    pub(crate) async fn eviction_policy(&self) -> Result<Option<String>, StoreError> {
        match self {
            Backend::Memory(_) => Ok(None),
            Backend::Redis(s) => s.eviction_policy().await,
        }
    }
}
