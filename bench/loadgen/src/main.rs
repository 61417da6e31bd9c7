//! `loadgen`: drives N concurrent virtual clients against a PAR server for a fixed duration
//! or flow count and reports throughput, latency per step, errors by kind and Redis commands
//! per flow (from `INFO commandstats` deltas), as text and JSON.
//!
//! Scenarios:
//! - `push`: `POST /par` only (HTTP Basic), one fresh request each time.
//! - `sso`: each virtual client logs in once with the password, then loops PAR →
//!   authorize with its SSO cookie (a direct `303` with the code) → token.
//! - `password`: PAR → authorize (login form) → login POST (argon2id) → token.
//! - `pending`: PAR → authorize (login form) and stop: a login in flight, as Redis holds it
//!   while the user types (the capacity run counts the memory of many of them).
//! - `refresh`: each virtual client logs in once (asking for `offline_access`, so pass a
//!   `--scope` with it), then loops the `refresh_token` grant, keeping each rotated token.
//!
//! `--dpop` (par-server): each virtual client has its own DPoP key and proves it at PAR and
//! at the token endpoint (RFC 9449), so its codes and tokens are DPoP-bound.
//!
//! With `--redis`, the report has Redis' side of each flow from `INFO` deltas: commands and
//! their execution time (`commandstats` `usec`), the server process' CPU (`used_cpu_*`,
//! which adds the network I/O that `usec` leaves out) and bytes in and out
//! (`total_net_*_bytes`: the traffic between par-server and Redis). With `--step-cpu` (one
//! connection, `--pid`), the server's CPU time is read from `/proc/<pid>/task/*/schedstat`
//! (ns) around every request, so each step gets its own CPU cost.
//!
//! Targets: `par-server`, `oidc-provider` (bench/peer, same client and user) and `bare`
//! (bench/loadgen/src/bin/bare_par.rs, pushes only). Each virtual client owns one
//! keep-alive HTTP/1.1 connection, like wrk.

mod conn;
// The test suite's form parser: one copy for the tests and the load generator.
#[path = "../../../tests/support/html.rs"]
mod html;
mod redis_info;
mod stats;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Parser, ValueEnum};
use hyper::{Method, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Serialize;

use conn::{Conn, ConnError, Jar, Reply};
use html::form_value;
use par_server::oauth::dpop_client::ProofKey;
use redis_info::{RedisSample, redis_sample};
use stats::{Stats, Summary, summarize};

/// RFC 7636 appendix B: a fixed verifier/challenge pair (each flow still has its own code).
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Target {
    ParServer,
    OidcProvider,
    Bare,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    Push,
    Sso,
    Password,
    Pending,
    Refresh,
}

#[derive(Parser, Clone)]
#[command(about = "Load generator for PAR logins (docs/benchmarks.md)")]
struct Args {
    /// Server address, host:port (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    #[arg(long, value_enum, default_value = "par-server")]
    target: Target,
    #[arg(long, value_enum, default_value = "push")]
    scenario: Scenario,
    /// Concurrent virtual clients (one connection each).
    #[arg(long, short = 'c', default_value_t = 64)]
    connections: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many measured flows instead (still bounded by --duration).
    #[arg(long)]
    count: Option<i64>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Total flows per second to offer (paced per virtual client); unset = as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Runtime worker threads of the load generator itself.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value = "bench-app")]
    client_id: String,
    #[arg(long, default_value = "bench-secret-0123456789")]
    client_secret: String,
    #[arg(long, default_value = "http://127.0.0.1:9000/callback")]
    redirect_uri: String,
    #[arg(long, default_value = "openid email profile")]
    scope: String,
    #[arg(long, default_value = "alice")]
    username: String,
    #[arg(long, default_value = "bench-password")]
    password: String,
    /// Redis to read `INFO commandstats` from before and after the measured window.
    #[arg(long)]
    redis: Option<String>,
    /// Processes whose RSS and CPU time are sampled (repeatable).
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// Label of this run in the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Append the JSON report (one object per line) to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Exit non-zero if any request failed (smoke tests).
    #[arg(long)]
    fail_on_error: bool,
    /// Server CPU per step, read around each request (needs `-c 1` and `--pid`).
    #[arg(long)]
    step_cpu: bool,
    /// DPoP-bound logins: a proof at PAR and at the token endpoint (par-server).
    #[arg(long)]
    dpop: bool,
}

struct Paths {
    par: &'static str,
    authorize: &'static str,
    login: &'static str,
    token: &'static str,
}

fn paths(target: Target) -> Paths {
    match target {
        Target::ParServer => Paths {
            par: "/oauth2/par",
            authorize: "/oauth2/authorize",
            login: "/oauth2/login",
            token: "/oauth2/token",
        },
        Target::OidcProvider => Paths {
            par: "/request",
            authorize: "/auth",
            login: "",
            token: "/token",
        },
        Target::Bare => Paths {
            par: "/par",
            authorize: "",
            login: "",
            token: "",
        },
    }
}

/// What a request carries: the client's HTTP Basic credentials (back channel) or the
/// browser's cookies (front channel).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cred {
    Basic,
    Cookies,
}

/// A flow step failed: `step: reason`.
type Fail = String;

struct Vu {
    conn: Conn,
    jar: Jar,
    cfg: Arc<Config>,
    stats: Stats,
    seq: u64,
    id: usize,
    /// `--step-cpu`: server CPU ns and requests per step.
    step_cpu: BTreeMap<&'static str, (u64, u64)>,
    /// `--dpop`: this client's key.
    dpop: Option<ProofKey>,
    /// The `refresh` scenario: the current refresh token.
    refresh_token: Option<String>,
}

struct Config {
    args: Args,
    paths: Paths,
    basic: String,
    push_body_prefix: String,
}

fn fail(step: &str, what: impl std::fmt::Display) -> Fail {
    format!("{step}: {what}")
}

fn conn_fail(step: &str, e: ConnError) -> Fail {
    fail(step, format!("{e:?}").to_lowercase())
}

fn status_fail(step: &str, r: &Reply) -> Fail {
    let body = String::from_utf8_lossy(&r.body);
    let error = body
        .split("\"error\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(|e| format!(" {e}"))
        .unwrap_or_default();
    fail(step, format!("status {}{error}", r.status.as_u16()))
}

fn json_str<'a>(body: &'a [u8], field: &str) -> Option<&'a str> {
    let s = std::str::from_utf8(body).ok()?;
    let pat = format!("\"{field}\":\"");
    let at = s.find(&pat)? + pat.len();
    let end = s[at..].find('"')?;
    Some(&s[at..at + end])
}

fn query_param(location: &str, name: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

/// Origin-form of a Location (absolute or already a path).
fn origin_form(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/".to_owned(), |i| rest[i..].to_owned()),
        None => location.to_owned(),
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

impl Vu {
    async fn timed(
        &mut self,
        rec: bool,
        step: &'static str,
        method: Method,
        path: &str,
        cred: Cred,
        body: Option<String>,
    ) -> Result<Reply, Fail> {
        let jar = match cred {
            Cred::Cookies => self.jar.header(),
            Cred::Basic => String::new(),
        };
        let cfg = self.cfg.clone();
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(3);
        if cred == Cred::Basic {
            headers.push(("authorization", cfg.basic.as_str()));
        }
        // A proof for back-channel requests: htu is the endpoint at this address (the
        // benchmark's issuer).
        let proof = match (&self.dpop, cred) {
            (Some(key), Cred::Basic) => {
                let htu = format!("http://{}{}", cfg.args.addr, path);
                Some(key.proof(method.as_str(), &htu, None, None))
            }
            _ => None,
        };
        if let Some(p) = &proof {
            headers.push(("dpop", p.as_str()));
        }
        if !jar.is_empty() {
            headers.push(("cookie", jar.as_str()));
        }
        let cpu = (rec && cfg.args.step_cpu).then(|| server_cpu_ns(&cfg.args.pids));
        let t = Instant::now();
        let r = self.conn.send(method, path, &headers, body).await;
        if rec {
            self.stats.record(step, t.elapsed().as_micros());
        }
        if let Some(before) = cpu {
            let e = self.step_cpu.entry(step).or_default();
            e.0 += server_cpu_ns(&cfg.args.pids).saturating_sub(before);
            e.1 += 1;
        }
        r.map_err(|e| conn_fail(step, e))
    }

    async fn push(&mut self, rec: bool) -> Result<String, Fail> {
        self.seq += 1;
        let body = format!("{}&state=s{}-{}", self.cfg.push_body_prefix, self.id, self.seq);
        let par = self.cfg.paths.par;
        let r = self
            .timed(rec, "par", Method::POST, par, Cred::Basic, Some(body))
            .await?;
        if r.status != StatusCode::CREATED {
            return Err(status_fail("par", &r));
        }
        json_str(&r.body, "request_uri")
            .map(str::to_owned)
            .ok_or_else(|| fail("par", "no request_uri"))
    }

    fn authorize_path(&self, request_uri: &str) -> String {
        format!(
            "{}?client_id={}&request_uri={}",
            self.cfg.paths.authorize,
            enc(&self.cfg.args.client_id),
            enc(request_uri)
        )
    }

    fn code_from(&self, step: &str, r: &Reply) -> Result<String, Fail> {
        let loc = match (r.status.is_redirection(), &r.location) {
            (true, Some(l)) => l,
            _ => return Err(status_fail(step, r)),
        };
        if !loc.starts_with(&self.cfg.args.redirect_uri) {
            return Err(fail(step, "redirect elsewhere"));
        }
        if let Some(e) = query_param(loc, "error") {
            return Err(fail(step, format!("error {e}")));
        }
        query_param(loc, "code").ok_or_else(|| fail(step, "no code"))
    }

    async fn token(&mut self, rec: bool, code: &str) -> Result<(), Fail> {
        let body = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}",
            enc(code),
            enc(&self.cfg.args.redirect_uri)
        );
        let token = self.cfg.paths.token;
        let r = self
            .timed(rec, "token", Method::POST, token, Cred::Basic, Some(body))
            .await?;
        if r.status != StatusCode::OK {
            return Err(status_fail("token", &r));
        }
        if json_str(&r.body, "access_token").is_none() || json_str(&r.body, "id_token").is_none() {
            return Err(fail("token", "no access_token or id_token"));
        }
        self.check_token_type("token", &r)?;
        if let Some(rt) = json_str(&r.body, "refresh_token") {
            self.refresh_token = Some(rt.to_owned());
        }
        Ok(())
    }

    /// With `--dpop` the tokens must be DPoP-bound.
    fn check_token_type(&self, step: &str, r: &Reply) -> Result<(), Fail> {
        let expected = if self.dpop.is_some() { "DPoP" } else { "Bearer" };
        match json_str(&r.body, "token_type") {
            Some(t) if t == expected => Ok(()),
            other => Err(fail(step, format!("token_type {other:?}, expected {expected}"))),
        }
    }

    /// The `refresh_token` grant with the current refresh token; keeps the rotated one.
    async fn refresh(&mut self, rec: bool) -> Result<(), Fail> {
        let current = self
            .refresh_token
            .take()
            .ok_or_else(|| fail("refresh", "no refresh token (ask for offline_access)"))?;
        let body = format!("grant_type=refresh_token&refresh_token={}", enc(&current));
        let token = self.cfg.paths.token;
        let r = self
            .timed(rec, "refresh", Method::POST, token, Cred::Basic, Some(body))
            .await?;
        if r.status != StatusCode::OK {
            return Err(status_fail("refresh", &r));
        }
        self.check_token_type("refresh", &r)?;
        let next = json_str(&r.body, "refresh_token").ok_or_else(|| fail("refresh", "no refresh_token"))?;
        self.refresh_token = Some(next.to_owned());
        Ok(())
    }

    /// Login form → credentials → code (par-server).
    async fn password_login(&mut self, rec: bool, request_uri: &str) -> Result<String, Fail> {
        let path = self.authorize_path(request_uri);
        let r = self
            .timed(rec, "authorize", Method::GET, &path, Cred::Cookies, None)
            .await?;
        self.jar.store(&r.set_cookies);
        if r.status != StatusCode::OK {
            return Err(status_fail("authorize", &r));
        }
        let html = String::from_utf8_lossy(&r.body);
        let csrf = form_value(&html, "csrf_token").ok_or_else(|| fail("authorize", "no login form"))?;
        let form = format!(
            "client_id={}&request_uri={}&csrf_token={}&username={}&password={}",
            enc(&self.cfg.args.client_id),
            enc(request_uri),
            enc(&csrf),
            enc(&self.cfg.args.username),
            enc(&self.cfg.args.password)
        );
        let login = self.cfg.paths.login;
        let r = self
            .timed(rec, "login", Method::POST, login, Cred::Cookies, Some(form))
            .await?;
        self.jar.store(&r.set_cookies);
        self.code_from("login", &r)
    }

    /// oidc-provider's interactive login (bench/peer/server.js): follow redirects, post the
    /// credentials to `/interaction/:uid/login`, until the client's redirect URI.
    async fn peer_login(&mut self, request_uri: &str) -> Result<String, Fail> {
        let mut path = self.authorize_path(request_uri);
        let mut posted = false;
        for _ in 0..8 {
            let (method, body) = if path.contains("/interaction/") && !posted {
                posted = true;
                path.push_str("/login");
                let form = format!(
                    "username={}&password={}",
                    enc(&self.cfg.args.username),
                    enc(&self.cfg.args.password)
                );
                (Method::POST, Some(form))
            } else {
                (Method::GET, None)
            };
            let r = self
                .timed(false, "login", method, &path, Cred::Cookies, body)
                .await?;
            self.jar.store(&r.set_cookies);
            match &r.location {
                Some(l) if l.starts_with(&self.cfg.args.redirect_uri) => return self.code_from("login", &r),
                Some(l) if r.status.is_redirection() => path = origin_form(l),
                _ => return Err(status_fail("login", &r)),
            }
        }
        Err(fail("login", "too many redirects"))
    }

    /// One password login at start: the SSO cookie the `sso` scenario reuses.
    async fn sign_in(&mut self) -> Result<(), Fail> {
        let uri = self.push(false).await?;
        let code = match self.cfg.args.target {
            Target::OidcProvider => self.peer_login(&uri).await?,
            _ => self.password_login(false, &uri).await?,
        };
        self.token(false, &code).await
    }

    /// A fresh push, then `/authorize` with it in this browser.
    async fn push_and_authorize(&mut self, rec: bool) -> Result<Reply, Fail> {
        let uri = self.push(rec).await?;
        let path = self.authorize_path(&uri);
        self.timed(rec, "authorize", Method::GET, &path, Cred::Cookies, None)
            .await
    }

    async fn flow(&mut self, rec: bool) -> Result<(), Fail> {
        match self.cfg.args.scenario {
            Scenario::Push => self.push(rec).await.map(|_| ()),
            Scenario::Sso => {
                let r = self.push_and_authorize(rec).await?;
                let code = self.code_from("authorize", &r)?;
                self.token(rec, &code).await
            }
            Scenario::Pending => {
                let r = self.push_and_authorize(rec).await?;
                self.jar.store(&r.set_cookies);
                if r.status != StatusCode::OK {
                    return Err(status_fail("authorize", &r));
                }
                Ok(())
            }
            Scenario::Refresh => self.refresh(rec).await,
            Scenario::Password => {
                let uri = self.push(rec).await?;
                let code = self.password_login(rec, &uri).await?;
                // A fresh password login each time: forget the SSO cookie, keep the browser.
                self.jar.retain(|name| !name.contains("sso"));
                self.token(rec, &code).await
            }
        }
    }
}

struct Control {
    recording: AtomicBool,
    stop: AtomicBool,
    remaining: AtomicI64,
    ready: tokio::sync::Barrier,
}

type StepCpu = BTreeMap<&'static str, (u64, u64)>;

async fn run_vu(id: usize, cfg: Arc<Config>, ctl: Arc<Control>) -> (Stats, Option<Fail>, StepCpu) {
    let mut vu = Vu {
        conn: Conn::new(cfg.args.addr),
        jar: Jar::default(),
        cfg: cfg.clone(),
        stats: Stats::default(),
        seq: 0,
        id,
        step_cpu: BTreeMap::new(),
        dpop: cfg.args.dpop.then(|| ProofKey::generate().expect("a DPoP key")),
        refresh_token: None,
    };
    let mut setup_error = None;
    if matches!(cfg.args.scenario, Scenario::Sso | Scenario::Refresh) {
        let mut result = Err(String::new());
        for _ in 0..3 {
            result = vu.sign_in().await;
            if result.is_ok() {
                break;
            }
        }
        if let Err(e) = result {
            setup_error = Some(format!("setup {e}"));
        }
    }
    ctl.ready.wait().await;
    if setup_error.is_some() {
        return (vu.stats, setup_error, vu.step_cpu);
    }
    // Open-loop pacing for --rate: each client has its own schedule, offset by its id.
    let interval = cfg
        .args
        .rate
        .map(|r| Duration::from_secs_f64(cfg.args.connections as f64 / r));
    let mut next = tokio::time::Instant::now()
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(id as f64 / cfg.args.connections as f64)
        });
    while !ctl.stop.load(Ordering::Relaxed) {
        if let Some(i) = interval {
            tokio::time::sleep_until(next).await;
            next += i;
        }
        let rec = ctl.recording.load(Ordering::Relaxed);
        if rec && cfg.args.count.is_some() && ctl.remaining.fetch_sub(1, Ordering::Relaxed) <= 0 {
            break;
        }
        let t = Instant::now();
        let outcome = vu.flow(rec).await;
        if rec {
            match outcome {
                Ok(()) => {
                    vu.stats.flows += 1;
                    vu.stats.record("flow", t.elapsed().as_micros());
                }
                Err(e) => vu.stats.error(e),
            }
        }
    }
    (vu.stats, None, vu.step_cpu)
}

/// CPU time (ns) of every thread of `pids` so far (`/proc/<pid>/task/*/schedstat`).
fn server_cpu_ns(pids: &[u32]) -> u64 {
    let mut ns = 0;
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    ns
}

/// (RSS KiB, CPU ticks) summed over `pids`.
fn proc_sample(pids: &[u32]) -> (u64, u64) {
    let mut rss = 0;
    let mut ticks = 0;
    for pid in pids {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            rss += s
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields after the ")" of the command name: utime is the 12th, stime the 13th.
            let after = s.rsplit_once(')').map_or("", |x| x.1);
            let f: Vec<&str> = after.split_whitespace().collect();
            let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += t(11) + t(12);
        }
    }
    (rss, ticks)
}

#[derive(Serialize)]
struct Report {
    label: String,
    target: Target,
    scenario: Scenario,
    connections: usize,
    threads: usize,
    seconds: f64,
    flows: u64,
    flows_per_sec: f64,
    flow: Option<Summary>,
    steps: BTreeMap<String, Summary>,
    errors: BTreeMap<String, u64>,
    error_count: u64,
    /// Redis commands per completed flow, by command (INFO commandstats delta).
    redis_commands_per_flow: BTreeMap<String, f64>,
    redis_commands_per_flow_total: Option<f64>,
    /// Redis execution time per completed flow, by command, µs (commandstats `usec` delta).
    redis_usec_per_flow: BTreeMap<String, f64>,
    redis_usec_per_flow_total: Option<f64>,
    /// Redis process CPU per completed flow, µs (`used_cpu_sys` + `used_cpu_user` delta).
    redis_cpu_us_per_flow: Option<f64>,
    /// Bytes Redis received / sent per completed flow (`total_net_*_bytes` delta).
    redis_net_in_bytes_per_flow: Option<f64>,
    redis_net_out_bytes_per_flow: Option<f64>,
    /// `--step-cpu`: server CPU per request of each step, µs.
    server_cpu_us_per_step: BTreeMap<String, f64>,
    /// `/proc/loadavg` (1, 5, 15 min) when the measurement ended.
    loadavg: String,
    rss_kib_before: Option<u64>,
    rss_kib_max: Option<u64>,
    /// Server CPU time per flow, in µs (all watched processes).
    server_cpu_us_per_flow: Option<f64>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        eprintln!("loadgen sends load only to loopback addresses");
        return std::process::ExitCode::FAILURE;
    }
    if args.step_cpu && (args.connections != 1 || args.pids.is_empty()) {
        eprintln!("--step-cpu needs -c 1 and --pid (one request at a time is attributed to its step)");
        return std::process::ExitCode::FAILURE;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(args))
}

async fn run(args: Args) -> std::process::ExitCode {
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(&args.client_id), enc(&args.client_secret)))
    );
    let push_body_prefix = format!(
        "response_type=code&client_id={}&redirect_uri={}&scope={}&nonce=n-0S6_WzA2Mj&code_challenge={CHALLENGE}&code_challenge_method=S256",
        enc(&args.client_id),
        enc(&args.redirect_uri),
        enc(&args.scope)
    );
    let cfg = Arc::new(Config {
        paths: paths(args.target),
        basic,
        push_body_prefix,
        args: args.clone(),
    });
    let ctl = Arc::new(Control {
        recording: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        remaining: AtomicI64::new(args.count.unwrap_or(i64::MAX)),
        ready: tokio::sync::Barrier::new(args.connections + 1),
    });
    let mut handles = Vec::with_capacity(args.connections);
    for id in 0..args.connections {
        handles.push(tokio::spawn(run_vu(id, cfg.clone(), ctl.clone())));
    }
    // Everyone signed in (sso): start the clock.
    ctl.ready.wait().await;
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let rss_before = (!args.pids.is_empty()).then(|| proc_sample(&args.pids).0);
    let redis_before = match &args.redis {
        Some(u) => redis_sample(u).await,
        None => None,
    };
    let (_, cpu_before) = proc_sample(&args.pids);
    let started = Instant::now();
    ctl.recording.store(true, Ordering::SeqCst);
    let deadline = started + Duration::from_secs_f64(args.duration);
    let mut rss_max = rss_before.unwrap_or(0);
    let all_done = || handles.iter().all(|h| h.is_finished());
    while Instant::now() < deadline && !all_done() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rss_max = rss_max.max(proc_sample(&args.pids).0);
    }
    ctl.stop.store(true, Ordering::SeqCst);
    let mut total = Stats::default();
    let mut setup_errors = BTreeMap::<String, u64>::new();
    let mut step_cpu = StepCpu::new();
    for h in handles {
        let Ok((s, setup, cpu)) = h.await else { continue };
        total.merge(s);
        for (k, (ns, n)) in cpu {
            let e = step_cpu.entry(k).or_default();
            e.0 += ns;
            e.1 += n;
        }
        if let Some(e) = setup {
            *setup_errors.entry(e).or_default() += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (_, cpu_after) = proc_sample(&args.pids);
    let redis_after = match &args.redis {
        Some(u) => redis_sample(u).await,
        None => None,
    };
    for (k, n) in setup_errors {
        *total.errors.entry(k).or_default() += n;
    }

    let flows = total.flows.max(1) as f64;
    let mut per_cmd = BTreeMap::new();
    let mut usec_per_cmd = BTreeMap::new();
    if let (Some(b), Some(a)) = (&redis_before, &redis_after) {
        for (cmd, (calls, usec)) in a.commands_since(b) {
            per_cmd.insert(cmd.clone(), calls as f64 / flows);
            usec_per_cmd.insert(cmd, usec as f64 / flows);
        }
    }
    let redis_delta = |f: fn(&RedisSample) -> f64| match (&redis_before, &redis_after) {
        (Some(b), Some(a)) => Some((f(a) - f(b)) / flows),
        _ => None,
    };
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let report = Report {
        label: args.label.clone(),
        target: args.target,
        scenario: args.scenario,
        connections: args.connections,
        threads: args.threads,
        seconds: secs,
        flows: total.flows,
        flows_per_sec: total.flows as f64 / secs,
        flow: total.steps.get_mut("flow").map(|v| summarize(v, secs)),
        steps: total
            .steps
            .iter_mut()
            .filter(|(k, _)| **k != "flow")
            .map(|(k, v)| (k.to_string(), summarize(v, secs)))
            .collect(),
        error_count: total.errors.values().sum(),
        errors: total.errors.clone(),
        redis_commands_per_flow_total: redis_after.as_ref().map(|_| per_cmd.values().sum()),
        redis_commands_per_flow: per_cmd,
        redis_usec_per_flow_total: redis_after.as_ref().map(|_| usec_per_cmd.values().sum()),
        redis_usec_per_flow: usec_per_cmd,
        redis_cpu_us_per_flow: redis_delta(|s| s.cpu_secs * 1e6),
        redis_net_in_bytes_per_flow: redis_delta(|s| s.net_in as f64),
        redis_net_out_bytes_per_flow: redis_delta(|s| s.net_out as f64),
        server_cpu_us_per_step: step_cpu
            .iter()
            .map(|(k, (ns, n))| (k.to_string(), *ns as f64 / 1000.0 / (*n).max(1) as f64))
            .collect(),
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        rss_kib_before: rss_before,
        rss_kib_max: rss_before.map(|_| rss_max),
        server_cpu_us_per_flow: (!args.pids.is_empty())
            .then(|| (cpu_after - cpu_before) as f64 / ticks_per_sec * 1e6 / flows),
    };
    print_text(&report);
    if let Some(path) = &args.json {
        use std::io::Write;
        let line = serde_json::to_string(&report).expect("report serialises");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            eprintln!("cannot write {}: {e}", path.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    if args.fail_on_error && (report.error_count > 0 || report.flows == 0) {
        eprintln!("FAILED: {} errors, {} flows", report.error_count, report.flows);
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

fn print_text(r: &Report) {
    println!(
        "{} {:?}/{:?} c={} {:.1}s: {} flows, {:.0} flows/s, {} errors",
        r.label, r.target, r.scenario, r.connections, r.seconds, r.flows, r.flows_per_sec, r.error_count
    );
    println!(
        "  {:<10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "step", "count", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let rows = r
        .steps
        .iter()
        .map(|(k, s)| (k.as_str(), s))
        .chain(r.flow.iter().map(|s| ("flow", s)));
    for (k, s) in rows {
        println!(
            "  {:<10} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            k, s.count, s.per_sec, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
        );
    }
    for (k, n) in &r.errors {
        println!("  error {k}: {n}");
    }
    if let Some(t) = r.redis_commands_per_flow_total {
        let list: Vec<String> = r
            .redis_commands_per_flow
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        println!("  redis commands/flow: {t:.2} ({})", list.join(", "));
    }
    if let (Some(b), Some(m)) = (r.rss_kib_before, r.rss_kib_max) {
        println!(
            "  server RSS: {:.1} MiB before, {:.1} MiB max",
            b as f64 / 1024.0,
            m as f64 / 1024.0
        );
    }
    if let Some(c) = r.server_cpu_us_per_flow {
        println!("  server CPU: {c:.0} µs/flow");
    }
    if !r.server_cpu_us_per_step.is_empty() {
        let list: Vec<String> = r
            .server_cpu_us_per_step
            .iter()
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect();
        println!("  server CPU per step (µs): {}", list.join(", "));
    }
    if let (Some(u), Some(c), Some(i), Some(o)) = (
        r.redis_usec_per_flow_total,
        r.redis_cpu_us_per_flow,
        r.redis_net_in_bytes_per_flow,
        r.redis_net_out_bytes_per_flow,
    ) {
        println!(
            "  redis: {u:.1} µs executing + {c:.1} µs process CPU per flow; {i:.0} B in, {o:.0} B out per flow"
        );
    }
}
