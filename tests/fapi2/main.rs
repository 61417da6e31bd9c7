//! `profile: fapi2` against the real binary: the sample FAPI 2.0 deployment
//! (`deploy/config/fapi2.yaml`) passes `check-config` and its conformance report shows every
//! requirement met; each configuration that breaks a rule is refused at start, naming the
//! key, and the report says which requirement and how.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_par-server");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The sample configuration with its mounted signing key replaced by a test fixture.
fn sample() -> String {
    let text = std::fs::read_to_string(root().join("deploy/config/fapi2.yaml")).unwrap();
    let key = root().join("tests/fixtures/signing-es256.pem");
    text.replace("/etc/par-server/keys/signing-key.pem", key.to_str().unwrap())
}

/// The sample without the client's `jwks` block (up to its `redirect_uris`).
fn without_jwks(config: &str) -> String {
    let start = config.find("    jwks:\n").unwrap();
    let end = config[start..].find("    redirect_uris:").unwrap() + start;
    format!("{}{}", &config[..start], &config[end..])
}

fn check(dir: &Path, config: &str, report: Option<&Path>) -> Output {
    let file = dir.join("config.yaml");
    std::fs::write(&file, config).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("check-config").arg(&file);
    if let Some(r) = report {
        cmd.arg("--report").arg(r);
    }
    cmd.output().unwrap()
}

#[test]
fn the_sample_fapi2_deployment_passes_and_its_report_shows_every_requirement_met() {
    let dir = tempfile::tempdir().unwrap();
    let report: PathBuf = dir.path().join("report.md");
    let out = check(dir.path(), &sample(), Some(&report));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("profile: fapi2 (enforced at start)"), "{text}");
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| requirement"))
        .collect();
    assert!(rows.len() >= 15, "{text}");
    assert!(rows.iter().all(|r| r.contains("| yes |")), "{text}");
}

/// Each break of the profile, the key `check-config` must name, and the report row.
#[test]
fn each_broken_rule_is_refused_at_start_naming_the_key() {
    let base = sample();
    let rsa1024 = r#"{ kty: RSA, kid: "bank-app-1", alg: PS256, e: "AQAB", n: "wRkvsYtDJ3NVt6Bz1tHd6BL2bfE0QNkwzcL0sJWnn7gi2vvW7yNL4bDuJRLYxk9TXmwv-b2BQwDwrXA3zQbOChgXcBy-RXbhE4Ej4Wjb8XrQVGQ6T6_Zq1jDbjC9zhgFUFaTeYojBYwsN7zrlmgqBCsu6A68S_OkHDzNS9wmE_E" }"#;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "ensure_client_secret_basic_is_refused",
            without_jwks(&base).replace(
                "token_endpoint_auth_method: private_key_jwt",
                "token_endpoint_auth_method: client_secret_basic\n    client_secret: \"a long random client secret\"",
            ),
            "clients[0].token_endpoint_auth_method",
        ),
        (
            "PAR optional for a client",
            base.replace("    require_pkce: true\n", "    require_pkce: true\n    require_pushed_authorization_requests: false\n"),
            "clients[0].require_pushed_authorization_requests",
        ),
        ("PKCE optional", base.replace("require_pkce: true", "require_pkce: false"), "clients[0].require_pkce"),
        (
            "bearer access tokens allowed",
            base.replace("dpop_bound_access_tokens: true", "dpop_bound_access_tokens: false"),
            "clients[0].dpop_bound_access_tokens",
        ),
        (
            "refresh tokens rotating",
            base.replace("refresh_token_rotation: false", "refresh_token_rotation: true"),
            "tokens.refresh_token_rotation",
        ),
        (
            "RS256 DPoP proofs",
            base.replace("signing_algs: [ES256, PS256, EdDSA]", "signing_algs: [ES256, RS256]"),
            "dpop.signing_algs",
        ),
        (
            "access tokens living 15 minutes",
            base.replace("access_token_lifetime: 300", "access_token_lifetime: 900"),
            "tokens.access_token_lifetime",
        ),
        (
            "plain authorization requests allowed",
            base.replace("require_signed_request_object: true", "require_signed_request_object: false"),
            "clients[0].require_signed_request_object",
        ),
        (
            "request objects living 2 hours",
            base.replace("request_object_max_lifetime: 3600", "request_object_max_lifetime: 7200"),
            "par.request_object_max_lifetime",
        ),
        (
            "ensure_signed_client_assertion_with_rs256_fails (client key alg RS256)",
            base.replace("alg: ES256\n          use: sig", "alg: RS256\n          use: sig"),
            "clients[0].jwks",
        ),
        (
            "client key without alg",
            base.replace("          alg: ES256\n          use: sig", "          use: sig"),
            "clients[0].jwks",
        ),
        (
            "client RSA key of 1024 bits",
            base.replace("        - kty: EC", &format!("        - {rsa1024}\n        - kty: EC")),
            "clients[0].jwks",
        ),
        (
            "RS256 signing key",
            base.replace("alg: ES256\n    pem_file", "alg: RS256\n    pem_file")
                .replace("signing-es256.pem", "signing-rsa2048.pem"),
            "keys",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, config, key) in cases {
        let out = check(dir.path(), &config, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains("profile fapi2"),
            "{name}: {stderr}"
        );
        // Without the profile the same configuration starts, and the report names the gap.
        let unenforced = config.replace("profile: fapi2", "profile: none");
        let report = dir.path().join("report.md");
        let out = check(dir.path(), &unenforced, Some(&report));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&report).unwrap();
        assert!(
            text.contains("profile: none (not enforced)") && text.contains("| **no** |"),
            "{name}: {text}"
        );
        assert!(text.contains(&format!("change `{key}`")), "{name}: {text}");
    }
}
