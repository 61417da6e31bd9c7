//! Interoperability: independent, widely used client libraries complete a login against the
//! real `par-server` binary — three replicas behind HAProxy on one Redis, the stack of the
//! scale suite — as a relying party would deploy them:
//!
//! - npm `openid-client` 6 (a certified OpenID relying-party library, on `oauth4webapi`):
//!   `tests/interop/js/rp.mjs`;
//! - PyPI `requests-oauth2client`: `tests/interop/py/rp.py`.
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

use harness::{CLIENT, PASSWORD, REDIRECT, ReplicaOptions, SECRET, Stack};
use serde_json::Value;
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

/// Runs one client scenario against `issuer` and returns its JSON report.
fn run(program: &mut Command, what: &str, issuer: &str) -> Value {
    let out = program
        .env("ISSUER", issuer)
        .env("CLIENT_ID", CLIENT)
        .env("CLIENT_SECRET", SECRET)
        .env("REDIRECT_URI", REDIRECT)
        .env("USERNAME", "alice")
        .env("PASSWORD", PASSWORD)
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
