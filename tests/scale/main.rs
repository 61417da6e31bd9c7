//! Horizontal scale and failure, end to end (docs/operations.md, "What happens in each failure"):
//! real `redis-server` processes (standalone, Cluster, Sentinel), several real `par-server`
//! processes, and HAProxy in front (`deploy/haproxy/haproxy.cfg`, the compose stack's own).
//!
//! Each scenario prints what it measured (and appends it to
//! `target/tmp/scale-report.txt`); assertions are on outcomes — status codes, winners,
//! exit codes — never on speed. Scenarios run one at a time. Scenarios 1 and 2 redeem the
//! codes they were issued ([`harness::exchange_code`]).

#[path = "../support/config_file.rs"]
mod config_file;
mod harness;
#[path = "../support/html.rs"]
mod html;
#[path = "../support/topology.rs"]
mod topology;

use std::time::{Duration, Instant};

use harness::*;
use topology::{RedisCluster, RedisNode, SentinelGroup, poll};

fn fmt_tally(records: &[Record]) -> String {
    format!("{:?}", tally(records))
}

/// Scenario 1: three replicas behind HAProxy. Logins whose push, authorize and login land
/// on different replicas; then 1,000 concurrent attempts at one-time use: each request_uri
/// loaded by 4 browsers at /authorize (every load shows the login form: visits never
/// consume, FAPI 2.0 §5.3.2.2 note), then all 4 sign in at once (one code, three
/// `invalid_request_uri`); then 10 rounds of 20 browsers on one request_uri each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_three_replicas_one_winner_per_request() {
    let _one_at_a_time = serial().await;
    let redis = RedisNode::start(&[]);
    let stack = Stack::start(3, &redis, ReplicaOptions::default());
    let lb = stack.lb.url();
    let r: Vec<String> = stack.replicas.iter().map(Replica::url).collect();

    // (a) Every step on a different replica, directly; then through the LB.
    let mut codes = Vec::new();
    for i in 0..9 {
        let bases = [
            r[i % 3].as_str(),
            r[(i + 1) % 3].as_str(),
            r[(i + 2) % 3].as_str(),
        ];
        let (outcome, double) = login_flow(bases, true).await;
        assert!(outcome.is_ok(), "cross-replica login {i}: {outcome:?}");
        assert!(!double, "a replayed login form was redeemed twice");
        if let Outcome::Code(c) = outcome {
            codes.push(c);
        }
    }
    for _ in 0..6 {
        let (outcome, _) = login_flow([&lb, &lb, &lb], false).await;
        assert!(outcome.is_ok(), "login through the LB: {outcome:?}");
    }
    for (i, c) in codes.iter().enumerate() {
        exchange_code(&r[i % 3], c).await.expect("code redeemed");
        let again = exchange_code(&r[(i + 1) % 3], c).await;
        assert!(again.is_err(), "a code was redeemed twice");
    }
    let token_line = format!(
        "token step: {} codes redeemed once each, second redemptions refused",
        codes.len()
    );

    // (b) The races: every browser loads, then every browser signs in.
    const URIS: usize = 125;
    const BROWSERS: usize = 4;
    let pusher = browser();
    let mut uris = Vec::new();
    for _ in 0..URIS {
        uris.push(push(&pusher, &lb).await.expect("push"));
    }
    let started = Instant::now();
    let races = uris.into_iter().map(|uri| {
        let lb = lb.clone();
        tokio::spawn(async move { race(&lb, &uri, BROWSERS).await })
    });
    let results: Vec<Race> = futures_util::future::join_all(races)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let elapsed = started.elapsed();
    let attempts = results.len() * BROWSERS * 2;
    let pages: usize = results.iter().map(|r| r.pages).sum();
    let code_winners: usize = results.iter().map(|r| r.codes).sum();
    let loser_kinds = check_races(&results, BROWSERS);

    // (c) The case, repeated: 20 browsers that all loaded the form sign in at once.
    let mut rounds = Vec::new();
    for _ in 0..10 {
        let uri = push(&pusher, &lb).await.expect("push");
        rounds.push(race(&lb, &uri, 20).await);
    }
    check_races(&rounds, 20);
    report(
        "scenario 1: three replicas behind HAProxy",
        &[
            "cross-replica logins (push, authorize, login on three different replicas): 9 ok, replayed forms: 0 codes".into(),
            "logins through the LB: 6 ok".into(),
            token_line,
            format!(
                "one-time-use races: {URIS} request_uris x {BROWSERS} browsers, each loading /authorize then signing in at once: {attempts} requests in {:.1} s",
                elapsed.as_secs_f64()
            ),
            format!("login pages shown: {pages} / {}; codes: {code_winners} / {URIS}", URIS * BROWSERS),
            format!("losers by kind: {loser_kinds:?}"),
            "20 browsers signing in at once on one request_uri, 10 rounds: 1 code each, 19 invalid_request_uri each".into(),
        ],
    );
    assert_eq!(attempts, 1000);
    assert_eq!((pages, code_winners), (URIS * BROWSERS, URIS));
}

/// One request_uri raced by `browsers` fresh browsers: each loads the page, then all sign in.
struct Race {
    /// Loads that showed the login form.
    pages: usize,
    codes: usize,
    /// Failed loads and failed sign-ins.
    losers: Vec<Outcome>,
}

async fn race(lb: &str, uri: &str, browsers: usize) -> Race {
    let browsers: Vec<reqwest::Client> = (0..browsers).map(|_| browser()).collect();
    let loads = futures_util::future::join_all(browsers.iter().map(|b| authorize(b, lb, uri))).await;
    let mut losers = Vec::new();
    let mut forms = Vec::new();
    for (b, page) in browsers.iter().zip(loads) {
        match page {
            Ok(p) => forms.push((b, p)),
            Err(o) => losers.push(o),
        }
    }
    let pages = forms.len();
    let logins = futures_util::future::join_all(forms.iter().map(|(b, p)| login(b, lb, p))).await;
    let codes = logins.iter().filter(|o| o.is_ok()).count();
    losers.extend(logins.into_iter().filter(|o| !o.is_ok()));
    Race { pages, codes, losers }
}

/// Every load showed the form, exactly one sign-in got a code, and every other sign-in saw
/// `invalid_request_uri`. Returns the losers by kind.
fn check_races(races: &[Race], browsers: usize) -> std::collections::BTreeMap<&'static str, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    for r in races {
        assert_eq!(
            r.pages, browsers,
            "every visit shows the login form: {:?}",
            r.losers
        );
        assert_eq!(r.codes, 1, "codes for one request_uri: {:?}", r.losers);
        for o in &r.losers {
            *kinds.entry(o.kind()).or_insert(0) += 1;
            assert_eq!(
                o,
                &Outcome::InvalidRequestUri,
                "a loser must see invalid_request_uri"
            );
        }
    }
    kinds
}

/// Scenario 2: Redis Cluster (3 primaries + 3 replicas). Logins run while 3,000 slots are
/// resharded (keys migrated: ASK/TRYAGAIN windows) and while a primary hands over to its
/// replica (CLUSTER FAILOVER). No completed login is lost, nothing is redeemed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_cluster_reshard_and_failover_lose_nothing() {
    let _one_at_a_time = serial().await;
    let cluster = RedisCluster::start(3, 1);
    let stack = Stack::start(2, &cluster, ReplicaOptions::default());
    let lb = stack.lb.url();
    let (first, _) = login_flow([&lb, &lb, &lb], true).await;
    assert!(first.is_ok(), "login on the cluster: {first:?}");

    let load = Load::start(&lb, 8, 20_000, Duration::from_secs(90), true);
    assert!(
        load.wait_successes_since(Instant::now(), 20, Duration::from_secs(20))
            .await
    );

    // Slot migration with keys, by redis-cli, while the logins go on.
    let primaries = cluster.primaries();
    let from = RedisCluster::id(&cluster.nodes[primaries[0]]);
    let to = RedisCluster::id(&cluster.nodes[primaries[1]]);
    let entry = cluster.nodes[primaries[0]].addr();
    let reshard_start = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-cli")
            .args([
                "--cluster",
                "reshard",
                &entry,
                "--cluster-from",
                &from,
                "--cluster-to",
                &to,
            ])
            .args([
                "--cluster-slots",
                "3000",
                "--cluster-yes",
                "--cluster-pipeline",
                "50",
            ])
            .output()
            .expect("redis-cli must be installed (scripts/test.sh installs redis-tools)")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "reshard: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let reshard_secs = reshard_start.elapsed().as_secs_f64();
    let after_reshard = Instant::now();
    assert!(
        load.wait_successes_since(after_reshard, 20, Duration::from_secs(20))
            .await
    );

    // A primary hands over to its replica.
    let victim = cluster.nodes[primaries[2]].port.to_string();
    let replica = cluster
        .nodes
        .iter()
        .find(|n| n.info("replication").contains(&format!("master_port:{victim}")))
        .expect("the primary has a replica");
    let _: String = replica.cmd(&["CLUSTER", "FAILOVER"]);
    assert!(
        poll(Duration::from_secs(15), || replica
            .info("replication")
            .contains("role:master")),
        "replica was not promoted"
    );
    let after_failover = Instant::now();
    assert!(
        load.wait_successes_since(after_failover, 20, Duration::from_secs(20))
            .await
    );
    let records = load.finish().await;

    let codes: Vec<&String> = records
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Code(c) => Some(c),
            _ => None,
        })
        .collect();
    let doubles = records.iter().filter(|r| r.double).count();
    // Every issued code is still there (no completed login lost): each one redeems.
    let mut lost = 0;
    for c in &codes {
        if exchange_code(&lb, c).await.is_err() {
            lost += 1;
        }
    }
    report(
        "scenario 2: Redis Cluster, reshard of 3000 slots + primary failover",
        &[
            format!(
                "login attempts: {}, by outcome: {}",
                records.len(),
                fmt_tally(&records)
            ),
            format!(
                "reshard took {reshard_secs:.1} s; codes issued: {}; codes lost: {lost}; replayed forms redeemed twice: {doubles}",
                codes.len()
            ),
        ],
    );
    let bad = examples(&records, |o| !o.is_ok() && !o.is_clean_failure());
    assert!(bad.is_empty(), "unclean failures: {bad:?}");
    assert_eq!(doubles, 0, "double redemptions");
    assert_eq!(lost, 0, "completed logins lost");
}

/// Scenario 3: Sentinel (primary, replica, three sentinels). The primary is killed during a
/// stream of logins; the replicas follow the promoted one without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sentinel_failover_is_followed() {
    let _one_at_a_time = serial().await;
    let mut group = SentinelGroup::start();
    let stack = Stack::start(2, &group, ReplicaOptions::default());
    let lb = stack.lb.url();
    let load = Load::start(&lb, 8, 20_000, Duration::from_secs(90), true);
    assert!(
        load.wait_successes_since(Instant::now(), 20, Duration::from_secs(20))
            .await
    );
    let old = group.primary_port().unwrap();
    let killed_at = Instant::now();
    let i = group.index_of(old);
    group.data[i].stop();
    let followed = load
        .wait_successes_since(killed_at, 30, Duration::from_secs(40))
        .await;
    let records = load.finish().await;
    let new = group.primary_port();
    let after: Vec<&Record> = records.iter().filter(|r| r.end >= killed_at).collect();
    let first_ok = after
        .iter()
        .filter(|r| r.start >= killed_at && r.outcome.is_ok())
        .map(|r| r.end - killed_at)
        .min();
    let failed: Vec<&Record> = after.iter().copied().filter(|r| !r.outcome.is_ok()).collect();
    let doubles = records.iter().filter(|r| r.double).count();
    report(
        "scenario 3: Sentinel failover (primary killed under load)",
        &[
            format!(
                "login attempts: {}, by outcome: {}",
                records.len(),
                fmt_tally(&records)
            ),
            format!(
                "failed during the switch: {} ({:?}); logins succeed again {:.1} s after the kill; primary {old} -> {new:?}",
                failed.len(),
                tally(failed.iter().copied()),
                first_ok.unwrap_or_default().as_secs_f64()
            ),
            format!("replayed forms redeemed twice: {doubles}"),
        ],
    );
    assert!(followed, "the service did not follow the new primary");
    assert_ne!(new, Some(old), "no failover happened");
    let bad = examples(&records, |o| !o.is_ok() && !o.is_clean_failure());
    assert!(
        bad.is_empty(),
        "unclean failures (500, LB error, transport): {bad:?}"
    );
    assert_eq!(doubles, 0, "double redemptions");
}

/// Scenario 4: Redis stops under steady load; every request is answered (503
/// temporarily_unavailable, never a hang, a 500 or an LB error); Redis restarts and the
/// error rate returns to zero without restarting par-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_redis_outage_fails_fast_and_recovers() {
    let _one_at_a_time = serial().await;
    let mut redis = RedisNode::start(&[]);
    let stack = Stack::start(3, &redis, ReplicaOptions::default());
    let lb = stack.lb.url();
    let load = Load::start(&lb, 8, 20_000, Duration::from_secs(90), false);
    assert!(
        load.wait_successes_since(Instant::now(), 30, Duration::from_secs(20))
            .await
    );
    let before: Vec<(u64, u64)> = stack.replicas.iter().map(Replica::usage).collect();
    let down_at = Instant::now();
    redis.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during: Vec<(u64, u64)> = stack.replicas.iter().map(Replica::usage).collect();
    let ready_during: Vec<u16> = stack
        .replicas
        .iter()
        .map(|r| http_get(r.port, "/readyz").map_or(0, |(s, _)| s))
        .collect();
    let up_at = Instant::now();
    redis.restart();
    let recovered = load
        .wait_successes_since(up_at, 40, Duration::from_secs(30))
        .await;
    let records = load.finish().await;
    let outage: Vec<&Record> = records
        .iter()
        .filter(|r| r.end >= down_at && r.start <= up_at)
        .collect();
    // Recovery: from the restart to the start of the run of successes that lasts to the end.
    let last_failure = records.iter().filter(|r| !r.outcome.is_ok()).map(|r| r.end).max();
    let recovery = last_failure.map(|t| t.saturating_duration_since(up_at));
    let after_recovery = records
        .iter()
        .filter(|r| last_failure.is_some_and(|t| r.start > t))
        .count();
    report(
        "scenario 4: Redis outage under load",
        &[
            format!(
                "login attempts: {}, by outcome: {}",
                records.len(),
                fmt_tally(&records)
            ),
            format!(
                "during the 4 s outage: {} attempts, {:?}",
                outage.len(),
                tally(outage.iter().copied())
            ),
            format!("/readyz during the outage: {ready_during:?}"),
            format!(
                "recovery: last failure {:.2} s after Redis restarted; {after_recovery} logins after it, all ok",
                recovery.unwrap_or_default().as_secs_f64()
            ),
            format!("replica (RSS KiB, threads) before: {before:?}, during: {during:?}"),
        ],
    );
    let bad = examples(&records, |o| !o.is_ok() && !o.is_clean_failure());
    assert!(
        bad.is_empty(),
        "requests that were not answered with a clean error: {bad:?}"
    );
    assert!(
        outage.iter().any(|r| r.outcome == Outcome::Unavailable),
        "the outage produced no 503"
    );
    assert!(
        ready_during.iter().all(|s| *s == 503),
        "/readyz during the outage: {ready_during:?}"
    );
    assert!(recovered, "logins did not resume after Redis came back");
    assert!(after_recovery >= 20, "error rate did not return to zero");
    for ((rss0, th0), (rss1, th1)) in before.iter().zip(&during) {
        assert!(
            *rss1 < rss0 + 64 * 1024,
            "memory grew during the outage: {rss0} -> {rss1} KiB"
        );
        assert!(*th1 <= th0 + 16, "threads grew during the outage: {th0} -> {th1}");
    }
}

/// Scenario 5: one replica is killed (-9) under load through the LB; logins continue on the
/// others, and only requests open at the killed replica fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_replica_loss_is_bounded() {
    let _one_at_a_time = serial().await;
    let redis = RedisNode::start(&[]);
    let mut stack = Stack::start(3, &redis, ReplicaOptions::default());
    let lb = stack.lb.url();
    const CONCURRENCY: usize = 12;
    let load = Load::start(&lb, CONCURRENCY, 20_000, Duration::from_secs(90), false);
    assert!(
        load.wait_successes_since(Instant::now(), 30, Duration::from_secs(20))
            .await
    );
    let open_at_kill = load.in_flight.load(std::sync::atomic::Ordering::Relaxed);
    stack.replicas[0].kill9();
    // Taken once the process is gone: a login that started earlier may have had a request
    // open at the replica; one that starts later must not fail.
    let killed_at = Instant::now();
    let continued = load
        .wait_successes_since(killed_at, 60, Duration::from_secs(30))
        .await;
    let marked_down = poll(Duration::from_secs(5), || {
        stack.lb.status_of("par-server-1").starts_with("DOWN")
    });
    let records = load.finish().await;
    let failed: Vec<&Record> = records.iter().filter(|r| !r.outcome.is_ok()).collect();
    report(
        "scenario 5: replica killed (-9) under load",
        &[
            format!(
                "login attempts: {}, by outcome: {}",
                records.len(),
                fmt_tally(&records)
            ),
            format!(
                "failed: {} ({:?}); logins open at the kill (all replicas): {open_at_kill}; browsers: {CONCURRENCY}",
                failed.len(),
                tally(failed.iter().copied())
            ),
            format!("failures: {:?}", examples(failed.iter().copied(), |_| true)),
            format!(
                "logins after the kill: {}",
                records
                    .iter()
                    .filter(|r| r.start > killed_at && r.outcome.is_ok())
                    .count()
            ),
        ],
    );
    assert!(continued, "logins did not continue on the remaining replicas");
    assert!(marked_down, "HAProxy did not mark the killed replica down");
    assert!(
        failed.len() <= open_at_kill,
        "more failures ({}) than logins open at the kill ({open_at_kill})",
        failed.len()
    );
    assert!(
        failed.iter().all(|r| r.start < killed_at),
        "a login started after the kill failed"
    );
    assert!(failed.iter().all(|r| r.outcome != Outcome::ServerError));
}

/// Scenario 6: SIGTERM to one replica under load: it reports not-ready, HAProxy drains it,
/// in-flight requests finish, no request through the LB fails, and it exits 0 in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_sigterm_drains_without_failures() {
    let _one_at_a_time = serial().await;
    let redis = RedisNode::start(&[]);
    let options = ReplicaOptions {
        drain_delay_secs: 2,
        shutdown_grace_secs: 10,
        ..ReplicaOptions::default()
    };
    let mut stack = Stack::start(3, &redis, options);
    let lb = stack.lb.url();
    let load = Load::start(&lb, 8, 20_000, Duration::from_secs(90), false);
    assert!(
        load.wait_successes_since(Instant::now(), 30, Duration::from_secs(20))
            .await
    );
    let port = stack.replicas[0].port;
    let term_at = Instant::now();
    stack.replicas[0].signal("TERM");
    let not_ready = poll(Duration::from_secs(2), || {
        http_get(port, "/readyz").is_some_and(|(s, body)| s == 503 && body.contains("draining"))
    });
    let drained = poll(Duration::from_secs(5), || {
        stack.lb.status_of("par-server-1").starts_with("DOWN")
    });
    let limit = Duration::from_secs(options.drain_delay_secs + options.shutdown_grace_secs + 5);
    let status = tokio::task::block_in_place(|| stack.replicas[0].wait_exit(limit));
    let exited_after = term_at.elapsed();
    let more = load
        .wait_successes_since(Instant::now(), 20, Duration::from_secs(20))
        .await;
    let records = load.finish().await;
    report(
        "scenario 6: SIGTERM drain under load",
        &[
            format!(
                "login attempts: {}, by outcome: {}",
                records.len(),
                fmt_tally(&records)
            ),
            format!(
                "exit status {status:?} after {:.1} s (drain delay {} s, grace {} s)",
                exited_after.as_secs_f64(),
                options.drain_delay_secs,
                options.shutdown_grace_secs
            ),
        ],
    );
    assert!(not_ready, "/readyz did not report draining");
    assert!(drained, "HAProxy did not take the draining replica out");
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}");
    assert!(more, "logins did not continue");
    let failed = examples(&records, |o| !o.is_ok());
    assert!(failed.is_empty(), "requests failed during the drain: {failed:?}");
}
