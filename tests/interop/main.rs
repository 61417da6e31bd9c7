//! Interoperability: independent, widely used client libraries complete a login against the
//! real `par-server` binary — three replicas behind HAProxy on one Redis, the stack of the
//! scale suite — as a relying party would deploy them:
//!
//! - npm `openid-client` 6 (a certified OpenID relying-party library, on `oauth4webapi`):
//!   `tests/interop/js/rp.mjs`;
//! - PyPI `requests-oauth2client`: `tests/interop/py/rp.py`.
//!
//! Scenarios: `basic` (PAR, `client_secret_basic`) and `dpop` (PAR + DPoP with server nonces
//! required, so a challenge from one replica is answered on the next one the balancer picks;
//! openid-client also authenticates with `private_key_jwt`).
//!
//! Each scenario is a small program that prints one JSON line of what it obtained; the
//! libraries check the protocol (iss, state, PKCE, the ID token's signature and claims), this
//! file checks that they finished and what they report. `scripts/test.sh` installs both
//! libraries (`npm ci`, a venv under `target/`).

#[path = "../support/config_file.rs"]
mod config_file;
#[allow(dead_code)] // the scale suite's harness; this target uses its process stack only
#[path = "../scale/harness.rs"]
mod harness;
#[path = "../support/html.rs"]
mod html;
#[path = "../support/topology.rs"]
mod topology;

use std::path::{Path, PathBuf};
use std::process::Command;

use config_file::ClientEntry;
use harness::{CLIENT, PASSWORD, REDIRECT, ReplicaOptions, SECRET, Stack};
use serde_json::{Value, json};
use topology::RedisNode;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with `requests-oauth2client` installed: `INTEROP_PYTHON`, else the venv
/// `scripts/test.sh` makes.
fn python() -> PathBuf {
    std::env::var_os("INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/interop-venv/bin/python"))
}

/// The `private_key_jwt` client of the `dpop` scenario; its key is
/// `tests/fixtures/client-es256.pem`.
const JWT_CLIENT: &str = "interop-jwt";

/// Runs one client scenario against `issuer` and returns its JSON report.
fn run(program: &mut Command, what: &str, issuer: &str) -> Value {
    let out = program
        .env("ISSUER", issuer)
        .env("CLIENT_ID", CLIENT)
        .env("CLIENT_SECRET", SECRET)
        .env("REDIRECT_URI", REDIRECT)
        .env("USERNAME", "alice")
        .env("PASSWORD", PASSWORD)
        .env("JWT_CLIENT_ID", JWT_CLIENT)
        .env("CLIENT_KEY_FILE", root().join("tests/fixtures/client-es256.pem"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{what}: cannot start it ({e}); run ./scripts/test.sh, which installs the client libraries"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: not a JSON report ({e}): {stdout}"))
}

/// `node tests/interop/js/rp.mjs <scenario>` (openid-client).
fn openid_client(scenario: &str, issuer: &str) -> Value {
    let dir = root().join("tests/interop/js");
    assert!(
        dir.join("node_modules/openid-client").is_dir(),
        "openid-client is not installed: run ./scripts/test.sh (or `npm ci` in tests/interop/js)"
    );
    run(
        Command::new("node").arg(dir.join("rp.mjs")).arg(scenario),
        &format!("openid-client {scenario}"),
        issuer,
    )
}

/// `python tests/interop/py/rp.py <scenario>` (requests-oauth2client).
fn requests_oauth2client(scenario: &str, issuer: &str) -> Value {
    let python = python();
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test.sh (it makes the venv with tests/interop/py/requirements.txt)",
        python.display()
    );
    run(
        Command::new(python)
            .arg(root().join("tests/interop/py/rp.py"))
            .arg(scenario),
        &format!("requests-oauth2client {scenario}"),
        issuer,
    )
}

/// PAR with `client_secret_basic`, PKCE S256, state and nonce; the browser signs in; the code
/// is redeemed and the ID token verified by the library; userinfo answers.
#[test]
fn independent_clients_complete_a_par_login_through_the_load_balancer() {
    let redis = RedisNode::start(&[]);
    let stack = Stack::start(3, &redis, ReplicaOptions::default());
    let issuer = stack.lb.url();
    for report in [
        openid_client("basic", &issuer),
        requests_oauth2client("basic", &issuer),
    ] {
        assert_eq!(report["sub"], "alice", "{report}");
        assert_eq!(report["userinfo_email"], "alice@example.com", "{report}");
        let request_uri = report["request_uri"].as_str().unwrap_or_default();
        assert!(
            request_uri.starts_with("urn:ietf:params:oauth:request_uri:"),
            "{report}"
        );
    }
}

/// One-time use at the point of authorization, as openid-client sees it through the load
/// balancer: a second fresh browser that loaded the URL signs in and the library redeems the
/// code (FAPI 2.0 conformance: par-ensure-reused-request-uri-prior-to-auth-completion-succeeds);
/// 20 browsers that all loaded the form sign in at once, 10 rounds: one code each time.
#[test]
fn openid_client_reuses_a_request_uri_before_authorization_and_races_have_one_winner() {
    let redis = RedisNode::start(&[]);
    let stack = Stack::start(3, &redis, ReplicaOptions::default());
    let issuer = stack.lb.url();
    let reuse = openid_client("reuse", &issuer);
    assert_eq!(reuse["first_load"], 200, "{reuse}");
    assert_eq!(reuse["sub"], "alice", "{reuse}");
    assert_eq!(reuse["first_browser_after"], 400, "{reuse}");
    assert_eq!(reuse["first_browser_error"], "invalid_request_uri", "{reuse}");
    for round in 0..10 {
        let race = openid_client("race", &issuer);
        assert_eq!(race["pages"], 20, "round {round}: {race}");
        assert_eq!(race["codes"], 1, "round {round}: {race}");
        assert_eq!(race["invalid_request_uri"], 19, "round {round}: {race}");
        assert_eq!(race["sub"], "alice", "round {round}: {race}");
    }
}

/// RFC 9449 through the load balancer with nonces required: openid-client pushes with a DPoP
/// proof and `private_key_jwt`, requests-oauth2client with `dpop_jkt`; both get a DPoP-bound
/// token (the library checks `token_type`) and call userinfo with it, answering each
/// `use_dpop_nonce` challenge with a retry that round-robin sends to another replica.
/// openid-client then refreshes (`offline_access`): a rotated refresh token and a new bound
/// access token that userinfo accepts.
#[test]
fn independent_clients_log_in_with_dpop_and_server_nonces_through_the_load_balancer() {
    let redis = RedisNode::start(&[]);
    let stack = Stack::start_with(3, &redis, ReplicaOptions::default(), |config| {
        config.dpop = Some(json!({
            "require_nonce": true,
            "nonce_key": "interop-nonce-key-shared-by-the-three-replicas",
        }));
        let mut jwt_client = ClientEntry {
            jwks: Some(client_jwks()),
            grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
            ..ClientEntry::new(JWT_CLIENT, "unused")
        };
        jwt_client.scopes.push("offline_access".into());
        config.clients.push(jwt_client);
    });
    let issuer = stack.lb.url();
    // openid-client also refreshes (private_key_jwt, DPoP-bound access tokens).
    let js = openid_client("dpop", &issuer);
    for report in [js.clone(), requests_oauth2client("dpop", &issuer)] {
        assert_eq!(report["sub"], "alice", "{report}");
        assert_eq!(
            report["token_type"].as_str().map(str::to_lowercase),
            Some("dpop".into()),
            "{report}"
        );
        assert_eq!(report["userinfo_email"], "alice@example.com", "{report}");
        let jkt = report["cnf_jkt"].as_str().unwrap_or_default();
        assert_eq!(jkt.len(), 43, "the access token is bound: {report}");
    }
    assert_eq!(js["refresh_rotated"], true, "{js}");
    assert_eq!(js["refreshed_userinfo_email"], "alice@example.com", "{js}");
    // Each library met the nonce requirement at least once (openid-client at PAR,
    // requests-oauth2client at token and userinfo), on whichever replicas served them.
    let challenges: f64 = stack
        .replicas
        .iter()
        .map(|r| counter(r.port, "par_dpop_nonce_challenges_total"))
        .sum();
    eprintln!("use_dpop_nonce challenges across the replicas: {challenges}");
    assert!(challenges >= 3.0, "nonce challenges: {challenges}");
}

/// A FAPI 2.0 login through the load balancer against `profile: fapi2` (docs/fapi2.md):
/// openid-client signs the request object (JAR), pushes it with a DPoP proof (nonces
/// required), authenticates with `private_key_jwt`, carries RAR `authorization_details`;
/// the user consents to them; the library redeems the code and verifies the ID token; the
/// DPoP-bound token answers at userinfo. The replicas refuse to start if the configuration
/// broke the profile.
#[test]
fn openid_client_completes_a_fapi2_login_with_jar_par_dpop_and_rar() {
    let redis = RedisNode::start(&[]);
    let stack = Stack::start_with(3, &redis, ReplicaOptions::default(), |config| {
        config.dpop = Some(json!({
            "require_nonce": true,
            "nonce_key": "interop-nonce-key-shared-by-the-three-replicas",
        }));
        config.extra["profile"] = json!("fapi2");
        config.extra["par"] =
            json!({ "require_signed_request_object": true, "request_object_require_typ": true });
        config.extra["tokens"] = json!({ "access_token_lifetime": 300, "refresh_token_rotation": false });
        let mut jwks = client_jwks();
        jwks["keys"][0]["alg"] = json!("ES256");
        config.clients = vec![ClientEntry {
            jwks: Some(jwks),
            extra: json!({
                "dpop_bound_access_tokens": true,
                "authorization_details_types": ["payment_initiation"],
            }),
            ..ClientEntry::new(JWT_CLIENT, "unused")
        }];
    });
    let report = openid_client("fapi2", &stack.lb.url());
    assert_eq!(report["pushed_request_object"], true, "{report}");
    assert_eq!(report["consent_shows_details"], true, "{report}");
    assert_eq!(report["sub"], "alice", "{report}");
    assert_eq!(
        report["token_type"].as_str().map(str::to_lowercase),
        Some("dpop".into()),
        "{report}"
    );
    assert_eq!(
        report["cnf_jkt"].as_str().unwrap_or_default().len(),
        43,
        "{report}"
    );
    assert_eq!(
        report["authorization_details"][0]["type"], "payment_initiation",
        "{report}"
    );
    assert_eq!(report["userinfo_email"], "alice@example.com", "{report}");
    let m = &report["metadata"];
    assert_eq!(m["require_signed_request_object"], true, "{report}");
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"]),
        "{report}"
    );
    assert_eq!(
        m["request_object_signing_alg_values_supported"],
        json!(["ES256", "PS256", "EdDSA"]),
        "{report}"
    );
}

/// The sum of a counter's samples in a replica's `/metrics`.
fn counter(port: u16, name: &str) -> f64 {
    let (_, text) = harness::http_get(port, "/metrics").expect("metrics");
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The public JWK Set of `tests/fixtures/client-es256.pem`.
fn client_jwks() -> Value {
    let pem = std::fs::read(root().join("tests/fixtures/client-es256.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("k1".into());
    json!({ "keys": [jwk] })
}
