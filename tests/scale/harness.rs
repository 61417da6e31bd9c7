//! The scale suite's harness: real `par-server` processes (the binary Cargo built, each with
//! its own config file in a temp dir), a real HAProxy in front, a browser-like client for
//! the PAR login, and a bounded load generator that classifies every outcome.
//!
//! Everything listens on 127.0.0.1 ports the OS hands out; every process is killed when its
//! guard drops; every load loop stops by itself after a count and a time bound.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config_file::{ClientEntry, ConfigFile};
pub use crate::config_file::{PASSWORD, REDIRECT, RedisTarget};
use crate::html::form_value;
use crate::topology::{free_port, poll};

pub const CLIENT: &str = "app";
pub const SECRET: &str = "scale-secret-0123456789";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const KEY_PREFIX: &str = "scale:";

/// One scenario at a time: they share two cores, and health-check timing is part of what
/// they exercise.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Prints a scenario's figures and appends them to `<target>/tmp/scale-report.txt`.
pub fn report(scenario: &str, lines: &[String]) {
    let text = format!("== {scenario}\n{}\n", lines.join("\n"));
    println!("{text}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scale-report.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        use std::io::Write;
        let _ = f.write_all(text.as_bytes());
    }
}

/// A `par-server` process, killed on drop.
pub struct Replica {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
    /// How it was started, for [`Replica::restart`]: its config, in `dir` under `name`.
    #[allow(dead_code)] // the chaos run restarts replicas; the scale suite does not
    config: ConfigFile,
    #[allow(dead_code)]
    dir: PathBuf,
    #[allow(dead_code)]
    name: String,
}

impl Replica {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process again with the same config and port (after `kill9` or an exit),
    /// appending to the same log. Does not wait for readiness.
    #[allow(dead_code)] // used by the chaos run (tests/chaos)
    pub fn restart(&mut self) {
        self.kill9();
        self.child = Some(self.config.spawn(&self.dir, &self.name).0);
    }

    /// SIGKILL: a crash, with requests in flight.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.pid().expect("running").to_string();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {pid}");
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Resident memory (KiB) and thread count from /proc.
    pub fn usage(&self) -> (u64, u64) {
        let status = self
            .pid()
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("Threads:"))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The haproxy binary: Debian puts it in /usr/sbin, which a non-root PATH may lack.
fn haproxy_bin() -> &'static str {
    if Path::new("/usr/sbin/haproxy").exists() {
        "/usr/sbin/haproxy"
    } else {
        "haproxy"
    }
}

/// HAProxy with the repository's `deploy/haproxy/haproxy.cfg` (the one the compose stack
/// uses), its backends and ports given by environment; killed on drop.
pub struct Lb {
    child: Child,
    pub port: u16,
    stats_port: u16,
}

/// The config has three backend slots; with fewer replicas the last slots repeat the first.
const LB_SLOTS: usize = 3;

impl Lb {
    /// HAProxy on `port` (the issuer's address) in front of `replica_ports`.
    pub fn start(_dir: &Path, port: u16, replica_ports: &[u16]) -> Self {
        assert!(
            (1..=LB_SLOTS).contains(&replica_ports.len()),
            "deploy/haproxy/haproxy.cfg has {LB_SLOTS} slots"
        );
        let stats_port = free_port();
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy/haproxy.cfg");
        let mut env: Vec<(String, String)> = vec![
            ("PAR_LB_BIND".into(), format!("127.0.0.1:{port}")),
            ("PAR_LB_STATS_BIND".into(), format!("127.0.0.1:{stats_port}")),
            // Fast checks so scenarios see a drained or dead replica within a second.
            ("PAR_LB_CHECK_INTER".into(), "300ms".into()),
        ];
        for slot in 0..LB_SLOTS {
            let p = replica_ports.get(slot).unwrap_or(&replica_ports[0]);
            env.push((format!("PAR_BACKEND_{}", slot + 1), format!("127.0.0.1:{p}")));
        }
        let check = Command::new(haproxy_bin())
            .arg("-c")
            .arg("-f")
            .arg(&config)
            .envs(env.clone())
            .output();
        let check = check.expect("haproxy must be installed (scripts/test.sh installs it)");
        assert!(
            check.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(haproxy_bin())
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            port,
            stats_port,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `(server name, status)` of the backend's servers from the CSV stats page.
    pub fn servers(&self) -> Vec<(String, String)> {
        let Some((_, body)) = http_get(self.stats_port, "/stats;csv") else {
            return Vec::new();
        };
        body.lines()
            .filter(|l| l.starts_with("par-server,"))
            .filter_map(|l| {
                let cols: Vec<&str> = l.split(',').collect();
                let name = cols.get(1)?;
                let status = cols.get(17)?;
                (*name != "BACKEND").then(|| (name.to_string(), status.to_string()))
            })
            .collect()
    }

    /// Status of checked server `name` ("UP", "DOWN", "UP 1/2", …).
    pub fn status_of(&self, name: &str) -> String {
        self.servers()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
            .unwrap_or_default()
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replicas behind HAProxy, all on the same Redis.
pub struct Stack {
    pub replicas: Vec<Replica>,
    pub lb: Lb,
    /// Config files and replica logs; removed with the stack.
    _dir: tempfile::TempDir,
}

/// What the replicas of a stack vary beyond their Redis.
#[derive(Clone, Copy)]
pub struct ReplicaOptions {
    pub drain_delay_secs: u64,
    pub shutdown_grace_secs: u64,
    /// `redis.wait_replicas` (docs/redis.md); 0 = off.
    pub wait_replicas: u32,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        Self {
            drain_delay_secs: 2,
            shutdown_grace_secs: 10,
            wait_replicas: 0,
        }
    }
}

impl Stack {
    /// `n` replicas on `redis` (a `&RedisNode`, `&RedisCluster` or `&SentinelGroup`, or a
    /// [`RedisTarget`]) behind one HAProxy; returns once every replica is ready and HAProxy
    /// sees them UP.
    pub fn start(n: usize, redis: impl Into<RedisTarget>, options: ReplicaOptions) -> Self {
        Self::start_with(n, redis, options, |_| {})
    }

    /// As [`Stack::start`], with each replica's configuration changed by `customise` (the
    /// same change for all: replicas share their configuration).
    pub fn start_with(
        n: usize,
        redis: impl Into<RedisTarget>,
        options: ReplicaOptions,
        customise: impl Fn(&mut ConfigFile),
    ) -> Self {
        let redis = redis.into();
        let dir = tempfile::tempdir().unwrap();
        let lb_port = free_port();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let replicas: Vec<Replica> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let mut config = ConfigFile {
                    // The issuer is the load balancer's address: one issuer for all replicas.
                    issuer: Some(format!("http://127.0.0.1:{lb_port}")),
                    key_prefix: Some(KEY_PREFIX.into()),
                    redis_timeout_ms: Some(500),
                    drain_delay_secs: Some(options.drain_delay_secs),
                    shutdown_grace_secs: Some(options.shutdown_grace_secs),
                    wait_replicas: Some(options.wait_replicas),
                    log_level: Some("warn".into()),
                    clients: vec![ClientEntry::new(CLIENT, SECRET)],
                    ..ConfigFile::new(*port, redis.clone())
                };
                // All the load comes from one address (127.0.0.1), far above what one
                // address sends in production: the per-address limits are off here (the
                // abuse suite, tests/abuse, tests them).
                config.extra = serde_json::json!({ "limits": {
                    "par_per_address": { "requests": 0, "per_secs": 60 },
                    "authorize_per_address": { "requests": 0, "per_secs": 60 },
                    "login_per_address": { "requests": 0, "per_secs": 60 },
                    "token_per_address": { "requests": 0, "per_secs": 60 },
                } });
                customise(&mut config);
                let name = format!("replica-{i}");
                let (child, log) = config.spawn(dir.path(), &name);
                Replica {
                    child: Some(child),
                    port: *port,
                    log,
                    config,
                    dir: dir.path().to_path_buf(),
                    name,
                }
            })
            .collect();
        // HAProxy must bind the port the issuer names.
        let lb = Lb::start(dir.path(), lb_port, &ports);
        let stack = Self {
            replicas,
            lb,
            _dir: dir,
        };
        for r in &stack.replicas {
            assert!(
                poll(Duration::from_secs(30), || http_get(r.port, "/readyz")
                    .is_some_and(|(s, _)| s == 200)),
                "replica {} never became ready:\n{}",
                r.port,
                r.log_tail()
            );
        }
        assert!(
            poll(Duration::from_secs(20), || {
                let s = stack.lb.servers();
                let checked: Vec<_> = s.iter().filter(|(name, _)| !name.ends_with("-backup")).collect();
                checked.len() == LB_SLOTS && checked.iter().all(|(_, st)| st == "UP")
            }),
            "haproxy never saw every replica UP: {:?}",
            stack.lb.servers()
        );
        stack
    }
}

/// A `par-server` process on `config`, its stderr appended to `log`.
/// A plain HTTP/1.0 GET to 127.0.0.1:`port` (blocking, 2 s bound): status and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

// ---------------------------------------------------------------------------------------
// The browser side of a PAR login.

/// What one step (or one whole login) ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The login reached the client's redirect URI with this code.
    Code(String),
    /// The service's own `503 temporarily_unavailable` (JSON or page).
    Unavailable,
    /// `invalid_request_uri`: unknown, expired, used, or bound to another browser.
    InvalidRequestUri,
    /// `500`: must never happen in these scenarios.
    ServerError,
    /// An error the load balancer made itself (502/503/504 without the service's body).
    Lb(u16),
    /// The connection failed or no answer came within the client timeout.
    Transport(String),
    Other(String),
}

impl Outcome {
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Code(_) => "ok",
            Outcome::Unavailable => "503 temporarily_unavailable",
            Outcome::InvalidRequestUri => "invalid_request_uri",
            Outcome::ServerError => "500",
            Outcome::Lb(_) => "load balancer 5xx",
            Outcome::Transport(_) => "transport error",
            Outcome::Other(_) => "other",
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Code(_))
    }

    /// A failure a client can handle: retry later (503) or start again (invalid_request_uri).
    pub fn is_clean_failure(&self) -> bool {
        matches!(self, Outcome::Unavailable | Outcome::InvalidRequestUri)
    }
}

async fn classify(res: reqwest::Response) -> Outcome {
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    let has =
        |code: &str| body.contains(&format!("\"{code}\"")) || body.contains(&format!("<code>{code}</code>"));
    match status {
        503 if has("temporarily_unavailable") => Outcome::Unavailable,
        400 if has("invalid_request_uri") => Outcome::InvalidRequestUri,
        500 => Outcome::ServerError,
        502..=504 => Outcome::Lb(status),
        _ => Outcome::Other(format!("{status}: {}", &body[..body.len().min(160)])),
    }
}

fn transport(e: reqwest::Error) -> Outcome {
    Outcome::Transport(e.to_string())
}

/// A fresh browser: its own cookie jar, no redirects followed.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(2)
        .build()
        .unwrap()
}

fn push_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("client_id", CLIENT),
        ("response_type", "code"),
        ("scope", "openid email profile"),
        ("redirect_uri", REDIRECT),
        ("state", "s-1"),
        ("nonce", "n-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

/// `POST /oauth2/par` → the request_uri.
pub async fn push(http: &reqwest::Client, base: &str) -> Result<String, Outcome> {
    let res = http
        .post(format!("{base}/oauth2/par"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&push_form())
        .send()
        .await
        .map_err(transport)?;
    if res.status() == 201 {
        let v: serde_json::Value = res.json().await.map_err(transport)?;
        return Ok(v["request_uri"].as_str().unwrap_or_default().to_owned());
    }
    Err(classify(res).await)
}

/// `GET /oauth2/authorize` → the login page.
pub async fn authorize(http: &reqwest::Client, base: &str, request_uri: &str) -> Result<String, Outcome> {
    let res = http
        .get(format!("{base}/oauth2/authorize"))
        .query(&[("client_id", CLIENT), ("request_uri", request_uri)])
        .send()
        .await
        .map_err(transport)?;
    if res.status() == 200 {
        return res.text().await.map_err(transport);
    }
    Err(classify(res).await)
}

/// Submits the login form of `page` → the code from the redirect.
pub async fn login(http: &reqwest::Client, base: &str, page: &str) -> Outcome {
    let mut form: Vec<(&str, String)> = ["client_id", "request_uri", "csrf_token"]
        .iter()
        .map(|n| (*n, form_value(page, n).unwrap_or_default()))
        .collect();
    form.push(("username", "alice".into()));
    form.push(("password", PASSWORD.into()));
    let res = match http.post(format!("{base}/oauth2/login")).form(&form).send().await {
        Ok(r) => r,
        Err(e) => return transport(e),
    };
    if res.status().is_redirection() {
        let code = res
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url::Url::parse(l).ok())
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            });
        return match code {
            Some(c) => Outcome::Code(c),
            None => Outcome::Other("redirect without a code".into()),
        };
    }
    classify(res).await
}

/// The token step: `POST /oauth2/token` (authorization_code + PKCE, client_secret_basic).
/// `Ok` on 200 JSON with an access token; the second redemption of a code must fail.
pub async fn exchange_code(base: &str, code: &str) -> Result<(), Outcome> {
    let res = browser()
        .post(format!("{base}/oauth2/token"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .map_err(transport)?;
    if res.status() == 200 {
        let v: serde_json::Value = res.json().await.map_err(transport)?;
        return if v["access_token"].is_string() {
            Ok(())
        } else {
            Err(Outcome::Other(format!(
                "token response without access_token: {v}"
            )))
        };
    }
    Err(classify(res).await)
}

/// push → authorize → login, each step at its own base URL (the LB, or chosen replicas).
/// With `replay`, the same login form is posted again afterwards: a second code would be a
/// double redemption (returned in the second slot).
pub async fn login_flow(bases: [&str; 3], replay: bool) -> (Outcome, bool) {
    let http = browser();
    let uri = match push(&http, bases[0]).await {
        Ok(u) => u,
        Err(o) => return (o, false),
    };
    let page = match authorize(&http, bases[1], &uri).await {
        Ok(p) => p,
        Err(o) => return (o, false),
    };
    let outcome = login(&http, bases[2], &page).await;
    let mut double = false;
    if replay && outcome.is_ok() {
        double = login(&http, bases[2], &page).await.is_ok();
    }
    (outcome, double)
}

// ---------------------------------------------------------------------------------------
// Bounded load.

/// One finished login attempt.
#[derive(Debug, Clone)]
pub struct Record {
    pub start: Instant,
    pub end: Instant,
    pub outcome: Outcome,
    pub double: bool,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<Record>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    pub in_flight: Arc<AtomicUsize>,
}

impl Load {
    /// `concurrency` browsers logging in through `base` in a loop, until `stop()`, `max`
    /// attempts in all, or `max_time`, whichever comes first.
    pub fn start(base: &str, concurrency: usize, max: usize, max_time: Duration, replay: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(Mutex::new(Vec::new()));
        let started = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + max_time;
        let workers = (0..concurrency)
            .map(|_| {
                let (stop, records, started, in_flight) =
                    (stop.clone(), records.clone(), started.clone(), in_flight.clone());
                let base = base.to_owned();
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed)
                        && Instant::now() < deadline
                        && started.fetch_add(1, Ordering::Relaxed) < max
                    {
                        in_flight.fetch_add(1, Ordering::Relaxed);
                        let start = Instant::now();
                        let (outcome, double) = login_flow([&base, &base, &base], replay).await;
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        records.lock().unwrap().push(Record {
                            start,
                            end: Instant::now(),
                            outcome,
                            double,
                        });
                        // A little pacing keeps two cores responsive for the processes under test.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            records,
            workers,
            in_flight,
        }
    }

    /// Successful logins that started after `t`.
    pub fn successes_since(&self, t: Instant) -> usize {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.start >= t && r.outcome.is_ok())
            .count()
    }

    /// Waits (bounded) until `n` logins started after `t` have succeeded.
    pub async fn wait_successes_since(&self, t: Instant, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.successes_since(t) >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub async fn finish(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            let _ = w.await;
        }
        let mut records = std::mem::take(&mut *self.records.lock().unwrap());
        records.sort_by_key(|r| r.start);
        records
    }
}

/// Outcomes counted by kind.
pub fn tally<'a>(records: impl IntoIterator<Item = &'a Record>) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r.outcome.kind()).or_insert(0) += 1;
    }
    m
}

/// A few examples of unexpected outcomes, for assertion messages.
pub fn examples<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    keep: impl Fn(&Outcome) -> bool,
) -> Vec<String> {
    records
        .into_iter()
        .filter(|r| keep(&r.outcome))
        .take(5)
        .map(|r| format!("{:?}", r.outcome))
        .collect()
}
