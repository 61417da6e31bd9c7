//! `redis_login`: the Redis-bound part of SSO logins, driven directly through par-server's
//! own store (`par_server::store::Store`: the same step methods, scripts, keys and hash tags,
//! the same cluster client), with no HTTP in front. One login is what par-server sends for an SSO login
//! (docs/benchmarks.md, "Redis round trips of one SSO login"):
//! 1. `SET par:{D} … EX 60 NX` (push);
//! 2. `EVALSHA claim` and `GET sso:{S}`, together (authorize);
//! 3. `EVALSHA take_claimed` and `SET code:{C} … EX 60 NX`, together (code issuance);
//! 4. `EVALSHA redeem` (token).
//!
//! ```text
//! redis_login --node redis://127.0.0.1:7000 [--node …] [--cluster] -c 64 -d 10 \
//!     [--par-bytes 700 --code-bytes 600 --sso-bytes 200] [--label L]
//! ```
//!
//! Every `--node` is sampled (`INFO` before and after; list the primaries): the JSON line
//! printed at the end has logins/s and, per node, its share of the commands, its Redis CPU
//! (µs per login it served, and its utilisation) and its keys afterwards (each login leaves
//! one `code:{C}:used` marker, so the key counts show how the flow hash tags spread).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use par_server::oauth::authorization::AuthorizationRequest;
use par_server::oauth::code::AuthorizationCode;
use par_server::oauth::interaction::Session;
use par_server::oauth::request_uri::Reference;
use par_server::store::{CodeCheck, Redemption, RedisOptions, Store, Take, Topology, Visit};
use serde_json::json;

#[path = "../redis_info.rs"]
mod redis_info;

#[derive(Parser)]
#[command(about = "The Redis part of SSO logins through par-server's store (docs/capacity.md)")]
struct Args {
    /// Redis node(s): the standalone server, or the cluster's primaries (all are sampled).
    #[arg(long = "node", required = true)]
    nodes: Vec<String>,
    /// The nodes form a Redis Cluster.
    #[arg(long)]
    cluster: bool,
    /// Concurrent logins.
    #[arg(long, short = 'c', default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds (after one second of warm-up).
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Runtime worker threads of the driver.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Value sizes of the pushed request, the code record and the SSO session (bytes;
    /// the capacity run measures par-server's own with STRLEN).
    #[arg(long, default_value_t = 700)]
    par_bytes: usize,
    #[arg(long, default_value_t = 600)]
    code_bytes: usize,
    #[arg(long, default_value_t = 200)]
    sso_bytes: usize,
    #[arg(long, default_value = "")]
    label: String,
}

const CLIENT: &str = "bench-app";

/// `template` with its string field `pad` filled so that its JSON is about `len` bytes (the
/// sizes par-server's own records have; the capacity run measures them with STRLEN).
fn padded<T: serde::de::DeserializeOwned>(mut template: serde_json::Value, pad: &str, len: usize) -> T {
    let base = template.to_string().len();
    template[pad] = json!("x".repeat(len.saturating_sub(base)));
    serde_json::from_value(template).expect("a valid record")
}

fn pushed_request(len: usize) -> AuthorizationRequest {
    let template = json!({"client_id": CLIENT, "redirect_uri": "https://app.example/cb", "scope": ["openid"], "state": ""});
    padded(template, "state", len)
}

fn code_record(len: usize) -> AuthorizationCode {
    let template = json!({"client_id": CLIENT, "redirect_uri": "https://app.example/cb", "scope": ["openid"],
        "sub": "u", "auth_time": 1, "grant_id": "g-0123456789abcdef", "flow_id": ""});
    padded(template, "flow_id", len)
}

fn session(len: usize) -> Session {
    padded(json!({"sub": "", "auth_time": 1}), "sub", len)
}

#[derive(Default)]
struct Counters {
    logins: AtomicU64,
    errors: AtomicU64,
}

/// One login's Redis part, through the store's step methods; `false` if any step did not do
/// what a login needs.
async fn login(store: &Store, sso_cookie: &str, recs: &Records) -> bool {
    let ttl = Duration::from_secs(60);
    let reference = Reference::generate();
    let owner = par_server::crypto::random_token(32);
    let code = par_server::crypto::random_token(32);
    if store.push_request(&reference, &recs.par, ttl).await.is_err() {
        return false;
    }
    let (claimed, session) = tokio::join!(
        store.visit_request(&reference, CLIENT, &owner, Duration::from_secs(600), true),
        store.sso_session(sso_cookie)
    );
    if !matches!(claimed, Ok(Visit::Open { .. })) || !matches!(session, Ok(Some(_))) {
        return false;
    }
    if !matches!(
        store.issue_code(&reference, &owner, &code, &recs.code, ttl).await,
        Ok(Take::Taken)
    ) {
        return false;
    }
    matches!(
        store
            .redeem_code(&code, &recs.check(), Duration::from_secs(600))
            .await,
        Ok(Redemption::Redeemed(_))
    )
}

struct Records {
    par: AuthorizationRequest,
    code: AuthorizationCode,
}

impl Records {
    /// What the token request asserts about the code (no PKCE in these records).
    fn check(&self) -> CodeCheck<'_> {
        CodeCheck {
            client_id: &self.code.client_id,
            redirect_uri: &self.code.redirect_uri,
            code_challenge: None,
            dpop_jkt: None,
        }
    }
}

fn main() {
    let args = Args::parse();
    for n in &args.nodes {
        let host = n.trim_start_matches("redis://").split(':').next().unwrap_or("");
        assert!(
            host == "127.0.0.1" || host == "localhost",
            "redis_login drives only loopback Redis nodes"
        );
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run(args));
}

async fn run(args: Args) {
    let timeout = Duration::from_secs(2);
    let mut options = RedisOptions::standalone(args.nodes[0].clone(), timeout);
    if args.cluster {
        options.topology = Topology::Cluster {
            nodes: args.nodes.clone(),
        };
    }
    let store = Arc::new(Store::redis(&options, "par:").expect("store"));
    let recs = Arc::new(Records {
        par: pushed_request(args.par_bytes),
        code: code_record(args.code_bytes),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (store, recs, stop, counters) = (store.clone(), recs.clone(), stop.clone(), counters.clone());
            let sso_session = session(args.sso_bytes);
            tokio::spawn(async move {
                // Each task is one browser with an SSO session.
                let cookie = par_server::crypto::random_token(32);
                store
                    .start_sso_session(&cookie, &sso_session, Duration::from_secs(3600))
                    .await
                    .expect("SSO session stored");
                while !stop.load(Ordering::Relaxed) {
                    let ok = login(&store, &cookie, &recs).await;
                    let c = if ok { &counters.logins } else { &counters.errors };
                    c.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut before = Vec::new();
    for n in &args.nodes {
        before.push(redis_info::redis_sample(n).await.expect("INFO"));
    }
    let (l0, e0) = (
        counters.logins.load(Ordering::Relaxed),
        counters.errors.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let secs = started.elapsed().as_secs_f64();
    let logins = counters.logins.load(Ordering::Relaxed) - l0;
    let errors = counters.errors.load(Ordering::Relaxed) - e0;
    let mut nodes = Vec::new();
    let mut all_calls = 0u64;
    for (n, b) in args.nodes.iter().zip(&before) {
        let a = redis_info::redis_sample(n).await.expect("INFO");
        let since = a.commands_since(b);
        let calls: u64 = since.values().map(|(c, _)| c).sum();
        let usec: u64 = since.values().map(|(_, u)| u).sum();
        all_calls += calls;
        nodes.push((
            n.clone(),
            calls,
            usec,
            a.cpu_secs - b.cpu_secs,
            a.net_in - b.net_in,
            a.net_out - b.net_out,
        ));
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut per_node = Vec::new();
    for (url, calls, usec, cpu, net_in, net_out) in nodes {
        let share = calls as f64 / all_calls.max(1) as f64;
        let served = (logins as f64 * share).max(1.0);
        let dbsize: u64 = redis::Client::open(url.as_str())
            .ok()
            .and_then(|c| c.get_connection().ok())
            .and_then(|mut c| redis::cmd("DBSIZE").query(&mut c).ok())
            .unwrap_or(0);
        per_node.push(json!({
            "node": url,
            "share_of_commands": share,
            "logins_per_sec": served / secs,
            "redis_cpu_utilisation": cpu / secs,
            "redis_cpu_us_per_login": cpu * 1e6 / served,
            "redis_usec_per_login": usec as f64 / served,
            "net_in_bytes_per_login": net_in as f64 / served,
            "net_out_bytes_per_login": net_out as f64 / served,
            "keys_after": dbsize,
        }));
    }
    let report = json!({
        "label": args.label,
        "cluster": args.cluster,
        "primaries": args.nodes.len(),
        "concurrency": args.concurrency,
        "threads": args.threads,
        "seconds": secs,
        "logins": logins,
        "errors": errors,
        "logins_per_sec": logins as f64 / secs,
        "value_bytes": {"par": args.par_bytes, "code": args.code_bytes, "sso": args.sso_bytes},
        "nodes": per_node,
        "loadavg": std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    });
    println!("{report}");
}
