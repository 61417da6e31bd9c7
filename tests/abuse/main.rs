//! Abuse resistance, end to end (docs/operations.md, "Limits"): real `redis-server`, real
//! `par-server` processes and HAProxy (the scale suite's [`harness::Stack`]), attacked the
//! way the findings of the abuse review did — login floods, password guessing, pushes from
//! one source, stalled bodies, a full Redis.
//!
//! Assertions are on behaviour (status codes, `Retry-After`, which requests still succeed)
//! and on bounds (resident memory under the Kubernetes limit), never on speed. Scenarios run
//! one at a time: they share two cores.

#[path = "../support/config_file.rs"]
mod config_file;
#[allow(dead_code)] // the scale suite's harness; this target uses its stack and browser steps
#[path = "../scale/harness.rs"]
mod harness;
#[path = "../support/html.rs"]
mod html;
#[path = "../support/topology.rs"]
mod topology;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use config_file::{ClientEntry, ConfigFile};
use harness::{ReplicaOptions, Stack, authorize, browser, push, serial};
use html::form_value;
use serde_json::json;
use topology::RedisNode;

/// The Kubernetes memory limit of a replica (k8s/base/deployment.yaml).
const K8S_LIMIT_KIB: u64 = 256 * 1024;

/// A second confidential client: the "other clients" whose work must go on.
const OTHER: &str = "other-app";
const OTHER_SECRET: &str = "other-secret-0123456789";

/// argon2id with the production parameters (m = 19 MiB, t = 2): the cost an attacker
/// makes the server pay per guess.
fn real_password_hash() -> String {
    par_server::password::hash(config_file::PASSWORD).unwrap()
}

fn with_other_client(config: &mut ConfigFile) {
    config.clients.push(ClientEntry::new(OTHER, OTHER_SECRET));
}

/// The login form's fields of `page` (the browser's claimed interaction) with `password`.
fn login_form(page: &str, username: &str, password: &str) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = ["client_id", "request_uri", "csrf_token"]
        .iter()
        .map(|n| (n.to_string(), form_value(page, n).unwrap_or_default()))
        .collect();
    form.push(("username".into(), username.into()));
    form.push(("password".into(), password.into()));
    form
}

/// `POST /oauth2/par` as [`OTHER`]: the status.
async fn other_push(base: &str) -> u16 {
    push_as(base, OTHER, OTHER_SECRET, None).await.0
}

/// Finding 4: 5,000 fire-and-forget login POSTs queued argon2 checks without bound (a real
/// login waited 34 s, RSS reached ≈400 MB). Now: beyond `limits.password_queue` a login gets
/// 503 + Retry-After at once, memory stays under the k8s limit, and another client's pushes
/// go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_gets_fast_503s_within_the_memory_limit() {
    let _one_at_a_time = serial().await;
    let redis = RedisNode::start(&[]);
    let hash = real_password_hash();
    let stack = Stack::start_with(1, &redis, ReplicaOptions::default(), |c| {
        with_other_client(c);
        c.password_hash = Some(hash.clone());
        // Only the queue is under test: the rate limits and the back-off are off.
        c.extra = json!({ "limits": {
            "password_queue": 4,
            "login_per_address": { "requests": 0, "per_secs": 60 },
            "password_per_user": { "free": 0, "base_ms": 1000, "max_secs": 60, "forget_secs": 60 },
            "password_per_user_address": { "free": 0, "base_ms": 1000, "max_secs": 60, "forget_secs": 60 },
        } });
    });
    let replica = &stack.replicas[0];
    let base = replica.url();

    // The attacker's browser: one claimed interaction, its login form posted over and over.
    let attacker = browser();
    let uri = push(&attacker, &base).await.expect("push");
    let page = authorize(&attacker, &base, &uri).await.expect("login page");
    let form = Arc::new(login_form(&page, "alice", "wrong password"));

    // Memory, sampled while the flood runs.
    let peak = Arc::new(AtomicU64::new(0));
    let pid = replica.pid().unwrap();
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let rss = rss_kib(pid);
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    const FLOOD: usize = 3000;
    const CONCURRENCY: usize = 300;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flood: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let (attacker, form, base, next) = (attacker.clone(), form.clone(), base.clone(), next.clone());
            tokio::spawn(async move {
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                while next.fetch_add(1, Ordering::Relaxed) < FLOOD {
                    let mut post = attacker.post(format!("{base}/oauth2/login")).form(&*form);
                    // A third of the flood does not wait for the answer (fire and forget).
                    if i % 3 == 0 {
                        post = post.timeout(Duration::from_millis(20));
                    }
                    let kind = match post.send().await {
                        Ok(res) => {
                            let status = res.status().as_u16();
                            let retry = res.headers().contains_key("retry-after");
                            let body = res.text().await.unwrap_or_default();
                            match status {
                                503 if retry && body.contains("temporarily_unavailable") => "503 retry-after",
                                200 if body.contains("Incorrect username or password") => {
                                    "200 wrong password"
                                }
                                s => return Err(format!("{s}: {}", &body[..body.len().min(200)])),
                            }
                        }
                        Err(e) if e.is_timeout() => "client gave up",
                        Err(e) => return Err(format!("transport: {e}")),
                    };
                    *seen.entry(kind.to_owned()).or_default() += 1;
                }
                Ok(seen)
            })
        })
        .collect();

    // Meanwhile another client pushes through the load balancer.
    let mut pushes: BTreeMap<u16, usize> = BTreeMap::new();
    while next.load(Ordering::Relaxed) < FLOOD {
        *pushes.entry(other_push(&stack.lb.url()).await).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for task in flood {
        let seen = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("unexpected answer to the flood: {e}"));
        for (k, n) in seen {
            *tally.entry(k).or_default() += n;
        }
    }
    sampler.abort();
    let peak = peak.load(Ordering::Relaxed);
    // After the flood a real login still works: at once, or after the queue drained (the
    // flood's last checks may still hold it; a user retries a 503 after Retry-After).
    let mut outcome = harness::Outcome::Unavailable;
    for _ in 0..10 {
        outcome = harness::login_flow([&base, &base, &base], false).await.0;
        if outcome != harness::Outcome::Unavailable {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let metrics = harness::http_get(replica.port, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let checks: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("par_password_checks_total"))
        .collect();
    harness::report(
        "login flood",
        &[
            format!("{FLOOD} login POSTs, {CONCURRENCY} at once (a third fire-and-forget): {tally:?}"),
            format!("other client's pushes meanwhile: {pushes:?}"),
            format!(
                "peak RSS {} MiB (limit {} MiB)",
                peak / 1024,
                K8S_LIMIT_KIB / 1024
            ),
            format!("metrics: {checks:?}"),
        ],
    );
    assert!(
        tally.get("503 retry-after").copied().unwrap_or(0) > 0,
        "the flood was never refused: {tally:?}"
    );
    assert!(peak < K8S_LIMIT_KIB, "peak RSS {peak} KiB");
    assert!(
        !pushes.is_empty() && pushes.keys().all(|s| *s == 201),
        "other client's pushes: {pushes:?}"
    );
    assert!(outcome.is_ok(), "a login after the flood: {outcome:?}");
    assert!(
        checks.iter().any(|l| l.contains("outcome=\"refused\"")),
        "refusals are counted: {checks:?}"
    );
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A login form posted to `base`: status, `Retry-After`, body.
async fn post_login(
    http: &reqwest::Client,
    base: &str,
    form: &[(String, String)],
) -> (u16, Option<u64>, String) {
    let res = http
        .post(format!("{base}/oauth2/login"))
        .form(form)
        .send()
        .await
        .expect("login answered");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (status, retry, res.text().await.unwrap_or_default())
}

/// Finding 1: one request_uri allowed 300 wrong passwords, then the right one. Now: after
/// `free` failures for a username — counted in Redis, whichever replica answered — every
/// attempt waits out a growing back-off (429 + Retry-After, the login form saying how long),
/// even with the right password; an unknown username gets exactly the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_backs_off_across_replicas_alike_for_unknown_users() {
    let _one_at_a_time = serial().await;
    let redis = RedisNode::start(&[]);
    let stack = Stack::start_with(3, &redis, ReplicaOptions::default(), |c| {
        c.extra = json!({ "limits": {
            // A back-off long enough that no slow request outlives it on a busy machine.
            "password_per_user": { "free": 3, "base_ms": 6000, "max_secs": 6, "forget_secs": 60 },
        } });
    });
    let bases: Vec<String> = stack.replicas.iter().map(|r| r.url()).collect();
    let mut answers = Vec::new();
    for username in ["alice", "mallory"] {
        let http = browser();
        let uri = push(&http, &bases[0]).await.expect("push");
        let page = authorize(&http, &bases[1], &uri).await.expect("login page");
        let wrong = login_form(&page, username, "wrong password");
        let mut seen = Vec::new();
        // Three failures, each on another replica, then two more attempts.
        for i in 0..5 {
            let (status, retry, body) = post_login(&http, &bases[i % 3], &wrong).await;
            let said = if body.contains("Too many sign-in attempts") {
                "wait"
            } else if body.contains("Incorrect username or password") {
                "incorrect"
            } else {
                "other"
            };
            assert_eq!(
                status == 429,
                retry.is_some(),
                "{status} without Retry-After: {body}"
            );
            seen.push((status, said));
        }
        // The right password is refused too while the back-off runs…
        let right = login_form(&page, username, config_file::PASSWORD);
        let (status, retry, _) = post_login(&http, &bases[2], &right).await;
        seen.push((status, "right password during the back-off"));
        // …and once it has passed, only the real user gets in.
        tokio::time::sleep(Duration::from_secs(retry.unwrap_or(6) + 1)).await;
        let (status, _, body) = post_login(&http, &bases[0], &right).await;
        let after = match status {
            303 => "signed in",
            200 if body.contains("Incorrect username or password") => "incorrect",
            _ => "other",
        };
        answers.push((username, seen, after));
    }
    harness::report("password guessing", &[format!("{answers:?}")]);
    let expected = vec![
        (200, "incorrect"),
        (200, "incorrect"),
        (200, "incorrect"),
        (429, "wait"),
        (429, "wait"),
        (429, "right password during the back-off"),
    ];
    assert_eq!(answers[0].1, expected, "alice");
    assert_eq!(answers[1].1, expected, "an unknown username is answered the same");
    assert_eq!(answers[0].2, "signed in");
    assert_eq!(answers[1].2, "incorrect");
}

/// `POST /oauth2/par` as `client` (`secret`: Basic authentication; `None`: a public
/// client), optionally "from" `xff` (through a trusted proxy), with this `state`.
async fn par_post(
    base: &str,
    client: &str,
    secret: Option<&str>,
    xff: Option<&str>,
    state: &str,
) -> reqwest::Response {
    let mut post = browser().post(format!("{base}/oauth2/par"));
    if let Some(secret) = secret {
        post = post.basic_auth(client, Some(secret));
    }
    if let Some(a) = xff {
        post = post.header("x-forwarded-for", a);
    }
    post.form(&[
        ("client_id", client),
        ("response_type", "code"),
        ("scope", "openid"),
        ("redirect_uri", config_file::REDIRECT),
        ("code_challenge", harness::CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", state),
    ])
    .send()
    .await
    .expect("push answered")
}

/// `POST /oauth2/par` as `client` (with `secret`), optionally "from" `xff` (the load balancer
/// is a trusted proxy here): status and the rate-limit headers.
async fn push_as(
    base: &str,
    client: &str,
    secret: &str,
    xff: Option<&str>,
) -> (u16, Option<String>, Option<String>) {
    let res = par_post(base, client, Some(secret), xff, "s").await;
    let header = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    (
        res.status().as_u16(),
        header("retry-after"),
        header("ratelimit-limit"),
    )
}

/// Finding 2's first half: pushes without limit. Now the per-client and per-address limits
/// are counted in Redis, so every replica refuses once the shared budget is spent — 429
/// with Retry-After and RateLimit-Limit — while other clients and addresses go on. The
/// front channel says so in a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_limits_are_shared_by_every_replica() {
    let _one_at_a_time = serial().await;
    let redis = RedisNode::start(&[]);
    let stack = Stack::start_with(3, &redis, ReplicaOptions::default(), |c| {
        with_other_client(c);
        c.extra = json!({ "limits": {
            "trusted_proxies": ["127.0.0.1"],
            "par_per_client": { "requests": 8, "per_secs": 3600 },
            "par_per_address": { "requests": 4, "per_secs": 3600 },
            "authorize_per_address": { "requests": 3, "per_secs": 3600 },
        } });
    });
    let lb = stack.lb.url();
    let bases: Vec<String> = stack.replicas.iter().map(|r| r.url()).collect();
    let secret = harness::SECRET;

    // Per client: eight pushes through the load balancer (round robin), then every replica
    // refuses the ninth.
    for i in 0..8 {
        let from = format!("192.0.2.{i}");
        assert_eq!(
            push_as(&lb, harness::CLIENT, secret, Some(&from)).await.0,
            201,
            "push {i}"
        );
    }
    for base in &bases {
        let (status, retry, limit) = push_as(base, harness::CLIENT, secret, Some("192.0.2.100")).await;
        assert_eq!(status, 429, "{base}");
        assert!(
            retry.as_deref().is_some_and(|r| r.parse::<u64>().unwrap() >= 1),
            "Retry-After: {retry:?}"
        );
        assert_eq!(limit.as_deref(), Some("8"));
    }
    assert_eq!(
        push_as(&lb, OTHER, OTHER_SECRET, Some("192.0.2.1")).await.0,
        201,
        "another client"
    );

    // Per address: four pushes from one address, then no more from it (the other client
    // has budget left: the address's limit refuses). A refused request still counts
    // against the request's other limits.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(push_as(&lb, OTHER, OTHER_SECRET, Some("203.0.113.7")).await.0);
    }
    assert_eq!(statuses, [201, 201, 201, 201, 429]);
    assert_eq!(
        push_as(&lb, OTHER, OTHER_SECRET, Some("203.0.113.8")).await.0,
        201,
        "another address"
    );

    // The front channel: a page that says to wait.
    let http = browser();
    let mut pages = Vec::new();
    for _ in 0..4 {
        let res = http
            .get(format!("{lb}/oauth2/authorize"))
            .query(&[
                ("client_id", OTHER),
                ("request_uri", "urn:ietf:params:oauth:request_uri:x"),
            ])
            .header("x-forwarded-for", "198.51.100.1")
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let retry = res.headers().contains_key("retry-after");
        let body = res.text().await.unwrap();
        pages.push((
            status,
            retry,
            body.contains("Too many requests came from your network"),
        ));
    }
    assert_eq!(pages[3], (429, true, true), "{pages:?}");
    assert!(
        pages[..3].iter().all(|p| p.0 == 400),
        "unknown request_uri pages first: {pages:?}"
    );
    let metrics = harness::http_get(stack.replicas[0].port, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("par_limit_checks_total") && l.contains("outcome=\"refused\"")),
        "refusals are counted"
    );
}

/// Finding 3: a full Redis (`noeviction`) gave `500 server_error` while `/readyz` stayed
/// 200. Now: pushes get `503 temporarily_unavailable`, `/readyz` turns not ready until a
/// write succeeds again, and everything recovers once there is room — no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_gives_503_and_not_ready_then_recovers() {
    let _one_at_a_time = serial().await;
    let redis = RedisNode::start(&["--maxmemory-policy", "noeviction"]);
    let stack = Stack::start(1, &redis, ReplicaOptions::default());
    let replica = &stack.replicas[0];
    let base = replica.url();
    let used = used_memory(&redis);
    // Room for about a thousand pushed requests.
    let limit = (used + 512 * 1024).to_string();
    let _: () = redis.cmd(&["CONFIG", "SET", "maxmemory", &limit]);
    let http = browser();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..20_000 {
        let kind = match push(&http, &base).await {
            Ok(_) => "201".to_owned(),
            Err(o) => o.kind().to_owned(),
        };
        let full = kind != "201";
        *tally.entry(kind).or_default() += 1;
        if full {
            break;
        }
    }
    // At the edge, freed client buffers can let one more small write in: keep Redis
    // clearly over its limit (as a Redis that stays full is) for the readiness check.
    let used_now = used_memory(&redis);
    let _: () = redis.cmd(&["CONFIG", "SET", "maxmemory", &(used_now - 64 * 1024).to_string()]);
    let not_ready = topology::poll(Duration::from_secs(10), || {
        harness::http_get(replica.port, "/readyz").is_some_and(|(s, _)| s == 503)
    });
    let ready_when_full = if not_ready {
        Some(503)
    } else {
        harness::http_get(replica.port, "/readyz").map(|(s, _)| s)
    };
    let push_when_full = push(&http, &base).await.err().map(|o| o.kind());
    let _: () = redis.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    let recovered = topology::poll(Duration::from_secs(10), || {
        harness::http_get(replica.port, "/readyz").is_some_and(|(s, _)| s == 200)
    });
    let after = push(&http, &base).await.map(|_| "201").unwrap_or("refused");
    harness::report(
        "full redis",
        &[
            format!("pushes until Redis was full: {tally:?}"),
            format!("/readyz while full: {ready_when_full:?}; recovered: {recovered}; push after: {after}"),
        ],
    );
    assert!(tally.get("201").copied().unwrap_or(0) > 100, "{tally:?}");
    assert_eq!(
        tally.get("503 temporarily_unavailable"),
        Some(&1),
        "the push that found Redis full: {tally:?}"
    );
    assert_eq!(ready_when_full, Some(503));
    assert_eq!(push_when_full, Some("503 temporarily_unavailable"));
    assert!(recovered, "/readyz is 200 again once writes succeed");
    assert_eq!(after, "201");
}

/// Redis' `used_memory` in bytes.
fn used_memory(redis: &RedisNode) -> u64 {
    redis
        .info("memory")
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// An evicting `maxmemory-policy` can drop the single-use markers (a code's used-marker, an
/// assertion's jti) and let them be used twice: the process refuses to start on one, unless
/// `redis.allow_evicting_policy` says to start anyway (with a warning).
#[test]
fn an_evicting_redis_policy_is_refused_at_start() {
    let redis = RedisNode::start(&["--maxmemory-policy", "allkeys-lru"]);
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile {
        key_prefix: Some("abuse:".into()),
        clients: vec![ClientEntry::new(harness::CLIENT, harness::SECRET)],
        ..ConfigFile::new(topology::free_port(), &redis)
    };
    let (mut child, log) = config.spawn(dir.path(), "refused");
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.is_some_and(|s| !s.success()),
        "it must not start: {status:?}\n{text}"
    );
    assert!(text.contains("maxmemory-policy is allkeys-lru"), "{text}");

    let allowed = ConfigFile {
        extra: json!({ "redis": { "allow_evicting_policy": true } }),
        ..config
    };
    let (mut child, log) = allowed.spawn(dir.path(), "allowed");
    let ready = topology::poll(Duration::from_secs(20), || {
        harness::http_get(allowed.port, "/readyz").is_some_and(|(s, _)| s == 200)
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ready, "allowed: it starts\n{text}");
    assert!(text.contains("may evict keys"), "with a warning: {text}");
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

/// Finding 6's request hygiene: malformed HTTP is a client's fault (logged at WARN, never
/// ERROR); two `Authorization` headers are `400 invalid_request`, not a guess; a login form
/// over `http.body_limit` is `413`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_and_logged_as_the_clients_fault() {
    let _one_at_a_time = serial().await;
    let redis = RedisNode::start(&[]);
    let stack = Stack::start_with(1, &redis, ReplicaOptions::default(), |c| {
        c.log_format = Some("json");
    });
    let replica = &stack.replicas[0];
    let base = replica.url();

    for garbage in [
        &b"GARBAGE\x01 / HTTP/9\r\n\r\n"[..],
        &b"POST /oauth2/par HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n"[..],
    ] {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", replica.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(garbage).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }

    let twice = browser()
        .post(format!("{base}/oauth2/par"))
        .header("authorization", "Basic YXBwOnNjYWxlLXNlY3JldC0wMTIzNDU2Nzg5")
        .header("authorization", "Basic b3RoZXI6b3RoZXI=")
        .form(&[("response_type", "code")])
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    let body: serde_json::Value = twice.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");

    let http = browser();
    let uri = push(&http, &base).await.expect("push");
    let page = authorize(&http, &base, &uri).await.expect("login page");
    let mut form = login_form(&page, "alice", "x");
    form.push(("padding".into(), "x".repeat(70 * 1024)));
    let (status, _, body) = post_login(&http, &base, &form).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("too large"), "a page that says why: {body}");

    // Give the log a moment to reach the file.
    let logged = topology::poll(Duration::from_secs(5), || {
        std::fs::read_to_string(&replica.log).is_ok_and(|t| t.contains("malformed or broken HTTP request"))
    });
    let log = std::fs::read_to_string(&replica.log).unwrap_or_default();
    assert!(logged, "malformed requests are logged: {log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("\"ERROR\"")).collect();
    assert!(errors.is_empty(), "nothing at ERROR: {errors:?}");
}

/// Finding 2: a public client let anyone store 49–64 KiB per push. Now a push is capped
/// in size (`par.max_record_bytes`), and the requests a client — and, for a public client,
/// one address — may have outstanding (pushed within the redemption window) are capped, in
/// Redis, for every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outstanding_requests_and_their_size_are_capped() {
    let _one_at_a_time = serial().await;
    let redis = RedisNode::start(&[]);
    let stack = Stack::start_with(2, &redis, ReplicaOptions::default(), |c| {
        let scopes = ["openid", "email", "profile"];
        c.extra = json!({
            "par": { "max_record_bytes": 4096 },
            "limits": {
                "trusted_proxies": ["127.0.0.1"],
                "outstanding_per_client": 7,
                "outstanding_per_public_address": 3,
            },
            "clients": [
                { "client_id": harness::CLIENT, "client_secret": harness::SECRET,
                  "redirect_uris": [config_file::REDIRECT], "scopes": scopes },
                { "client_id": "spa", "token_endpoint_auth_method": "none",
                  "redirect_uris": [config_file::REDIRECT], "scopes": scopes },
            ],
        });
    });
    let lb = stack.lb.url();
    let push_from = |client: &'static str, xff: &'static str, state: String| {
        let lb = lb.clone();
        async move {
            let secret = (client == harness::CLIENT).then_some(harness::SECRET);
            let res = par_post(&lb, client, secret, Some(xff), &state).await;
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            (status, body["error"].as_str().unwrap_or_default().to_owned())
        }
    };
    // Size: a push whose stored record would exceed 4 KiB is refused, a normal one is not.
    let big = push_from(harness::CLIENT, "192.0.2.1", "s".repeat(5000)).await;
    assert_eq!(big, (400, "invalid_request".to_owned()));
    // Per public client and address: three outstanding, then no more from that address…
    let mut spa = Vec::new();
    for _ in 0..4 {
        spa.push(push_from("spa", "198.51.100.7", "s".into()).await.0);
    }
    assert_eq!(spa, [201, 201, 201, 429]);
    // …while another address may.
    assert_eq!(push_from("spa", "198.51.100.8", "s".into()).await.0, 201);
    // Per client: seven outstanding (the refused big push counted too), then none.
    let mut app = Vec::new();
    for i in 0..7 {
        let from: &'static str = ["192.0.2.1", "192.0.2.2", "192.0.2.3"][i % 3];
        app.push(push_from(harness::CLIENT, from, "s".into()).await.0);
    }
    assert_eq!(
        app,
        [201, 201, 201, 201, 201, 201, 429],
        "the refused big push counts"
    );
}

/// Open file descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Finding 5: 2,000 stalled bodies held for 90 s raised RSS 56 → 358 MB and held 2,023
/// descriptors. Now a body (and a request head) must arrive within its deadline: stalled
/// ones get 408 and their connections are closed, and the descriptors return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_requests_are_cut_at_the_deadline() {
    let _one_at_a_time = serial().await;
    let redis = RedisNode::start(&[]);
    let stack = Stack::start_with(1, &redis, ReplicaOptions::default(), |c| {
        c.extra = json!({ "http": { "body_timeout_secs": 2, "header_timeout_secs": 2 } });
    });
    let replica = &stack.replicas[0];
    let pid = replica.pid().unwrap();
    let port = replica.port;
    let before = fds(pid);
    // Bodies that never finish at the back channel and the login form, and heads that never
    // finish; every client holds on (never closes) until the server does.
    const STALLED: usize = 2000;
    let tasks: Vec<_> = (0..STALLED)
        .map(|i| {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
                let start = match i % 3 {
                    0 => "POST /oauth2/par HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\nclient_id=app&",
                    1 => "POST /oauth2/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\nusername=a",
                    _ => "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: applica",
                };
                s.write_all(start.as_bytes()).await.ok()?;
                let mut answer = Vec::new();
                // A bound for the test, far above the deadline: the server must close first.
                let read = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut answer)).await;
                let text = String::from_utf8_lossy(&answer).into_owned();
                Some((read.is_ok(), text.split("\r\n").next().unwrap_or("").to_owned()))
            })
        })
        .collect();
    let (held, rss_held) = {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        (fds(pid), rss_kib(pid))
    };
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        let kind = match t.await.unwrap() {
            Some((true, line)) if line.is_empty() => "closed".to_owned(),
            Some((true, line)) => line,
            Some((false, _)) => "still open after 60 s".to_owned(),
            None => "could not connect".to_owned(),
        };
        *tally.entry(kind).or_default() += 1;
    }
    let returned = topology::poll(Duration::from_secs(10), || fds(pid) <= before + 5);
    let after = fds(pid);
    harness::report(
        "stalled requests",
        &[
            format!("{STALLED} stalled (bodies at /par and /login, heads): {tally:?}"),
            format!("descriptors: {before} before, {held} while held, {after} after"),
            format!(
                "RSS while held {} MiB, after {} MiB",
                rss_held / 1024,
                rss_kib(pid) / 1024
            ),
        ],
    );
    assert!(rss_held < K8S_LIMIT_KIB, "RSS while held: {rss_held} KiB");
    assert!(
        tally
            .keys()
            .all(|k| k == "HTTP/1.1 408 Request Timeout" || k == "closed"),
        "every stalled request is cut by the server: {tally:?}"
    );
    assert!(returned, "descriptors return: {before} before, {after} after");
    // Still serving.
    assert!(push(&browser(), &replica.url()).await.is_ok());
}
