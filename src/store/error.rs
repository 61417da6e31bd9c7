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
        if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() || e.is_connection_dropped() {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Backend(e.to_string())
        }
    }
}
