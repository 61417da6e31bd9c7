//! `POST /oauth2/par` (RFC 9126 §2) against a real Redis: the success contract, every client
//! authentication method, and every malformed push.

use serde_json::{Value, json};

use crate::helpers::*;

/// RFC 9126 §2.2: 201, JSON `{request_uri, expires_in}`, `Cache-Control: no-store`.
#[tokio::test]
async fn a_valid_push_returns_201_with_a_request_uri() {
    let app = spawn_app().await;
    let res = app.push(&push_params("app")).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
    let uri = body["request_uri"].as_str().unwrap();
    let reference = uri
        .strip_prefix("urn:ietf:params:oauth:request_uri:")
        .expect("RFC prefix");
    assert!(reference.len() >= 43, "≥ 256 bits of base64url: {reference}");
}

/// The reference is stored by hash only (docs/architecture.md, "The login flow and its Redis
/// keys"), with the redemption window as TTL.
#[tokio::test]
async fn redis_holds_the_request_by_hash_with_the_window_as_ttl() {
    let app = spawn_app().await;
    let uri = app.push_valid().await;
    let reference = uri.rsplit(':').next().unwrap();
    let redis = app.redis.as_ref().unwrap();
    let keys = redis.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        !keys[0].contains(reference),
        "reference stored in clear: {}",
        keys[0]
    );
    let value: String = redis.cmd(&["GET", &keys[0]]);
    assert!(!value.contains(reference));
    let ttl: i64 = redis.cmd(&["TTL", &keys[0]]);
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn request_uris_are_unique() {
    let app = spawn_app().await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        assert!(seen.insert(app.push_valid().await));
    }
}

#[tokio::test]
async fn lifetime_and_prefix_follow_the_configuration() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.par.request_uri_lifetime = 90;
        s.par.request_uri_prefix = "urn:ietf:params:oauth:par:request_uri:".into();
    })
    .await;
    let body: Value = app.push(&push_params("app")).await.json().await.unwrap();
    assert_eq!(body["expires_in"], 90);
    assert!(
        body["request_uri"]
            .as_str()
            .unwrap()
            .starts_with("urn:ietf:params:oauth:par:request_uri:")
    );
}

// ---- client authentication (RFC 9126 §2: the token endpoint's rules) ----

#[tokio::test]
async fn wrong_or_missing_basic_credentials_get_401_with_a_challenge() {
    let app = spawn_app().await;
    let wrong = app
        .http
        .post(app.url("/oauth2/par"))
        .basic_auth("app", Some("wrong-secret"))
        .form(&push_params("app"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.headers()["www-authenticate"], "Basic realm=\"par-server\"");
    assert_oauth_error(wrong, 401, "invalid_client").await;
    let unknown = app
        .http
        .post(app.url("/oauth2/par"))
        .basic_auth("nobody", Some(SECRET))
        .form(&push_params("nobody"))
        .send()
        .await
        .unwrap();
    assert_oauth_error(unknown, 401, "invalid_client").await;
    let missing = app.push_unauthenticated(&push_params("app")).await;
    assert_oauth_error(missing, 401, "invalid_client").await;
}

/// RFC 6749 §2.3.1: both parts of Basic credentials are form-urlencoded.
#[tokio::test]
async fn basic_credentials_are_percent_decoded() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.clients[0].client_id = "my app:1".into();
        s.clients[0].client_secret = Some(par_server::secret::Secret::new("p@ss word:+%/"));
    })
    .await;
    let res = app
        .http
        .post(app.url("/oauth2/par"))
        .basic_auth("my%20app%3A1", Some("p%40ss+word%3A%2B%25%2F"))
        .form(&with(push_params("x"), &[("client_id", Some("my app:1"))]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn client_secret_post_works_and_only_for_its_client() {
    let app = spawn_app().await;
    let post = with(push_params("post-app"), &[("client_secret", Some(SECRET))]);
    assert_eq!(app.push_unauthenticated(&post).await.status(), 201);
    // `app` is registered for client_secret_basic: the post method is refused.
    let wrong_method = with(push_params("app"), &[("client_secret", Some(SECRET))]);
    assert_oauth_error(
        app.push_unauthenticated(&wrong_method).await,
        401,
        "invalid_client",
    )
    .await;
}

#[tokio::test]
async fn two_authentication_methods_at_once_are_refused() {
    let app = spawn_app().await;
    let res = app
        .push(&with(push_params("app"), &[("client_secret", Some(SECRET))]))
        .await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn public_clients_push_with_pkce_and_no_secret() {
    let app = spawn_app().await;
    assert_eq!(
        app.push_unauthenticated(&push_params("public-app"))
            .await
            .status(),
        201
    );
    let no_pkce = with(
        push_params("public-app"),
        &[("code_challenge", None), ("code_challenge_method", None)],
    );
    assert_oauth_error(app.push_unauthenticated(&no_pkce).await, 400, "invalid_request").await;
}

fn assertion_push(assertion: &str) -> Vec<(String, String)> {
    with_assertion(push_params("jwt-app"), assertion)
}

/// RFC 9126 §2: the issuer, the token endpoint URL and the PAR endpoint URL are all
/// acceptable audiences; FAPI 2.0 §5.3.2.1: also as a member of an array.
#[tokio::test]
async fn private_key_jwt_accepts_the_three_audiences() {
    let app = spawn_app().await;
    let issuer = app.issuer.clone();
    for aud in [
        json!(issuer),
        json!(format!("{issuer}/oauth2/token")),
        json!(format!("{issuer}/oauth2/par")),
        json!(["https://other.example", issuer]),
    ] {
        let jwt = client_assertion("client-es256.pem", aud.clone(), json!({}));
        let res = app.push_unauthenticated(&assertion_push(&jwt)).await;
        assert_eq!(res.status(), 201, "aud {aud}: {}", res.text().await.unwrap());
    }
}

#[tokio::test]
async fn bad_client_assertions_are_invalid_client() {
    let app = spawn_app().await;
    let issuer = json!(app.issuer.clone());
    let now = par_server::clock::now();
    let cases = [
        (
            "foreign audience",
            client_assertion("client-es256.pem", json!("https://evil.example"), json!({})),
        ),
        (
            "expired",
            client_assertion("client-es256.pem", issuer.clone(), json!({"exp": now - 120})),
        ),
        (
            "issued 61 s in the future",
            client_assertion("client-es256.pem", issuer.clone(), json!({"iat": now + 61})),
        ),
        (
            "another key",
            client_assertion("other-es256.pem", issuer.clone(), json!({})),
        ),
        (
            "iss differs from sub",
            client_assertion("client-es256.pem", issuer.clone(), json!({"iss": "app"})),
        ),
        ("not a JWT", "not.a.jwt".to_owned()),
    ];
    for (why, jwt) in cases {
        let res = app.push_unauthenticated(&assertion_push(&jwt)).await;
        assert_eq!(res.status(), 401, "{why}");
        assert_oauth_error(res, 401, "invalid_client").await;
    }
}

/// RFC 7515 §4.1.11: an unknown `crit` header is refused; RFC 7517 §4.4: a key registered
/// with an `alg` verifies only that algorithm.
#[tokio::test]
async fn assertions_with_crit_or_against_the_keys_alg_are_invalid_client() {
    let app = spawn_app().await;
    let jwt = client_assertion("client-es256.pem", json!(app.issuer.clone()), json!({}));
    let claims = jwt.split('.').nth(1).unwrap();
    let b64 = |v: Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let header = b64(json!({"alg": "ES256", "kid": "k1", "crit": ["urn:example:x"], "urn:example:x": 1}));
    let message = format!("{header}.{claims}");
    let pem = std::fs::read(fixture("client-es256.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::ES256).unwrap();
    let res = app
        .push_unauthenticated(&assertion_push(&format!("{message}.{signature}")))
        .await;
    let body = assert_oauth_error(res, 401, "invalid_client").await;
    assert!(
        body["error_description"].as_str().unwrap().contains("crit"),
        "{body}"
    );

    for (key_alg, status) in [("ES384", 401), ("ES256", 201)] {
        let app = spawn_app_with(Backend::Memory, |s| {
            let mut jwks = jwks_of("client-es256.pem", "k1");
            jwks["keys"][0]["alg"] = json!(key_alg);
            s.clients[2].jwks = Some(jwks);
        })
        .await;
        let jwt = client_assertion("client-es256.pem", json!(app.issuer.clone()), json!({}));
        let res = app.push_unauthenticated(&assertion_push(&jwt)).await;
        assert_eq!(res.status(), status, "key alg {key_alg}");
    }
}

/// FAPI 2.0 §5.3.2.1: `iat` up to 10 s in the future is accepted.
#[tokio::test]
async fn assertions_slightly_in_the_future_are_accepted() {
    let app = spawn_app().await;
    let jwt = client_assertion(
        "client-es256.pem",
        json!(app.issuer.clone()),
        json!({"iat": par_server::clock::now() + 9}),
    );
    assert_eq!(
        app.push_unauthenticated(&assertion_push(&jwt)).await.status(),
        201
    );
}

/// RFC 7523 §3: a `jti` is single use — across every replica, since it is recorded in Redis.
#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let app = spawn_app().await;
    let jwt = client_assertion("client-es256.pem", json!(app.issuer.clone()), json!({}));
    assert_eq!(
        app.push_unauthenticated(&assertion_push(&jwt)).await.status(),
        201
    );
    let replay = app.push_unauthenticated(&assertion_push(&jwt)).await;
    assert_oauth_error(replay, 401, "invalid_client").await;
}

// ---- malformed pushes: the right OAuth error, never a redirect, never a 5xx ----

#[tokio::test]
async fn a_pushed_request_uri_is_refused() {
    let app = spawn_app().await;
    let res = app
        .push(&with(
            push_params("app"),
            &[("request_uri", Some("urn:ietf:params:oauth:request_uri:abc"))],
        ))
        .await;
    assert_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_duplicated_parameter_is_refused() {
    let app = spawn_app().await;
    let mut params = push_params("app");
    params.push(("scope".into(), "openid".into()));
    assert_oauth_error(app.push(&params).await, 400, "invalid_request").await;
}

#[tokio::test]
async fn client_id_must_match_the_authenticated_client() {
    let app = spawn_app().await;
    let other = with(push_params("app"), &[("client_id", Some("post-app"))]);
    assert_oauth_error(app.push(&other).await, 400, "invalid_request").await;
    let missing = with(push_params("app"), &[("client_id", None)]);
    assert_oauth_error(app.push(&missing).await, 400, "invalid_request").await;
}

/// RFC 9700 §2.1: exact matching; FAPI 2.0 §5.3.2.2: redirect_uri required.
#[tokio::test]
async fn unregistered_redirect_uris_are_refused_without_redirecting() {
    let app = spawn_app().await;
    for uri in [
        None,
        Some("https://app.example/callback/"),
        Some("https://APP.example/callback"),
        Some("https://app.example/callback?x=1"),
        Some("https://app.example/callback/../callback"),
        Some("https://evil.example/callback"),
        Some("http://app.example/callback"),
    ] {
        let res = app
            .push(&with(push_params("app"), &[("redirect_uri", uri)]))
            .await;
        assert_oauth_error(res, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn invalid_authorization_parameters_get_their_error_codes() {
    let app = spawn_app().await;
    let long_state = "s".repeat(2000);
    type Change<'a> = Vec<(&'a str, Option<&'a str>)>;
    let table: Vec<(Change, &str)> = vec![
        (vec![("scope", Some("openid admin"))], "invalid_scope"),
        (vec![("scope", None)], "invalid_scope"),
        (
            vec![("response_type", Some("token"))],
            "unsupported_response_type",
        ),
        (vec![("response_type", None)], "invalid_request"),
        (
            vec![("code_challenge", None), ("code_challenge_method", None)],
            "invalid_request",
        ),
        (vec![("code_challenge_method", Some("plain"))], "invalid_request"),
        (vec![("code_challenge_method", None)], "invalid_request"),
        (vec![("code_challenge", Some("short"))], "invalid_request"),
        (vec![("state", Some(long_state.as_str()))], "invalid_request"),
        (vec![("prompt", Some("none login"))], "invalid_request"),
        (
            vec![("request", Some("eyJhbGciOiJub25lIn0.e30."))],
            "invalid_request_object",
        ),
    ];
    for (change, code) in table {
        let res = app.push(&with(push_params("app"), &change)).await;
        assert_eq!(res.status(), 400, "{change:?}");
        assert_oauth_error(res, 400, code).await;
    }
}

/// RFC 9126 §2.1 (PAR-03): extension parameters are accepted, `resource` may repeat; a
/// resource the client is not registered for is `invalid_target` (RFC 8707 §2).
#[tokio::test]
async fn extension_parameters_are_accepted() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.clients[0].resources = vec!["https://api.example/a".into(), "https://api.example/b".into()];
    })
    .await;
    let mut params = with(
        push_params("app"),
        &[
            ("prompt", Some("login")),
            ("max_age", Some("300")),
            ("claims", Some(r#"{"id_token":{"email":null}}"#)),
        ],
    );
    params.push(("resource".into(), "https://api.example/a".into()));
    params.push(("resource".into(), "https://api.example/b".into()));
    assert_eq!(app.push(&params).await.status(), 201);
    params.push(("resource".into(), "https://api.example/c".into()));
    assert_oauth_error(app.push(&params).await, 400, "invalid_target").await;
}

/// RFC 9126 §2.3 / RFC 9110: 405 with `Allow`, 413 over the body limit, 400 for a JSON body.
#[tokio::test]
async fn wrong_method_size_and_content_type() {
    let app = spawn_app().await;
    let get = app.http.get(app.url("/oauth2/par")).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let big = with(
        push_params("app"),
        &[("login_hint", Some(&"x".repeat(70 * 1024)))],
    );
    let res = app.push(&big).await;
    assert_eq!(res.status(), 413);
    let json_body = app
        .http
        .post(app.url("/oauth2/par"))
        .basic_auth("app", Some(SECRET))
        .json(&json!({"client_id": "app"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(json_body, 400, "invalid_request").await;
}

#[tokio::test]
async fn hostile_bodies_never_cause_a_server_error() {
    let app = spawn_app().await;
    for body in [
        "%",
        "a=%ZZ",
        "&&&&",
        "=x",
        "client_id=%00",
        "\u{0}\u{1}",
        "scope=%E2%28%A1",
    ] {
        let res = app
            .http
            .post(app.url("/oauth2/par"))
            .basic_auth("app", Some(SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{body:?} → {}", res.status());
    }
}

/// Brief §4: Redis down → 503 temporarily_unavailable (not a hang, not a 500); service
/// resumes by itself when Redis returns.
#[tokio::test]
async fn redis_outage_gives_503_and_recovers_without_restart() {
    let mut app = spawn_app().await;
    assert_eq!(app.push(&push_params("app")).await.status(), 201);
    app.redis.as_mut().unwrap().stop();
    let res = app.push(&push_params("app")).await;
    assert_eq!(
        res.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert_oauth_error(res, 503, "temporarily_unavailable").await;
    app.redis.as_mut().unwrap().restart();
    let mut status = 0;
    for _ in 0..50 {
        status = app.push(&push_params("app")).await.status().as_u16();
        if status == 201 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 201, "service did not recover after Redis came back");
}

/// The in-memory backend serves the same endpoint (zero-config demo).
#[tokio::test]
async fn the_in_memory_store_serves_pushes() {
    let app = spawn_app_with(Backend::Memory, |_| {}).await;
    assert_eq!(app.push(&push_params("app")).await.status(), 201);
}
