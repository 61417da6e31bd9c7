//! Store failures, split by what the caller should tell the client: the backend is
//! unreachable or slow (`503 temporarily_unavailable`, retry later) or it misbehaved
//! (`500 server_error`).

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Backend(String),
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        // READONLY, LOADING, TRYAGAIN, CLUSTERDOWN, MASTERDOWN: a failover or migration is
        // under way (brief §4: 503, never 500).
        if super::redis::is_transient(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Backend(e.to_string())
        }
    }
}
