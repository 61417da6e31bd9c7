//! The rate limits at the endpoints (docs/operations.md, "Limits"): one call per request
//! counts it against every limit that applies — per source address, per client — sent
//! together, one round trip. Refusals are `429` with `Retry-After` and the `RateLimit-*`
//! fields (back channel, JSON) or a page saying how long to wait (browser).
//!
//! A store that cannot answer gives the same `503 temporarily_unavailable` the request's
//! own store work would have given: the limiter never turns an outage into another error.

use std::time::Duration;

use actix_web::HttpRequest;
use futures_util::future::join_all;

use crate::limits::{Endpoint, address_subject};
use crate::oauth::client::{AuthMethod, Client};
use crate::state::AppState;
use crate::store::{Admission, Backoff, Rate, StoreError};

/// A request over a limit: how long to wait, and the limit's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooMany {
    pub retry_after: Duration,
    pub limit: u32,
}

impl TooMany {
    /// `Retry-After` in whole seconds, at least 1 (RFC 9110 §10.2.3).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }
}

/// Why a limited request does not go on.
#[derive(Debug)]
pub(crate) enum Refusal {
    TooMany(TooMany),
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// The address `req` is counted under (`limits.trusted_proxies` decide whether forwarding
/// headers count); `None` without a peer address.
pub(crate) fn source(state: &AppState, req: &HttpRequest) -> Option<String> {
    state
        .limits
        .source(req.peer_addr().map(|a| a.ip()), req.headers())
        .map(address_subject)
}

/// Counts `req` against `endpoint`'s per-address limit and, with `client_id`, its
/// per-client one.
pub(crate) async fn check(
    state: &AppState,
    req: &HttpRequest,
    endpoint: Endpoint,
    client_id: Option<&str>,
) -> Result<(), Refusal> {
    let address = source(state, req);
    let checks = applicable(state, endpoint, address.as_deref(), client_id);
    admit_all(state, &checks).await
}

/// A push: its rates, and the caps on outstanding requests — per client, and per address
/// for public clients, which anyone can use (an outstanding request is one pushed within
/// the redemption window, `par.request_uri_lifetime`).
pub(crate) async fn check_push(state: &AppState, req: &HttpRequest, client: &Client) -> Result<(), Refusal> {
    let address = source(state, req);
    let mut checks = applicable(state, Endpoint::Par, address.as_deref(), Some(&client.id));
    checks.push((
        "outstanding_per_client",
        &client.id,
        state.limits.outstanding_per_client,
    ));
    if client.auth_method == AuthMethod::None
        && let Some(a) = &address
    {
        checks.push((
            "outstanding_per_public_address",
            a,
            state.limits.outstanding_per_public_address,
        ));
    }
    admit_all(state, &checks).await
}

/// The rates of `endpoint` for this address and client.
fn applicable<'a>(
    state: &AppState,
    endpoint: Endpoint,
    address: Option<&'a str>,
    client_id: Option<&'a str>,
) -> Vec<(&'static str, &'a str, Rate)> {
    let (client_scope, address_scope) = endpoint.scopes();
    let mut checks = Vec::with_capacity(4);
    if let Some(address) = address {
        checks.push((address_scope, address, state.limits.address_rate(endpoint)));
    }
    if let Some(id) = client_id
        && let Some(rate) = state.limits.client_rate(endpoint, id)
    {
        checks.push((client_scope, id, rate));
    }
    checks
}

/// Counts one request against every limit in `checks`, all sent together: one round trip.
async fn admit_all(state: &AppState, checks: &[(&'static str, &str, Rate)]) -> Result<(), Refusal> {
    let checks: Vec<_> = checks.iter().filter(|(_, _, rate)| !rate.is_off()).collect();
    if checks.is_empty() {
        return Ok(());
    }
    let owned: Vec<(&str, &str, Rate)> = checks
        .iter()
        .map(|(scope, subject, rate)| (*scope, *subject, *rate))
        .collect();
    let answers = state.store.admit_all(&owned).await?;
    let mut admitted = Vec::with_capacity(answers.len());
    for ((scope, _, _), answer) in checks.iter().zip(answers) {
        crate::telemetry::metrics::limit(scope, matches!(answer, Admission::Allowed { .. }));
        admitted.push(answer);
    }
    match Admission::all(admitted) {
        Some(Admission::Refused { retry_after, limit }) => {
            tracing::info!(
                retry_after_ms = retry_after.as_millis() as u64,
                "rate limit reached"
            );
            Err(Refusal::TooMany(TooMany { retry_after, limit }))
        }
        _ => Ok(()),
    }
}

/// The password back-offs that apply: per user, and per user and `address` (scope,
/// subject, policy).
fn backoffs(state: &AppState, username: &str, address: Option<&str>) -> Vec<(&'static str, String, Backoff)> {
    let mut all = vec![(PER_USER, username.to_owned(), state.limits.password_per_user)];
    if let Some(a) = address {
        all.push((
            PER_PAIR,
            user_at(username, a),
            state.limits.password_per_user_address,
        ));
    }
    all
}

/// How long `username` must still wait before its password is checked (the longer of the
/// back-offs), all read together. Known and unknown usernames are counted alike.
pub(crate) async fn password_wait(
    state: &AppState,
    username: &str,
    address: Option<&str>,
) -> Result<Option<Duration>, StoreError> {
    let checks = backoffs(state, username, address);
    let waits = join_all(
        checks
            .iter()
            .map(|(scope, subject, policy)| state.store.password_wait(scope, subject, *policy)),
    )
    .await;
    let mut longest = None;
    for ((scope, _, _), wait) in checks.iter().zip(waits) {
        let wait = wait?;
        crate::telemetry::metrics::limit(scope, wait.is_none());
        longest = longest.max(wait);
    }
    Ok(longest)
}

/// Counts a wrong password (or an unknown username) for every back-off, together.
pub(crate) async fn password_failed(
    state: &AppState,
    username: &str,
    address: Option<&str>,
) -> Result<(), StoreError> {
    let checks = backoffs(state, username, address);
    join_all(
        checks
            .iter()
            .map(|(scope, subject, policy)| state.store.password_failed(scope, subject, *policy)),
    )
    .await
    .into_iter()
    .collect()
}

/// After a successful login the attempts start over. Housekeeping: a failure is logged.
pub(crate) async fn password_succeeded(state: &AppState, username: &str, address: Option<&str>) {
    let checks = backoffs(state, username, address);
    let done = join_all(
        checks
            .iter()
            .map(|(scope, subject, _)| state.store.password_succeeded(scope, subject)),
    )
    .await;
    if let Some(Err(e)) = done.into_iter().find(Result::is_err) {
        tracing::debug!(error = %e, "could not reset the password attempts");
    }
}

const PER_USER: &str = "password_per_user";
const PER_PAIR: &str = "password_per_user_address";

/// The subject of the per-user-and-address back-off (the store hashes it).
fn user_at(username: &str, address: &str) -> String {
    format!("{address} {username}")
}
