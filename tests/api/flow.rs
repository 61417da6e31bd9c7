//! End to end through the real login — push → authorize → login form → code → token →
//! userinfo — with a cookie-keeping client against real Redis, the ID token verified by an
//! independent library (`openidconnect`) from the published JWKS.

use openidconnect::core::CoreJwsSigningAlgorithm;
use serde_json::Value;

use crate::helpers::*;
use crate::token::verify_token_response;

async fn code_from(res: reqwest::Response, app: &TestApp) -> String {
    assert_eq!(res.status(), 303);
    let q = location_params(&res);
    assert_eq!(q["iss"], app.issuer);
    q["code"].clone()
}

#[tokio::test]
async fn the_whole_login_from_push_to_userinfo() {
    let app = spawn_app().await;
    let browser = http_client();
    let code = code_from(app.full_login(&browser).await, &app).await;
    let res = app.post_token(&token_params(&code)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let tokens: Value = res.json().await.unwrap();
    let access_token = tokens["access_token"].as_str().unwrap();
    let claims = verify_token_response(&app, &tokens, CoreJwsSigningAlgorithm::EcdsaP256Sha256).await;
    assert_eq!(claims["sub"], ALICE_SUB);
    assert_eq!(claims["email"], "alice@example.com");
    assert!(claims["auth_time"].as_u64().unwrap() <= par_server::clock::now());
    let info: Value = app.userinfo(access_token).await.json().await.unwrap();
    assert_eq!(info["sub"], ALICE_SUB);
    assert_eq!(info["name"], "Alice Example");
}

/// Replicas share nothing but Redis and keys: each step on another one.
#[tokio::test]
async fn every_step_can_land_on_a_different_replica() {
    let a = spawn_app().await;
    let b = a.replica(|_| {}).await;
    let c = a.replica(|_| {}).await;
    let browser = http_client();
    let uri = a.push_valid().await;
    let html = b.authorize(&browser, "app", &uri).await.text().await.unwrap();
    let code = code_from(c.login(&browser, &html, "alice", PASSWORD).await, &a).await;
    let tokens: Value = a.post_token(&token_params(&code)).await.json().await.unwrap();
    let access_token = tokens["access_token"].as_str().unwrap();
    verify_token_response(&c, &tokens, CoreJwsSigningAlgorithm::EcdsaP256Sha256).await;
    assert_eq!(b.userinfo(access_token).await.status(), 200);
}

/// RFC 6749 §4.1.2 / RFC 9700 §4.2.4: a replayed code fails and the tokens it produced stop
/// working — here after a real login, with the replay on another replica.
#[tokio::test]
async fn a_code_replayed_after_a_real_login_revokes_its_tokens() {
    let a = spawn_app().await;
    let b = a.replica(|_| {}).await;
    let code = code_from(a.full_login(&http_client()).await, &a).await;
    let tokens: Value = a.post_token(&token_params(&code)).await.json().await.unwrap();
    let access_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(a.userinfo(access_token).await.status(), 200);
    assert_oauth_error(b.post_token(&token_params(&code)).await, 400, "invalid_grant").await;
    assert_eq!(a.userinfo(access_token).await.status(), 401);
}

/// An SSO login yields tokens whose `auth_time` is the original password login's.
#[tokio::test]
async fn an_sso_login_keeps_the_original_auth_time() {
    let app = spawn_app().await;
    let browser = http_client();
    let first = code_from(app.full_login(&browser).await, &app).await;
    let first: Value = app.post_token(&token_params(&first)).await.json().await.unwrap();
    let uri = app.push_valid().await;
    let second = code_from(app.authorize(&browser, "app", &uri).await, &app).await;
    let second: Value = app.post_token(&token_params(&second)).await.json().await.unwrap();
    let auth_time =
        |t: &Value| crate::token::jwt_part(t["id_token"].as_str().unwrap(), 1)["auth_time"].clone();
    assert_eq!(auth_time(&first), auth_time(&second));
}

/// A wrong verifier after a real login is refused and burns the code (one attempt only).
#[tokio::test]
async fn a_wrong_pkce_verifier_after_a_real_login_is_refused() {
    let app = spawn_app().await;
    let code = code_from(app.full_login(&http_client()).await, &app).await;
    let wrong = with(token_params(&code), &[("code_verifier", Some(&"x".repeat(43)))]);
    assert_oauth_error(app.post_token(&wrong).await, 400, "invalid_grant").await;
    // Nothing was consumed: the rightful verifier redeems it once, then it is spent.
    assert_eq!(app.post_token(&token_params(&code)).await.status(), 200);
    assert_oauth_error(app.post_token(&token_params(&code)).await, 400, "invalid_grant").await;
}

/// Pushed parameters that do something (OIDC Core §3.1.2.1, §5.5; RFC 8707): `login_hint`
/// prefills the username; `claims` releases single claims in the ID token and at userinfo
/// without their scope; `resource` becomes the access token's `aud`; `select_account`
/// shows the form to a signed-in browser.
#[tokio::test]
async fn pushed_parameters_show_in_the_page_and_the_tokens() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.clients[0].resources = vec!["https://api.example/a".into()];
    })
    .await;
    let browser = http_client();
    let claims = r#"{"id_token":{"email":{"essential":true}},"userinfo":{"name":null}}"#;
    let params = with(
        push_params("app"),
        &[
            ("scope", Some("openid")),
            ("login_hint", Some("alice")),
            ("claims", Some(claims)),
        ],
    );
    let uri = request_uri_of(app.push(&params).await).await;
    let html = app.authorize(&browser, "app", &uri).await.text().await.unwrap();
    assert_eq!(form_value(&html, "username").as_deref(), Some("alice"));
    let code = code_from(app.login(&browser, &html, "alice", PASSWORD).await, &app).await;
    let tokens: Value = app.post_token(&token_params(&code)).await.json().await.unwrap();
    let id = crate::token::jwt_part(tokens["id_token"].as_str().unwrap(), 1);
    assert_eq!(id["email"], "alice@example.com", "asked for by name");
    assert!(
        id.get("name").is_none(),
        "neither scoped nor asked for in the ID token"
    );
    let info: Value = app
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["name"], "Alice Example", "asked for by name at userinfo");
    assert!(info.get("email").is_none());

    // The signed-in browser: select_account shows the form; without it, SSO issues the code.
    let select = with(push_params("app"), &[("prompt", Some("select_account"))]);
    let uri = request_uri_of(app.push(&select).await).await;
    let page = app.authorize(&browser, "app", &uri).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(r#"name="password""#));

    let resource = with(push_params("app"), &[("resource", Some("https://api.example/a"))]);
    let uri = request_uri_of(app.push(&resource).await).await;
    let code = code_from(app.authorize(&browser, "app", &uri).await, &app).await;
    let tokens: Value = app.post_token(&token_params(&code)).await.json().await.unwrap();
    let at = crate::token::jwt_part(tokens["access_token"].as_str().unwrap(), 1);
    assert_eq!(at["aud"], "https://api.example/a");
}
