//! Prometheus metrics served at `GET /metrics` (docs/observability.md lists them all).
//!
//! One recorder per process, installed by the first [`install`] (every
//! `Application::build` calls it): the `metrics` facade is process-global, and so is what a
//! scrape of one replica should show. Tests run many applications in one process; they read
//! an app's `/metrics` before and after a flow and compare, and the flow counters carry the
//! configured `client_id` so a test with its own client sees exact deltas.
//!
//! Labels are bounded: route patterns (never paths), status codes, HTTP methods mapped onto
//! the standard set, Redis command names from a fixed list, outcomes from enums, and
//! `client_id` only after it matched a configured client.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Histogram, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds): 0.25 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Installs the process-wide recorder once and returns its handle. If another recorder was
/// installed first (an embedding program), metrics go there and `/metrics` shows only what
/// this handle saw: nothing.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        describe();
        // Histograms accumulate samples until drained: drain them even if nobody scrapes.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    install().render()
}

fn describe() {
    describe_counter!(
        "http_server_requests_total",
        "HTTP requests by method, route pattern and status"
    );
    describe_histogram!(
        "http_server_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency (until the response head is ready) by method, route and status"
    );
    describe_counter!(
        "par_pushes_total",
        "Pushed authorization requests stored (201 from /par)"
    );
    describe_counter!(
        "par_visits_total",
        "request_uri presentations at /authorize, /login and /consent by outcome: open (usable), awaiting_consent (the browser whose user signed in), bound_elsewhere (another browser's user signed in first), wrong_client (cross-client attempt), missing (unknown, expired or already used)"
    );
    describe_counter!(
        "par_takes_total",
        "Pushed requests consumed at the point of authorization by outcome: taken, not_owner (bound to another browser), missing (already taken: lost a race)"
    );
    describe_counter!("par_codes_issued_total", "Authorization codes issued");
    describe_counter!("par_tokens_issued_total", "Token responses issued at /token");
    describe_counter!(
        "par_code_replays_total",
        "Authorization codes presented again after they were redeemed"
    );
    describe_counter!(
        "par_logins_total",
        "Password logins by outcome: ok, bad_credentials, backoff (refused unchecked while the password back-off runs)"
    );
    describe_counter!(
        "par_limit_checks_total",
        "Requests counted against a rate limit or the password back-off, by limit (par_per_client, login_per_address, password_per_user, ...) and outcome: allowed, refused"
    );
    describe_counter!(
        "par_password_checks_total",
        "Password checks not run: refused (the bounded queue was full: 503 at once) or abandoned (the requester had gone when its turn came)"
    );
    describe_counter!(
        "par_client_auth_failures_total",
        "Failed client authentications at /par (and /token) by presented method"
    );
    describe_counter!(
        "par_refresh_rotations_total",
        "Refresh tokens rotated (a refresh_token grant served)"
    );
    describe_counter!(
        "par_refresh_reuse_total",
        "Rotated refresh tokens presented again: each revoked its whole grant"
    );
    describe_counter!(
        "par_revocations_total",
        "Tokens revoked at /revoke by kind: refresh_token, access_token, unknown (RFC 7009: still 200)"
    );
    describe_counter!(
        "par_dpop_proof_failures_total",
        "DPoP proofs refused (invalid_dpop_proof) by endpoint and reason: malformed, typ, alg, jwk, signature, htm, htu, iat, jti, ath, replay, key_mismatch, missing"
    );
    describe_counter!(
        "par_dpop_nonce_challenges_total",
        "use_dpop_nonce answers (a proof without a valid server nonce) by endpoint"
    );
    describe_histogram!(
        "par_redis_command_duration_seconds",
        metrics::Unit::Seconds,
        "Redis command latency as seen by par-server, by command"
    );
    describe_counter!(
        "par_redis_errors_total",
        "Failed Redis commands by command and kind: unavailable (connection, timeout) or backend"
    );
}

/// HTTP methods as bounded label values (OTel's `_OTHER` for the rest).
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

// The series every request or flow step touches keep their handles per thread: `counter!`
// with labels builds a key, hashes it and searches the registry on each call (≈ 1,400
// instructions, several per request); a kept handle is one atomic add. Label sets are
// bounded (see the header), and so are these maps. Handles are taken after `install`
// (every request comes after `Application::build`), so none is a no-op handle.
/// (method, route, status) → request counter and duration histogram.
type RequestSeries = HashMap<(&'static str, String, u16), (Counter, Histogram)>;
/// (metric, outcome or "") → client id → counter.
type ClientSeries = HashMap<(&'static str, &'static str), HashMap<String, Counter>>;

thread_local! {
    static REQUESTS: RefCell<RequestSeries> = RefCell::new(HashMap::new());
    static PER_CLIENT: RefCell<ClientSeries> = RefCell::new(HashMap::new());
    static LIMITS: RefCell<HashMap<(&'static str, &'static str), Counter>> = RefCell::new(HashMap::new());
    static REDIS: RefCell<HashMap<&'static str, Histogram>> = RefCell::new(HashMap::new());
}

pub fn http_request(method: &'static str, route: String, status: u16, elapsed: Duration) {
    REQUESTS.with_borrow_mut(|series| {
        let (requests, duration) = series
            .entry((method, route, status))
            .or_insert_with_key(|(m, r, s)| {
                let labels = [
                    ("method", m.to_string()),
                    ("route", r.clone()),
                    ("status", s.to_string()),
                ];
                (
                    counter!("http_server_requests_total", &labels),
                    histogram!("http_server_request_duration_seconds", &labels),
                )
            });
        requests.increment(1);
        duration.record(elapsed.as_secs_f64());
    });
}

/// `name`{client_id, outcome} (no outcome label when `outcome` is empty) + 1.
fn per_client(name: &'static str, client_id: &str, outcome: &'static str) {
    PER_CLIENT.with_borrow_mut(|series| {
        let clients = series.entry((name, outcome)).or_default();
        if let Some(c) = clients.get(client_id) {
            return c.increment(1);
        }
        let c = if outcome.is_empty() {
            counter!(name, "client_id" => client_id.to_owned())
        } else {
            counter!(name, "client_id" => client_id.to_owned(), "outcome" => outcome)
        };
        c.increment(1);
        clients.insert(client_id.to_owned(), c);
    });
}

pub fn pushed(client_id: &str) {
    per_client("par_pushes_total", client_id, "");
}

pub fn visit(client_id: &str, outcome: &'static str) {
    per_client("par_visits_total", client_id, outcome);
}

pub fn take(client_id: &str, outcome: &'static str) {
    per_client("par_takes_total", client_id, outcome);
}

pub fn code_issued(client_id: &str) {
    per_client("par_codes_issued_total", client_id, "");
}

/// For the token endpoint: one token response issued.
pub fn tokens_issued(client_id: &str) {
    per_client("par_tokens_issued_total", client_id, "");
}

/// For the token endpoint: a code presented after it was redeemed.
pub fn code_replayed(client_id: &str) {
    counter!("par_code_replays_total", "client_id" => client_id.to_owned()).increment(1);
}

pub fn login(client_id: &str, outcome: &'static str) {
    per_client("par_logins_total", client_id, outcome);
}

/// One request counted against `limit` (a scope name from a fixed list).
pub fn limit(limit: &'static str, allowed: bool) {
    let outcome = if allowed { "allowed" } else { "refused" };
    LIMITS.with_borrow_mut(|series| {
        series
            .entry((limit, outcome))
            .or_insert_with(|| counter!("par_limit_checks_total", "limit" => limit, "outcome" => outcome))
            .increment(1)
    });
}

/// A password check refused at admission or abandoned in the queue.
pub fn password_check(outcome: &'static str) {
    counter!("par_password_checks_total", "outcome" => outcome).increment(1);
}

pub fn client_auth_failed(method: &'static str) {
    counter!("par_client_auth_failures_total", "method" => method).increment(1);
}

/// A refresh token rotated.
pub fn refresh_rotated(client_id: &str) {
    counter!("par_refresh_rotations_total", "client_id" => client_id.to_owned()).increment(1);
}

/// A rotated refresh token presented again (the grant was revoked).
pub fn refresh_reused(client_id: &str) {
    counter!("par_refresh_reuse_total", "client_id" => client_id.to_owned()).increment(1);
}

/// A revocation request served; `kind`: `refresh_token`, `access_token` or `unknown`.
pub fn revoked(client_id: &str, kind: &'static str) {
    counter!("par_revocations_total", "client_id" => client_id.to_owned(), "kind" => kind).increment(1);
}

/// A refused DPoP proof: the endpoint (`par`, `token`, `userinfo`) and a bounded reason.
pub fn dpop_failure(endpoint: &'static str, reason: &'static str) {
    counter!("par_dpop_proof_failures_total", "endpoint" => endpoint, "reason" => reason).increment(1);
}

/// A `use_dpop_nonce` challenge at `endpoint`.
pub fn dpop_nonce_challenge(endpoint: &'static str) {
    counter!("par_dpop_nonce_challenges_total", "endpoint" => endpoint).increment(1);
}

pub fn redis_command(command: &'static str, elapsed: Duration, error: Option<&'static str>) {
    REDIS.with_borrow_mut(|series| {
        series
            .entry(command)
            .or_insert_with(|| histogram!("par_redis_command_duration_seconds", "command" => command))
            .record(elapsed.as_secs_f64())
    });
    if let Some(kind) = error {
        counter!("par_redis_errors_total", "command" => command, "kind" => kind).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        let odd = actix_web::http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "_OTHER");
        assert_eq!(method_label(&actix_web::http::Method::POST), "POST");
    }
}
