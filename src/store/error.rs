//! Store failures, split by what the caller should tell the client: the backend is
//! unreachable or slow (`503 temporarily_unavailable`, retry later) or it misbehaved
//! (`500 server_error`).

use redis::{RedisError, ServerErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Backend(String),
    /// A record over the store's size cap (`Store::limit_record_size`): the client's input
    /// was too large to keep, not a fault of the store.
    #[error("record of {0} bytes is over the cap of {1}")]
    TooLarge(usize, usize),
}

impl From<RedisError> for StoreError {
    fn from(e: RedisError) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Backend(e.to_string())
        }
    }
}

/// Server replies that mean "not now, retry", not "broken": during a failover, a slot
/// migration or a restart (READONLY, LOADING, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, and
/// connection failures), and a full Redis (`OOM` under `maxmemory-policy noeviction`: reads
/// still work, writes wait for keys to expire). They become `503 temporarily_unavailable`, never `500`
/// (docs/redis.md, "What a client sees when Redis fails").
fn is_transient(e: &RedisError) -> bool {
    is_out_of_memory(e)
        || e.is_io_error()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
            )
        )
}

/// `OOM command not allowed when used memory > 'maxmemory'`, as a command's error or from a
/// `redis.call` inside a script.
fn is_out_of_memory(e: &RedisError) -> bool {
    e.code() == Some("OOM") || e.to_string().contains("OOM command not allowed")
}
