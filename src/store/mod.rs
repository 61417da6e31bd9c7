//! Shared state: the only module that talks to Redis.
//!
//! One small interface, [`Store`], with two backends: Redis (the product; every replica
//! shares it) and in-memory (the zero-config single-process demo). Both satisfy the contract
//! tested in `tests/store_contract.rs`. Single-use operations are atomic in both: `take` is
//! `GETDEL`, `claim`/`take_claimed` are Lua scripts — never a read-then-write from the
//! service.

pub mod error;
mod instrument;
pub mod keys;
pub mod memory;
pub mod redis;

use std::time::Duration;

pub use error::StoreError;
pub use keys::{Key, Keys};

/// Result of claiming a pushed request for a browser interaction.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// First claim: this browser now owns the interaction; the record's life was extended.
    Claimed(Vec<u8>),
    /// The same browser came back (a reload): continue.
    Resumed(Vec<u8>),
    /// Another browser owns it.
    ClaimedByOther,
    /// The record belongs to another client; nothing was changed.
    WrongClient,
    /// Unknown, expired or already used.
    Missing,
}

/// Result of taking a claimed pushed request at code issuance.
#[derive(Debug, PartialEq, Eq)]
pub enum TakeOutcome {
    Taken(Vec<u8>),
    NotOwner,
    Missing,
}

/// The store. An enum rather than a trait object: two backends, static dispatch, no boxing
/// on the hot path.
pub enum Store {
    Memory(memory::MemoryStore),
    Redis(redis::RedisStore),
}

macro_rules! dispatch {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        match $self {
            Store::Memory(s) => s.$method($($arg),*),
            Store::Redis(s) => s.$method($($arg),*).await,
        }
    };
}

impl Store {
    pub fn memory() -> Self {
        Store::Memory(memory::MemoryStore::default())
    }

    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// `SET key value EX ttl NX`: `false` if the key already exists (a collision fails
    /// loudly instead of overwriting).
    #[tracing::instrument(name = "store.put_new", level = "debug", skip_all)]
    pub async fn put_new(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        dispatch!(self, put_new(key, value, ttl))
    }

    /// `SET key value EX ttl`.
    #[tracing::instrument(name = "store.put", level = "debug", skip_all)]
    pub async fn put(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        dispatch!(self, put(key, value, ttl))
    }

    #[tracing::instrument(name = "store.get", level = "debug", skip_all)]
    pub async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, get(key))
    }

    /// Atomically fetches and deletes (`GETDEL`). `None` if the key never existed, expired,
    /// or was already taken by this or any other replica.
    #[tracing::instrument(name = "store.take", level = "debug", skip_all)]
    pub async fn take(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, take(key))
    }

    #[tracing::instrument(name = "store.delete", level = "debug", skip_all)]
    pub async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        dispatch!(self, delete(key))
    }

    /// Remaining lifetime, `None` if absent.
    pub async fn ttl(&self, key: &Key) -> Result<Option<Duration>, StoreError> {
        dispatch!(self, ttl(key))
    }

    /// Redeems an authorization code atomically: takes `code` (`GETDEL`) and, if it was
    /// there, writes `used` = the record's `grant_id` for `ttl` (replay detection). One
    /// round trip. `None` if the code is unknown, expired or already redeemed.
    #[tracing::instrument(name = "store.redeem", level = "debug", skip_all)]
    pub async fn redeem(&self, code: &Key, used: &Key, ttl: Duration) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, redeem(code, used, ttl))
    }

    /// Claims the pushed request `record` for `owner` if it belongs to `client_id`; the first
    /// claim extends the record's life to `ttl`. See [`ClaimOutcome`].
    #[tracing::instrument(name = "store.claim", level = "debug", skip_all)]
    pub async fn claim(
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
    #[tracing::instrument(name = "store.take_claimed", level = "debug", skip_all)]
    pub async fn take_claimed(
        &self,
        record: &Key,
        claim: &Key,
        owner: &str,
    ) -> Result<TakeOutcome, StoreError> {
        dispatch!(self, take_claimed(record, claim, owner))
    }

    /// Readiness probe: Redis answers `PING` within the command timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(s) => s.ping().await,
        }
    }
}

/// Records that `claim` inspects are JSON objects with a top-level `client_id`.
fn record_client_is(value: &[u8], client_id: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Binding<'a> {
        #[serde(borrow)]
        client_id: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Binding>(value).is_ok_and(|b| b.client_id == client_id)
}

/// The `grant_id` of an authorization-code record (what [`Store::redeem`] marks as used).
fn record_grant_id(value: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Grant {
        grant_id: String,
    }
    serde_json::from_slice::<Grant>(value).ok().map(|g| g.grant_id)
}
