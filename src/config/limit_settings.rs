//! The `limits` section and `clients[].limits` of the settings tree (docs/configuration.md,
//! docs/operations.md "Limits"); turned into the policy in force by `config::limits`.

use serde::Deserialize;

/// Abuse resistance (docs/operations.md, "Limits"); defaults in `crate::limits::Limits`.
/// An unset key keeps its default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Password checks queued or running at once in this process; beyond it a login gets
    /// `503` + `Retry-After` at once. 0 = 32 per CPU.
    pub password_queue: usize,
    /// Peers (addresses or CIDR ranges) whose `X-Forwarded-For` / `Forwarded` name the
    /// client's address; everyone else is counted by the socket's peer address.
    pub trusted_proxies: Vec<String>,
    pub par_per_client: Option<RateSettings>,
    pub token_per_client: Option<RateSettings>,
    pub par_per_address: Option<RateSettings>,
    pub authorize_per_address: Option<RateSettings>,
    pub login_per_address: Option<RateSettings>,
    pub token_per_address: Option<RateSettings>,
    pub password_per_user: Option<BackoffSettings>,
    pub password_per_user_address: Option<BackoffSettings>,
    /// Pushed requests per client within one `par.request_uri_lifetime` (0 = off).
    pub outstanding_per_client: Option<u32>,
    /// Pushed requests of public clients (`none`) per source address within one
    /// `par.request_uri_lifetime` (0 = off).
    pub outstanding_per_public_address: Option<u32>,
}

/// `requests` per `per_secs` seconds (all at once, or spread out); `requests: 0` = off.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSettings {
    pub requests: u32,
    pub per_secs: u64,
}

/// Password attempts: `free` without waiting, then a wait of `base_ms` doubling per
/// attempt up to `max_secs`; forgotten `forget_secs` after the last attempt. `free: 0` = off.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffSettings {
    pub free: u32,
    pub base_ms: u64,
    pub max_secs: u64,
    pub forget_secs: u64,
}

/// A client's own rates (`clients[].limits`), over `limits.par_per_client` /
/// `limits.token_per_client`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientLimitSettings {
    pub par: Option<RateSettings>,
    pub token: Option<RateSettings>,
}
