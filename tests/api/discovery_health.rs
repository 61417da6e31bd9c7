//! Metadata (RFC 8414, OIDC Discovery, RFC 9126 §5, RFC 9207 §3) and health endpoints.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn both_metadata_documents_tell_the_truth() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let m: Value = res.json().await.unwrap();
        assert_eq!(m["issuer"], app.issuer);
        assert_eq!(
            m["pushed_authorization_request_endpoint"],
            format!("{}/oauth2/par", app.issuer)
        );
        assert_eq!(m["require_pushed_authorization_requests"], true);
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        let methods: Vec<&str> = m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for expected in [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ] {
            assert!(methods.contains(&expected), "{expected} missing from {methods:?}");
        }
        // The advertised PAR endpoint resolves.
        let par = app
            .http
            .get(m["pushed_authorization_request_endpoint"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(par.status(), 405);
    }
}

#[tokio::test]
async fn metadata_follows_the_par_switch() {
    let app = spawn_app_with(Backend::Memory, |s| s.par.required = false).await;
    let m: Value = app.metadata().await;
    assert_eq!(m["require_pushed_authorization_requests"], false);
    // PAR required globally, but one client may skip it: the global flag must not claim
    // that every request is pushed (RFC 9126 §5).
    let app = spawn_app_with(Backend::Memory, |s| {
        s.clients[1].require_pushed_authorization_requests = Some(false);
    })
    .await;
    let m: Value = app.metadata().await;
    assert_eq!(m["require_pushed_authorization_requests"], false);
}

/// Metadata lists what works, nothing more: no empty arrays for unsupported features, the
/// assertion algorithms that are verified, the prompt values that are honoured.
#[tokio::test]
async fn metadata_lists_exactly_what_is_supported() {
    let app = spawn_app().await;
    let m: Value = app.metadata().await;
    for (key, value) in m.as_object().unwrap() {
        assert!(
            value.as_array().is_none_or(|a| !a.is_empty()),
            "{key} is an empty list"
        );
    }
    assert!(m.get("userinfo_signing_alg_values_supported").is_none());
    assert_eq!(
        m["token_endpoint_auth_signing_alg_values_supported"],
        serde_json::json!([
            "ES256", "ES384", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA"
        ])
    );
    assert_eq!(
        m["prompt_values_supported"],
        serde_json::json!(["none", "login", "consent", "select_account"])
    );
    assert_eq!(m["claims_parameter_supported"], true);
}

#[tokio::test]
async fn readiness_follows_redis() {
    let mut app = spawn_app().await;
    assert_eq!(
        app.http.get(app.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        app.http.get(app.url("/readyz")).send().await.unwrap().status(),
        200
    );
    app.redis.as_mut().unwrap().stop();
    assert_eq!(
        app.http.get(app.url("/readyz")).send().await.unwrap().status(),
        503
    );
    assert_eq!(
        app.http.get(app.url("/healthz")).send().await.unwrap().status(),
        200,
        "liveness ignores Redis"
    );
    app.redis.as_mut().unwrap().restart();
    let mut status = 0;
    for _ in 0..50 {
        status = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}
