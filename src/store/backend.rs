//! The byte-level backends behind [`crate::store::Store`]: Redis (the product; every replica
//! shares it) and in-memory (the zero-config single-process demo). An enum rather than a
//! trait object: two backends, static dispatch, no boxing on the hot path. Single-use
//! operations are atomic in both: `take` is `GETDEL`; `open`, `bind`, `take_request`,
//! `redeem` and `rotate` are Lua scripts (one mutex in memory) — never a read-then-write
//! from the service.

use std::time::Duration;

use super::error::StoreError;
use super::keyspace::Key;
use super::memory::MemoryStore;
use super::outcome::{Bind, OpenOutcome, RedeemOutcome, RotateOutcome, Take};
use super::rate::{Backoff, Bucket};
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

    /// Checks `code` (its `client_id`, then each expected field) and, only when every check
    /// passes, takes it and keeps it as `used` for `ttl`, atomically. See [`RedeemOutcome`].
    pub(crate) async fn redeem(
        &self,
        code: &Key,
        used: &Key,
        ttl: Duration,
        client_id: &str,
        expected: &[(&str, &str)],
    ) -> Result<RedeemOutcome, StoreError> {
        dispatch!(self, redeem(code, used, ttl, client_id, expected))
    }

    /// A visit to `record` by `owner` if it belongs to `client_id` (keys: record, opened
    /// marker, binding); with `extend`, the first visit extends the record's life to `ttl`.
    pub(crate) async fn open(
        &self,
        keys: [&Key; 3],
        client_id: &str,
        owner: &str,
        ttl: Duration,
        extend: bool,
    ) -> Result<OpenOutcome, StoreError> {
        dispatch!(self, open(keys, client_id, owner, ttl, extend))
    }

    /// Binds `record` to `owner` (keys: record, binding) for the record's remaining life,
    /// storing `value`, unless another owner holds it.
    pub(crate) async fn bind(&self, keys: [&Key; 2], owner: &str, value: &[u8]) -> Result<Bind, StoreError> {
        dispatch!(self, bind(keys, owner, value))
    }

    /// Deletes `record` (keys: record, binding, opened marker) unless another owner holds
    /// it: exactly one winner.
    pub(crate) async fn take_request(&self, keys: [&Key; 3], owner: &str) -> Result<Take, StoreError> {
        dispatch!(self, take_request(keys, owner))
    }

    /// Rotates a grant's refresh token, or revokes the grant on reuse (keys: record,
    /// current, used set, revoked mark). See [`RotateOutcome`].
    pub(crate) async fn rotate(&self, keys: [&Key; 4], args: [&str; 7]) -> Result<RotateOutcome, StoreError> {
        dispatch!(self, rotate(keys, args))
    }

    /// One GCRA step (`store::rate::gcra`) on each bucket of `keys`, with `params` (interval
    /// ms, burst, cells wanted) per key; atomically per bucket.
    pub(crate) async fn gcra(
        &self,
        keys: &[Key],
        params: &[(u64, u64, u64)],
    ) -> Result<Vec<Bucket>, StoreError> {
        dispatch!(self, gcra(keys, params))
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
