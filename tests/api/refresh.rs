//! Refresh tokens (RFC 6749 §6, RFC 9700 §4.14) and revocation (RFC 7009) through the real
//! endpoints on real Redis: issued only when the client is registered for them and asked for
//! `offline_access`; rotated on every use, on any replica; a rotated token presented again
//! revokes the whole grant, its access tokens included; a public client's refresh token is
//! bound to its DPoP key; `/revoke` ends a grant or one access token.

use serde_json::{Value, json};

use crate::dpop::DpopKey;
use crate::helpers::*;

/// `app`, `post-app` and `public-app` may use refresh tokens and ask for `offline_access`.
fn with_refresh(s: &mut par_server::config::Settings) {
    for c in &mut s.clients {
        if ["app", "post-app", "public-app"].contains(&c.client_id.as_str()) {
            c.grant_types.push("refresh_token".into());
            c.scopes.push("offline_access".into());
        }
    }
}

async fn app_with_refresh() -> TestApp {
    spawn_app_with(Backend::Redis, with_refresh).await
}

/// A code for `client_id` whose grant asked for `offline_access`.
fn offline_record(client_id: &str) -> par_server::oauth::code::AuthorizationCode {
    let mut record = code_record(client_id);
    record.scope.push("offline_access".into());
    record
}

fn refresh_params(token: &str) -> Vec<(String, String)> {
    with(
        vec![],
        &[
            ("grant_type", Some("refresh_token")),
            ("refresh_token", Some(token)),
        ],
    )
}

/// Redeems an offline code for `app`: the token response.
async fn offline_tokens(app: &TestApp) -> Value {
    let code = app.issue_code(offline_record("app")).await;
    let res = app.post_token(&token_params(&code)).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}"))
}

async fn revoke(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth2/revoke"))
        .basic_auth("app", Some(SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn metadata_advertises_refresh_and_revocation() {
    let app = app_with_refresh().await;
    let m = app.metadata().await;
    assert_eq!(
        m["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(m["revocation_endpoint"], format!("{}/oauth2/revoke", app.issuer));
    // Without a client registered for refresh tokens, metadata does not claim the grant.
    let plain = spawn_app().await;
    assert_eq!(
        plain.metadata().await["grant_types_supported"],
        json!(["authorization_code"])
    );
}

/// RFC 9700 §4.14.2: each use returns a new refresh token, on whichever replica; the
/// retired one presented again revokes the grant: the newest refresh token and every access
/// token of the grant stop working.
#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_whole_grant() {
    let a = app_with_refresh().await;
    let b = a.replica(|_| {}).await;
    let first = offline_tokens(&a).await;
    let rt1 = str_of(&first, "refresh_token");
    assert!(first["scope"].as_str().unwrap().contains("offline_access"));

    let res = b.post_token(&refresh_params(rt1)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let second: Value = res.json().await.unwrap();
    let rt2 = str_of(&second, "refresh_token");
    assert_ne!(rt1, rt2, "rotated");
    assert_eq!(second["token_type"], "Bearer");
    assert!(second.get("id_token").is_none());
    let at2 = str_of(&second, "access_token");
    assert_eq!(a.userinfo(at2).await.status(), 200);

    // The retired token again, on the other replica: refused, and the grant revoked.
    assert_oauth_error(a.post_token(&refresh_params(rt1)).await, 400, "invalid_grant").await;
    assert_oauth_error(b.post_token(&refresh_params(rt2)).await, 400, "invalid_grant").await;
    for at in [str_of(&first, "access_token"), at2] {
        assert_oauth_error(b.userinfo(at).await, 401, "invalid_token").await;
    }
}

/// Without rotation (`tokens.refresh_token_rotation: false`, FAPI 2.0 §5.3.2.1) the same
/// token keeps working, on any replica, so a client that lost a response can retry; revoking
/// it still ends the grant.
#[tokio::test]
async fn without_rotation_a_retry_with_the_same_token_succeeds() {
    let a = spawn_app_with(Backend::Redis, |s| {
        with_refresh(s);
        s.tokens.refresh_token_rotation = false;
    })
    .await;
    let b = a.replica(|_| {}).await;
    let first = offline_tokens(&a).await;
    let rt = str_of(&first, "refresh_token");
    for app in [&b, &a, &b] {
        let res = app.post_token(&refresh_params(rt)).await;
        assert_eq!(res.status(), 200);
        let next: Value = res.json().await.unwrap();
        assert_eq!(str_of(&next, "refresh_token"), rt, "not rotated");
        assert_eq!(app.userinfo(str_of(&next, "access_token")).await.status(), 200);
    }
    assert_eq!(revoke(&a, rt).await.status(), 200);
    assert_oauth_error(b.post_token(&refresh_params(rt)).await, 400, "invalid_grant").await;
}

/// Refresh tokens only for clients registered for the grant that asked for `offline_access`
/// (OIDC Core §11); a public client only with a DPoP key to bind it to.
#[tokio::test]
async fn refresh_tokens_are_issued_only_when_allowed() {
    let app = app_with_refresh().await;
    let code = app.issue_code(code_record("app")).await;
    let tokens: Value = app.post_token(&token_params(&code)).await.json().await.unwrap();
    assert!(
        tokens.get("refresh_token").is_none(),
        "no offline_access: {tokens}"
    );
    let plain = spawn_app().await;
    let code = plain.issue_code(offline_record("app")).await;
    let tokens: Value = plain.post_token(&token_params(&code)).await.json().await.unwrap();
    assert!(tokens.get("refresh_token").is_none(), "not registered: {tokens}");
    // A public client without DPoP.
    let code = app.issue_code(offline_record("public-app")).await;
    let params = with(token_params(&code), &[("client_id", Some("public-app"))]);
    let tokens: Value = app
        .post_token_unauthenticated(&params)
        .await
        .json()
        .await
        .unwrap();
    assert!(tokens["access_token"].is_string(), "{tokens}");
    assert!(
        tokens.get("refresh_token").is_none(),
        "public without DPoP: {tokens}"
    );
}

/// RFC 6749 §6: a narrower scope is granted; a wider one is `invalid_scope` and costs the
/// client nothing. Another client cannot use the token, and its attempt changes nothing.
#[tokio::test]
async fn scope_may_narrow_and_other_clients_get_nothing() {
    let app = app_with_refresh().await;
    let rt = str_of(&offline_tokens(&app).await, "refresh_token").to_owned();
    let wider = with(refresh_params(&rt), &[("scope", Some("openid admin"))]);
    assert_oauth_error(app.post_token(&wider).await, 400, "invalid_scope").await;
    let other = app
        .http
        .post(app.url("/oauth2/token"))
        .form(&with(
            refresh_params(&rt),
            &[("client_id", Some("post-app")), ("client_secret", Some(SECRET))],
        ))
        .send()
        .await
        .unwrap();
    assert_oauth_error(other, 400, "invalid_grant").await;
    let narrower = with(refresh_params(&rt), &[("scope", Some("openid email"))]);
    let res = app.post_token(&narrower).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(tokens["scope"], "openid email");
    // Garbage and unknown tokens.
    for bad in ["nope", "g.AAAA", &format!("unknown.{}", "A".repeat(43))] {
        assert_oauth_error(app.post_token(&refresh_params(bad)).await, 400, "invalid_grant").await;
    }
}

/// RFC 9449 §5: a public client's refresh token is bound to the DPoP key of the token
/// request; refreshing needs a proof by that key, and yields DPoP-bound access tokens.
#[tokio::test]
async fn a_public_clients_refresh_token_is_dpop_bound() {
    let app = app_with_refresh().await;
    let (key, other) = (DpopKey::a(), DpopKey::b());
    let token_url = format!("{}/oauth2/token", app.issuer);
    let post = |params: Vec<(String, String)>, proof: Option<String>| {
        let mut req = app
            .http
            .post(app.url("/oauth2/token"))
            .form(&with(params, &[("client_id", Some("public-app"))]));
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        req.send()
    };
    let code = app.issue_code(offline_record("public-app")).await;
    let proof = key.proof("POST", &token_url, json!({}));
    let tokens: Value = post(token_params(&code), Some(proof))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let rt = str_of(&tokens, "refresh_token").to_owned();
    for (why, proof) in [
        ("no proof", None),
        ("another key", Some(other.proof("POST", &token_url, json!({})))),
    ] {
        let res = post(refresh_params(&rt), proof).await.unwrap();
        let body = assert_oauth_error(res, 400, "invalid_grant").await;
        assert!(
            body["error_description"].as_str().unwrap().contains("DPoP"),
            "{why}"
        );
    }
    let proof = key.proof("POST", &token_url, json!({}));
    let res = post(refresh_params(&rt), Some(proof)).await.unwrap();
    assert_eq!(res.status(), 200, "the refused attempts did not spend the token");
    let refreshed: Value = res.json().await.unwrap();
    assert_eq!(refreshed["token_type"], "DPoP");
}

/// RFC 7009: revoking a refresh token ends its grant (refresh and access tokens); revoking
/// an access token denies that token only; unknown, foreign or garbage tokens get 200 and
/// change nothing.
#[tokio::test]
async fn revocation_of_refresh_and_access_tokens() {
    let app = app_with_refresh().await;
    // An access token alone.
    let tokens = offline_tokens(&app).await;
    let at = str_of(&tokens, "access_token");
    let rt = str_of(&tokens, "refresh_token");
    let refreshed: Value = app.post_token(&refresh_params(rt)).await.json().await.unwrap();
    let res = revoke(&app, at).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_oauth_error(app.userinfo(at).await, 401, "invalid_token").await;
    let at2 = str_of(&refreshed, "access_token");
    assert_eq!(
        app.userinfo(at2).await.status(),
        200,
        "other tokens of the grant live on"
    );

    // The refresh token: the whole grant.
    let rt2 = str_of(&refreshed, "refresh_token");
    assert_eq!(revoke(&app, rt2).await.status(), 200);
    assert_oauth_error(app.post_token(&refresh_params(rt2)).await, 400, "invalid_grant").await;
    assert_oauth_error(app.userinfo(at2).await, 401, "invalid_token").await;

    // Another client's tokens, garbage, and a retired refresh token: 200, nothing changes.
    let mine = offline_tokens(&app).await;
    let foreign = app
        .http
        .post(app.url("/oauth2/revoke"))
        .form(&[
            ("client_id", "post-app"),
            ("client_secret", SECRET),
            ("token", str_of(&mine, "access_token")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 200);
    assert_eq!(app.userinfo(str_of(&mine, "access_token")).await.status(), 200);
    for garbage in ["x", "a.b.c", rt] {
        assert_eq!(revoke(&app, garbage).await.status(), 200, "{garbage}");
    }
    assert_eq!(
        app.post_token(&refresh_params(str_of(&mine, "refresh_token")))
            .await
            .status(),
        200
    );

    // Errors: no token, no client authentication.
    assert_oauth_error(
        app.http
            .post(app.url("/oauth2/revoke"))
            .basic_auth("app", Some(SECRET))
            .form(&[("token_type_hint", "access_token")])
            .send()
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        app.http
            .post(app.url("/oauth2/revoke"))
            .form(&[("token", "x")])
            .send()
            .await
            .unwrap(),
        401,
        "invalid_client",
    )
    .await;
}
