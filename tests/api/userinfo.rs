//! `GET`/`POST /oauth2/userinfo` (OIDC Core §5.3) with RFC 6750 §3 errors.

use par_server::oauth::token::{ACCESS_TOKEN_TYP, AccessTokenClaims, Audience};
use serde_json::Value;

use crate::helpers::*;

/// OIDC Core §5.4: the claims released depend on the token's scope.
#[tokio::test]
async fn claims_follow_the_scope_of_the_token() {
    let app = spawn_app().await;
    let body = app.tokens().await;
    let res = app.userinfo(body["access_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let claims: Value = res.json().await.unwrap();
    assert_eq!(claims["sub"], ALICE_SUB);
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(claims["preferred_username"], "alice");

    let mut record = code_record("app");
    record.scope = vec!["openid".into(), "email".into()];
    let code = app.issue_code(record).await;
    let body: Value = app.post_token(&token_params(&code)).await.json().await.unwrap();
    let claims: Value = app
        .userinfo(body["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claims["email"], "alice@example.com");
    assert!(claims.get("name").is_none(), "no profile scope: {claims}");
}

/// POST with the header works the same (OIDC Core §5.3.1).
#[tokio::test]
async fn post_with_a_bearer_header_works() {
    let app = spawn_app().await;
    let at = app.tokens().await["access_token"].as_str().unwrap().to_owned();
    let res = app
        .http
        .post(app.url("/oauth2/userinfo"))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// RFC 6750 §3.1: no credentials → 401 with a bare `Bearer` challenge, no error code.
#[tokio::test]
async fn a_missing_token_gets_a_bare_challenge() {
    let app = spawn_app().await;
    for res in [
        app.http.get(app.url("/oauth2/userinfo")).send().await.unwrap(),
        app.http
            .get(app.url("/oauth2/userinfo"))
            .basic_auth("app", Some(SECRET))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(res.status(), 401);
        let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert!(!challenge.contains("error="), "{challenge}");
    }
}

/// RFC 6750 §3.1 `invalid_token` for anything that is not a valid access token of ours.
#[tokio::test]
async fn garbage_foreign_and_id_tokens_are_invalid_token() {
    let app = spawn_app().await;
    let body = app.tokens().await;
    let id_token = body["id_token"].as_str().unwrap();
    let at = body["access_token"].as_str().unwrap();
    let mut tampered = at.to_owned();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let foreign = client_assertion(
        "client-es256.pem",
        Value::String(app.issuer.clone()),
        serde_json::json!({}),
    );
    for (token, why) in [
        ("garbage", "not a JWT"),
        ("a.b.c", "not base64 JSON"),
        (id_token, "an ID token is not an access token (typ)"),
        (tampered.as_str(), "bad signature"),
        (foreign.as_str(), "signed by someone else"),
    ] {
        let res = app.userinfo(token).await;
        assert_eq!(res.status(), 401, "{why}");
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\"",
            "{why}"
        );
        assert_oauth_error(res, 401, "invalid_token").await;
    }
}

fn claims(app: &TestApp, exp: u64, aud: &str, scope: &str) -> AccessTokenClaims {
    let now = par_server::clock::now();
    AccessTokenClaims {
        iss: app.issuer.clone(),
        sub: ALICE_SUB.into(),
        aud: Audience::One(aud.into()),
        exp,
        iat: now - 100,
        jti: "j".into(),
        client_id: "app".into(),
        scope: scope.into(),
        auth_time: now - 100,
        gid: "g".into(),
        userinfo_claims: Vec::new(),
        authorization_details: None,
        cnf: None,
    }
}

/// Tokens signed with our own key but expired, for another audience or issuer, or without
/// `openid`, are refused: `exp`/`aud`/`iss` → 401, scope → 403 `insufficient_scope`.
#[tokio::test]
async fn expired_misaddressed_and_under_scoped_tokens_are_refused() {
    let app = spawn_app().await;
    let userinfo = format!("{}/oauth2/userinfo", app.issuer);
    let now = par_server::clock::now();
    let sign = |c: &AccessTokenClaims| app.state.signing_keys.sign(Some(ACCESS_TOKEN_TYP), c).unwrap();

    let ok = sign(&claims(&app, now + 60, &userinfo, "openid"));
    assert_eq!(app.userinfo(&ok).await.status(), 200, "control");

    // RFC 8725 §3.11 / RFC 9068 §4: a JWT of ours with another `typ` is not an access token.
    let wrong_typ = app
        .state
        .signing_keys
        .sign(Some("JWT"), &claims(&app, now + 60, &userinfo, "openid"))
        .unwrap();
    assert_oauth_error(app.userinfo(&wrong_typ).await, 401, "invalid_token").await;

    let expired = sign(&claims(&app, now - 1, &userinfo, "openid"));
    assert_oauth_error(app.userinfo(&expired).await, 401, "invalid_token").await;

    let other_aud = sign(&claims(&app, now + 60, "https://api.example", "openid"));
    assert_oauth_error(app.userinfo(&other_aud).await, 401, "invalid_token").await;

    let mut c = claims(&app, now + 60, &userinfo, "openid");
    c.iss = "https://evil.example".into();
    assert_oauth_error(app.userinfo(&sign(&c)).await, 401, "invalid_token").await;

    let mut c = claims(&app, now + 60, &userinfo, "openid");
    c.sub = "nobody".into();
    assert_oauth_error(app.userinfo(&sign(&c)).await, 401, "invalid_token").await;

    let no_openid = sign(&claims(&app, now + 60, &userinfo, "email"));
    let res = app.userinfo(&no_openid).await;
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\""
    );
    assert_oauth_error(res, 403, "insufficient_scope").await;
}

/// Redis down → 503, not a false "valid" or "invalid".
#[tokio::test]
async fn redis_down_is_503() {
    let mut app = spawn_app().await;
    let at = app.tokens().await["access_token"].as_str().unwrap().to_owned();
    app.redis.as_mut().unwrap().stop();
    assert_oauth_error(app.userinfo(&at).await, 503, "temporarily_unavailable").await;
}

/// RFC 9110 §15.5.6: GET and POST only.
#[tokio::test]
async fn other_methods_are_405() {
    let app = spawn_app().await;
    let res = app.http.delete(app.url("/oauth2/userinfo")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, POST");
}
