//! Shared state: the only module that talks to Redis.
//!
//! [`Store`] is the typed flow layer — one method per step of a login, taking and returning
//! domain objects (`flow`). Underneath, two byte-level backends with one contract (`backend`):
//! Redis, the product, shared by every replica (`redis`), and in-memory, for the zero-config
//! single-process demo (`memory`); `tests/api/store_contract.rs` runs the contract on both
//! and on every Redis topology. `keyspace` formats every key, `records` encodes every
//! record, `instrument` puts a span and metrics around every Redis call; `limits` (with its
//! arithmetic in `rate`) counts requests for the rate limits and the password back-off;
//! `refresh` keeps refresh tokens and rotates them.

mod backend;
mod error;
mod flow;
mod instrument;
mod keyspace;
mod lease;
mod limits;
mod memory;
mod outcome;
mod rate;
mod records;
mod redis;
mod refresh;

pub use self::error::StoreError;
pub use self::flow::{CodeCheck, PlaygroundLogin, Redemption, Store, Visit};
pub use self::outcome::{Bind, Take};
pub use self::rate::{Admission, Backoff, Rate};
pub use self::redis::options::{PoolOptions, RedisOptions, TlsFiles, Topology};
pub use self::refresh::{Refresh, RefreshCheck};
