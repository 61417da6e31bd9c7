//! `/oauth2/authorize` and the login pages against a real Redis: one-time use at the point of
//! authorization (RFC 9126 §4, FAPI 2.0 §5.3.2.2 note) — visits never consume, the code
//! takes — client binding (§2.2), expiry, `POST` and `HEAD`, prefetches, PAR-required
//! policy, CSRF, SSO, consent, and error paths that must never redirect.

use std::collections::HashMap;

use crate::helpers::*;

#[tokio::test]
async fn a_full_login_ends_in_a_303_with_code_state_and_iss() {
    let app = spawn_app().await;
    let browser = http_client();
    let uri = app.push_valid().await;
    let page = app.authorize(&browser, "app", &uri).await;
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let cookie = h["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"name="username""#) && html.contains(r#"autocomplete="username""#));
    assert!(html.contains(r#"name="password""#) && html.contains(r#"autocomplete="current-password""#));
    assert!(!html.contains("<script"), "no inline script");

    let res = app.login(&browser, &html, "alice", PASSWORD).await;
    assert_eq!(res.status(), 303, "FAPI 2.0: 303 after the POST");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = location_params(&res);
    assert_eq!(q["state"], "af0ifjsldkj");
    assert_eq!(q["iss"], app.issuer, "RFC 9207");
    assert!(q["code"].len() >= 43);
    // The code is stored by hash, and the pushed request is gone.
    let keys = app.redis.as_ref().unwrap().keys();
    assert!(keys.iter().any(|k| k.contains(":code:{")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains(&q["code"])));
    assert!(
        !keys.iter().any(|k| k.contains(":par:{")),
        "pushed request consumed: {keys:?}"
    );
}

/// RFC 9126 §4 + FAPI 2.0 note: a reload before login continues; once the code is issued
/// the request_uri is spent.
#[tokio::test]
async fn a_reload_continues_and_reuse_after_the_code_fails() {
    let app = spawn_app().await;
    let browser = http_client();
    let uri = app.push_valid().await;
    assert_eq!(app.authorize(&browser, "app", &uri).await.status(), 200);
    let page = app.authorize(&browser, "app", &uri).await;
    assert_eq!(page.status(), 200, "reload by the same browser");
    let html = page.text().await.unwrap();
    assert_eq!(app.login(&browser, &html, "alice", PASSWORD).await.status(), 303);
    assert_error_page(
        app.authorize(&browser, "app", &uri).await,
        400,
        "invalid_request_uri",
    )
    .await;
    // Re-posting the same login form does not mint a second code.
    assert_error_page(
        app.login(&browser, &html, "alice", PASSWORD).await,
        400,
        "invalid_request_uri",
    )
    .await;
}

/// The claim extends the record from the redemption window to the interaction lifetime.
#[tokio::test]
async fn the_first_visit_extends_the_request_to_the_interaction_lifetime() {
    let app = spawn_app().await;
    let uri = app.push_valid().await;
    let redis = app.redis.as_ref().unwrap();
    let ttl = |redis: &RedisNode| -> i64 {
        let key = redis.keys().into_iter().find(|k| k.ends_with('}')).unwrap();
        redis.cmd(&["TTL", &key])
    };
    assert!(ttl(redis) <= 60);
    assert_eq!(app.authorize(&http_client(), "app", &uri).await.status(), 200);
    assert!(
        ttl(redis) > 500,
        "interaction lifetime (600 s) applies after the claim"
    );
}

#[tokio::test]
async fn a_second_fresh_browser_loading_before_sign_in_completes_the_login() {
    // OpenID FAPI 2.0 conformance: par-ensure-reused-request-uri-prior-to-auth-completion-succeeds.
    let app = spawn_app().await;
    let uri = app.push_valid().await;
    let (first, second) = (http_client(), http_client());
    let first_page = app.authorize(&first, "app", &uri).await.text().await.unwrap();
    let second_page = app.authorize(&second, "app", &uri).await;
    assert_eq!(second_page.status(), 200);
    let second_page = second_page.text().await.unwrap();
    let res = app.login(&second, &second_page, "alice", PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert!(location_params(&res).contains_key("code"));
    // Authorized once: the first browser's sign-in and any later visit find it spent.
    assert_error_page(
        app.login(&first, &first_page, "alice", PASSWORD).await,
        400,
        "invalid_request_uri",
    )
    .await;
    assert_request_uri_refused(&app, &uri).await;
}

/// The first visit extends the request to the interaction lifetime, once; `HEAD` and
/// prefetches change nothing (no cookie, no extension, no consumption).
#[tokio::test]
async fn head_and_prefetch_change_nothing_and_the_first_visit_extends_once() {
    let app = spawn_app().await;
    let redis = app.redis.as_ref().unwrap();
    let uri = app.push_valid().await;
    let browser = http_client();
    let url = app.url("/oauth2/authorize");
    let query = [("client_id", "app"), ("request_uri", uri.as_str())];
    let head = browser.head(&url).query(&query).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().get("set-cookie").is_none());
    let prefetch = browser
        .get(&url)
        .query(&query)
        .header("Sec-Purpose", "prefetch")
        .send()
        .await
        .unwrap();
    assert_eq!(prefetch.status(), 503);
    assert_eq!(prefetch.headers()["cache-control"], "no-store");
    assert!(prefetch.headers().get("set-cookie").is_none());
    let par_ttl = || {
        let key = redis
            .keys()
            .into_iter()
            .find(|k| k.contains(":par:{") && !k.contains("}:"))
            .unwrap();
        redis.cmd::<i64>(&["TTL", &key])
    };
    assert!(par_ttl() <= 60, "not extended by HEAD or prefetch");
    assert!(!redis.keys().iter().any(|k| k.ends_with(":opened")));
    // An unknown request_uri answers HEAD like GET would: 400.
    let unknown = format!("urn:ietf:params:oauth:request_uri:{}", "A".repeat(43));
    let res = browser
        .head(&url)
        .query(&[("client_id", "app"), ("request_uri", unknown.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // The first real visit extends the life; the next ones do not extend it again.
    assert_eq!(app.authorize(&browser, "app", &uri).await.status(), 200);
    let extended = par_ttl();
    assert!(extended > 60, "extended to the interaction lifetime: {extended}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(app.authorize(&http_client(), "app", &uri).await.status(), 200);
    assert!(par_ttl() < extended, "extended once only");
    let html = app.authorize(&browser, "app", &uri).await.text().await.unwrap();
    assert_eq!(app.login(&browser, &html, "alice", PASSWORD).await.status(), 303);
}

/// OIDC Core §3.1.2.1: the authorization endpoint supports POST with a form body.
#[tokio::test]
async fn post_to_authorize_follows_the_same_rules_as_get() {
    let app = spawn_app().await;
    let uri = app.push_valid().await;
    let browser = http_client();
    let page = browser
        .post(app.url("/oauth2/authorize"))
        .form(&[("client_id", "app"), ("request_uri", uri.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let res = app.login(&browser, &html, "alice", PASSWORD).await;
    assert_eq!(res.status(), 303);
    let spent = browser
        .post(app.url("/oauth2/authorize"))
        .form(&[("client_id", "app"), ("request_uri", uri.as_str())])
        .send()
        .await
        .unwrap();
    assert_error_page(spent, 400, "invalid_request_uri").await;
    let res = browser.put(app.url("/oauth2/authorize")).send().await.unwrap();
    assert_eq!(res.status(), 405);
}

/// RFC 9126 §2.2 (PAR-12): bound to the client that pushed it; a mismatched client_id
/// changes nothing, so the rightful browser can still proceed.
#[tokio::test]
async fn a_request_uri_only_works_with_its_own_client_id() {
    let app = spawn_app().await;
    let uri = app.push_valid().await;
    let attacker = http_client();
    assert_error_page(
        app.authorize(&attacker, "post-app", &uri).await,
        400,
        "invalid_request_uri",
    )
    .await;
    assert_error_page(
        app.authorize(&attacker, "no-such-client", &uri).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(app.authorize(&http_client(), "app", &uri).await.status(), 200);
}

#[tokio::test]
async fn unknown_malformed_and_foreign_request_uris_are_refused_without_redirect() {
    let app = spawn_app().await;
    let browser = http_client();
    let real = app.push_valid().await;
    let reference = real.rsplit(':').next().unwrap();
    for uri in [
        format!("urn:ietf:params:oauth:request_uri:{}", "A".repeat(43)),
        "urn:ietf:params:oauth:request_uri:short".to_owned(),
        format!("urn:ietf:params:oauth:par:request_uri:{reference}"),
        format!("https://evil.example/{reference}"),
    ] {
        assert_error_page(
            app.authorize(&browser, "app", &uri).await,
            400,
            "invalid_request_uri",
        )
        .await;
    }
    let no_client = browser
        .get(app.url("/oauth2/authorize"))
        .query(&[("request_uri", real.as_str())])
        .send()
        .await
        .unwrap();
    assert_error_page(no_client, 400, "invalid_request").await;
    let duplicated = browser
        .get(format!(
            "{}?client_id=app&client_id=app&request_uri={}",
            app.url("/oauth2/authorize"),
            real
        ))
        .send()
        .await
        .unwrap();
    assert_error_page(duplicated, 400, "invalid_request").await;
}

/// RFC 9126 §4 (PAR-21).
#[tokio::test]
async fn an_expired_request_uri_is_refused() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.par.request_uri_lifetime = 1;
        s.par.interaction_lifetime = 1;
    })
    .await;
    let uri = app.push_valid().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_request_uri_refused(&app, &uri).await;
}

/// Twenty browsers race one request_uri: exactly one reaches the login form.
#[tokio::test]
async fn concurrent_browsers_racing_one_request_uri_have_one_winner() {
    let app = std::sync::Arc::new(spawn_app().await);
    let uri = app.push_valid().await;
    // Twenty browsers load the page (all see the login form), then all sign in at once.
    let mut browsers = Vec::new();
    for _ in 0..20 {
        let browser = http_client();
        let page = app.authorize(&browser, "app", &uri).await;
        assert_eq!(page.status(), 200);
        browsers.push((browser, page.text().await.unwrap()));
    }
    let tasks = browsers.into_iter().map(|(browser, html)| {
        let app = app.clone();
        tokio::spawn(async move {
            let res = app.login(&browser, &html, "alice", PASSWORD).await;
            let status = res.status().as_u16();
            let body = res.text().await.unwrap();
            (status, body.contains("<code>invalid_request_uri</code>"))
        })
    });
    let outcomes: Vec<(u16, bool)> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| o.0 == 303).count(), 1, "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| **o == (400, true)).count(),
        19,
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_missing_or_wrong_csrf_token_is_refused_and_loses_nothing() {
    let app = spawn_app().await;
    let browser = http_client();
    let uri = app.push_valid().await;
    let html = app.authorize(&browser, "app", &uri).await.text().await.unwrap();
    for csrf in [None, Some("x".repeat(43))] {
        let mut form = vec![("client_id", "app".to_owned()), ("request_uri", uri.clone())];
        form.extend([
            ("username", "alice".to_owned()),
            ("password", PASSWORD.to_owned()),
        ]);
        if let Some(c) = csrf {
            form.push(("csrf_token", c));
        }
        let res = browser
            .post(app.url("/oauth2/login"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_error_page(res, 400, "invalid_request").await;
    }
    // A form replayed from another browser (no binding cookie) fails too.
    let stranger = app.login(&http_client(), &html, "alice", PASSWORD).await;
    assert_error_page(stranger, 400, "invalid_request").await;
    assert_eq!(app.login(&browser, &html, "alice", PASSWORD).await.status(), 303);
}

#[tokio::test]
async fn wrong_credentials_reshow_the_form_with_a_generic_message() {
    let app = spawn_app().await;
    let browser = http_client();
    let uri = app.push_valid().await;
    let html = app.authorize(&browser, "app", &uri).await.text().await.unwrap();
    let mut messages = Vec::new();
    let users = [
        ("alice", "wrong"),
        ("mallory", PASSWORD),
        ("<b>x</b>", "y"),
        ("o'brien \"&\" co", "z"),
    ];
    for (user, pass) in users {
        let res = app.login(&browser, &html, user, pass).await;
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        assert!(!body.contains("<b>x</b>"), "user input is escaped");
        messages.push(body.contains("Incorrect username or password."));
        // The form keeps what was typed, escaped in the page and intact once submitted.
        assert_eq!(form_value(&body, "username").as_deref(), Some(user));
        assert_eq!(form_value(&body, "password").as_deref(), Some(""));
    }
    assert_eq!(messages, [true; 4], "one message whatever was wrong");
    assert_eq!(app.login(&browser, &html, "alice", PASSWORD).await.status(), 303);
}

/// OIDC Core §3.1.2.1.
#[tokio::test]
async fn prompt_none_without_a_session_redirects_login_required() {
    let app = spawn_app().await;
    let res = app
        .push(&with(push_params("app"), &[("prompt", Some("none"))]))
        .await;
    let uri: serde_json::Value = res.json().await.unwrap();
    let res = app
        .authorize(&http_client(), "app", uri["request_uri"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), 303);
    let q = location_params(&res);
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["iss"], app.issuer, "RFC 9207 on error responses too");
    assert_eq!(q["state"], "af0ifjsldkj");
}

#[tokio::test]
async fn an_sso_session_skips_the_password_unless_prompt_login() {
    let app = spawn_app().await;
    let browser = http_client();
    assert_eq!(app.full_login(&browser).await.status(), 303);
    // Same browser, new request: straight to the code.
    let uri = app.push_valid().await;
    let res = app.authorize(&browser, "app", &uri).await;
    assert_eq!(res.status(), 303);
    assert!(location_params(&res).contains_key("code"));
    // prompt=none now succeeds; prompt=login shows the form.
    let none: serde_json::Value = app
        .push(&with(push_params("app"), &[("prompt", Some("none"))]))
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .authorize(&browser, "app", none["request_uri"].as_str().unwrap())
        .await;
    assert!(location_params(&res).contains_key("code"));
    let login: serde_json::Value = app
        .push(&with(push_params("app"), &[("prompt", Some("login"))]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.authorize(&browser, "app", login["request_uri"].as_str().unwrap())
            .await
            .status(),
        200
    );
    // Another browser has no session.
    assert_eq!(
        app.authorize(&http_client(), "app", &app.push_valid().await)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn sso_can_be_turned_off() {
    let app = spawn_app_with(Backend::Redis, |s| s.session.lifetime = 0).await;
    let browser = http_client();
    assert_eq!(app.full_login(&browser).await.status(), 303);
    assert_eq!(
        app.authorize(&browser, "app", &app.push_valid().await)
            .await
            .status(),
        200
    );
}

/// RFC 9126 §4 (PAR-23) / FAPI 2.0: without PAR the request is refused, with no redirect.
#[tokio::test]
async fn plain_authorization_requests_are_refused_when_par_is_required() {
    let app = spawn_app().await;
    let params: HashMap<String, String> = push_params("app").into_iter().collect();
    let res = http_client()
        .get(app.url("/oauth2/authorize"))
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_error_page(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn plain_requests_work_for_clients_that_do_not_require_par() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.clients[0].require_pushed_authorization_requests = Some(false)
    })
    .await;
    let browser = http_client();
    let params: HashMap<String, String> = push_params("app").into_iter().collect();
    let page = browser
        .get(app.url("/oauth2/authorize"))
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert_eq!(app.login(&browser, &html, "alice", PASSWORD).await.status(), 303);
    // Errors after the redirect URI is proven go back to the client; before, they don't.
    let bad_scope: HashMap<String, String> = with(push_params("app"), &[("scope", Some("admin"))])
        .into_iter()
        .collect();
    let res = browser
        .get(app.url("/oauth2/authorize"))
        .query(&bad_scope)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location_params(&res)["error"], "invalid_scope");
    let evil: HashMap<String, String> = with(
        push_params("app"),
        &[("redirect_uri", Some("https://evil.example/cb"))],
    )
    .into_iter()
    .collect();
    let res = browser
        .get(app.url("/oauth2/authorize"))
        .query(&evil)
        .send()
        .await
        .unwrap();
    assert_error_page(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn consent_allow_issues_a_code_and_deny_returns_access_denied() {
    let app = spawn_app_with(Backend::Redis, |s| s.clients[0].consent = true).await;
    for (decision, expect) in [("allow", "code"), ("deny", "error")] {
        let browser = http_client();
        let uri = app.push_valid().await;
        let html = app.authorize(&browser, "app", &uri).await.text().await.unwrap();
        let consent = app.login(&browser, &html, "alice", PASSWORD).await;
        assert_eq!(consent.status(), 200);
        let page = consent.text().await.unwrap();
        assert!(page.contains("Allow access?"), "{page}");
        let res = app.consent(&browser, &page, decision).await;
        assert_eq!(res.status(), 303);
        let q = location_params(&res);
        assert!(q.contains_key(expect), "{q:?}");
        assert_eq!(q["iss"], app.issuer);
        if decision == "deny" {
            assert_eq!(q["error"], "access_denied");
        }
    }
}

/// Any replica can serve any step: push on A, authorize on B, login on A.
#[tokio::test]
async fn two_replicas_serve_alternate_steps_of_one_login() {
    let a = spawn_app().await;
    let b = a.replica(|_| {}).await;
    let browser = http_client();
    let uri = a.push_valid().await;
    let html = b.authorize(&browser, "app", &uri).await.text().await.unwrap();
    let res = a.login(&browser, &html, "alice", PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert!(location_params(&res).contains_key("code"));
}

/// RFC 9126 §4 / §7.4 (PAR-22): a registration changed after the push is enforced.
#[tokio::test]
async fn authorize_rechecks_the_clients_current_registration() {
    let a = spawn_app().await;
    let b = a
        .replica(|s| s.clients[0].redirect_uris = vec!["https://app.example/new".into()])
        .await;
    let uri = a.push_valid().await;
    assert_error_page(
        b.authorize(&http_client(), "app", &uri).await,
        400,
        "invalid_request",
    )
    .await;
    let c = a.replica(|s| s.clients[0].scopes = vec!["openid".into()]).await;
    let uri = a.push_valid().await;
    let res = c.authorize(&http_client(), "app", &uri).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location_params(&res)["error"], "invalid_scope");
}

#[tokio::test]
async fn redis_outage_at_authorize_shows_a_503_page() {
    let mut app = spawn_app().await;
    let uri = app.push_valid().await;
    app.redis.as_mut().unwrap().stop();
    assert_error_page(
        app.authorize(&http_client(), "app", &uri).await,
        503,
        "temporarily_unavailable",
    )
    .await;
}

/// RFC 9700 §2.6 (BCP-07): no CORS on the authorization endpoint.
#[tokio::test]
async fn the_authorization_endpoint_offers_no_cors() {
    let app = spawn_app().await;
    let res = http_client()
        .request(reqwest::Method::OPTIONS, app.url("/oauth2/authorize"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn login_and_consent_only_accept_post() {
    let app = spawn_app().await;
    for path in ["/oauth2/login", "/oauth2/consent"] {
        let res = http_client().get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()["allow"], "POST");
    }
}
