//! The real `par-server` binary: the zero-config demo, a push against Redis through the
//! process started from a config file, and the operator subcommands.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::config_file::{BIN, ClientEntry, ConfigFile};
use crate::demo::start_demo;
use crate::helpers::*;
use crate::topology::{KillOnDrop, free_port};

#[tokio::test]
async fn the_binary_pushes_to_redis_from_a_config_file() {
    let redis = RedisNode::start(&[]);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile {
        clients: vec![ClientEntry {
            scopes: vec!["openid".into(), "email".into()],
            ..ClientEntry::new("demo-app", SECRET)
        }],
        ..ConfigFile::new(port, &redis)
    };
    let _server = KillOnDrop(config.spawn(dir.path(), "par").0);
    wait_ready(&format!("http://127.0.0.1:{port}/readyz")).await;
    let res = http_client()
        .post(format!("http://127.0.0.1:{port}/oauth2/par"))
        .basic_auth("demo-app", Some(SECRET))
        .form(&with(push_params("demo-app"), &[("scope", Some("openid email"))]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(redis.keys().len(), 1, "the push landed in Redis");
}

#[tokio::test]
async fn the_zero_config_demo_prints_working_credentials() {
    let demo = tokio::task::spawn_blocking(|| start_demo(BIN)).await.unwrap();
    assert!(
        !demo.password.is_empty(),
        "the banner prints the demo user's password"
    );
    let base = format!("http://127.0.0.1:{}", demo.port);
    wait_ready(&format!("{base}/readyz")).await;
    let params = with(
        push_params("demo-app"),
        &[("redirect_uri", Some("http://127.0.0.1:9000/callback"))],
    );
    let res = http_client()
        .post(format!("{base}/oauth2/par"))
        .basic_auth("demo-app", Some(&demo.client_secret))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[par]\nrequest_uri_lifetime = 600\n[[clients]]\nclient_id = \"a\"\nclient_secret = \"0123456789\"\nredirect_uris = [\"https://a.example/cb\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("par.request_uri_lifetime"), "{err}");

    let good = dir.path().join("good.json");
    std::fs::write(&good, r#"{"clients":[{"client_id":"a","client_secret":"0123456789","redirect_uris":["https://a.example/cb"]}]}"#)
        .unwrap();
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, "redis:\n  ulr: redis://x\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&typo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ulr"));
}

#[test]
fn the_server_refuses_to_start_on_an_invalid_config() {
    let out = Command::new(BIN)
        .env("PAR__ISSUER", "http://login.example.com")
        .env("PAR__HTTP__BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("issuer"));
}

#[test]
fn hash_password_prints_a_verifiable_argon2id_hash() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret pass\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(par_server::password::verify("s3cret pass", Some(hash.trim())));
}
