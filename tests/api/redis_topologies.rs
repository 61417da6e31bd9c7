//! Redis topologies through the whole application (docs/redis.md): `rediss://` with a private
//! CA and ACL credentials from separate keys, Redis Cluster and Sentinel by configuration,
//! and the 503 a client sees while the store is unreachable.

use std::process::Command;
use std::time::Duration;

use par_server::config::{RedisMode, Settings};
use par_server::secret::Secret;

use crate::helpers::*;
use crate::topology::{RedisCluster, RedisNode, SentinelGroup, free_port};

/// A CA and a server certificate for 127.0.0.1, made with `openssl` in `dir`.
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl must be installed (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=par-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

async fn push_status(app: &TestApp) -> u16 {
    app.push(&push_params("app")).await.status().as_u16()
}

#[tokio::test]
async fn rediss_with_a_private_ca_and_acl_credentials() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let tls_port = free_port();
    let p = |f: &str| certs.path().join(f).to_string_lossy().into_owned();
    // Plain port kept for the harness' readiness probe; the app only gets the TLS port.
    let _redis = RedisNode::start(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &p("server.pem"),
        "--tls-key-file",
        &p("server.key"),
        "--tls-ca-cert-file",
        &p("ca.pem"),
        "--tls-auth-clients",
        "no",
        "--user",
        "default",
        "off",
        "--user",
        "par",
        "on",
        ">s3cret-pass",
        "~*",
        "+@all",
    ]);
    let mut settings = base_settings();
    settings.redis.url = Some(Secret::new(format!("rediss://127.0.0.1:{tls_port}")));
    settings.redis.username = Some("par".into());
    settings.redis.password = Some(Secret::new("s3cret-pass"));
    settings.redis.tls_ca_file = Some(certs.path().join("ca.pem"));
    settings.redis.command_timeout_ms = 1000;
    let app = spawn_with_settings(settings.clone(), None).await;
    assert_eq!(push_status(&app).await, 201);
    assert_eq!(
        app.http.get(app.url("/readyz")).send().await.unwrap().status(),
        200
    );
    let res = app.full_login(&http_client()).await;
    assert!(res.status().is_redirection(), "login over TLS: {}", res.status());

    // Wrong password: not ready, and requests get a clean 503 (never a panic or a 500).
    let mut wrong = settings.clone();
    wrong.redis.password = Some(Secret::new("wrong"));
    let bad = spawn_with_settings(wrong, None).await;
    assert_eq!(
        bad.http.get(bad.url("/readyz")).send().await.unwrap().status(),
        503
    );

    // No CA: the server's certificate is not trusted by the system store.
    let mut untrusted = settings;
    untrusted.redis.tls_ca_file = None;
    let app = spawn_with_settings(untrusted, None).await;
    assert_eq!(
        app.http.get(app.url("/readyz")).send().await.unwrap().status(),
        503
    );
    assert_oauth_error(
        app.push(&push_params("app")).await,
        503,
        "temporarily_unavailable",
    )
    .await;
}

#[tokio::test]
async fn the_full_login_runs_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let mut settings = base_settings();
    settings.redis.mode = RedisMode::Cluster;
    settings.redis.cluster_nodes = cluster.seeds();
    let app = spawn_with_settings(settings, None).await;
    let other = app.replica(|_| {}).await;
    for _ in 0..10 {
        let browser = http_client();
        let uri = app.push_valid().await;
        let page = other.authorize(&browser, "app", &uri).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let res = app.login(&browser, &html, "alice", PASSWORD).await;
        assert!(res.status().is_redirection(), "{}", res.status());
        assert!(location_params(&res).contains_key("code"));
    }
    // Keys really are spread over the primaries (not all in one slot).
    let used: Vec<usize> = cluster
        .primaries()
        .into_iter()
        .filter(|&i| !cluster.nodes[i].cmd::<Vec<String>>(&["KEYS", "*"]).is_empty())
        .collect();
    assert!(used.len() >= 2, "keys on primaries {used:?}");
}

#[tokio::test]
async fn sentinel_mode_follows_a_failover_without_a_restart() {
    let mut group = SentinelGroup::start();
    let mut settings: Settings = base_settings();
    settings.redis.mode = RedisMode::Sentinel;
    settings.redis.sentinel_nodes = group.sentinel_urls();
    settings.redis.sentinel_master = Some(group.master.clone());
    settings.redis.command_timeout_ms = 500;
    settings.redis.connect_timeout_ms = 500;
    let app = spawn_with_settings(settings, None).await;
    assert_eq!(push_status(&app).await, 201);
    let old = group.primary_port().unwrap();
    let i = group.index_of(old);
    group.data[i].stop();
    // Until the sentinels promote the replica: clean 503s; afterwards: 201 again, from the
    // same process. Bounded: at most 200 pushes, 50 ms apart.
    let mut statuses = Vec::new();
    for _ in 0..200 {
        let s = push_status(&app).await;
        statuses.push(s);
        if s == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(statuses.last(), Some(&201), "{statuses:?}");
    assert!(statuses.iter().all(|s| [201, 503].contains(s)), "{statuses:?}");
    let new = group.primary_port().unwrap();
    assert_ne!(new, old);
}
