//! `POST /oauth2/token` (RFC 6749 §4.1.3, §5; RFC 7636 §4.6; RFC 9700) against a real Redis.
//! Codes are minted through the store exactly as code issuance does (`TestApp::issue_code`).
//! ID tokens are verified with an independent library (`openidconnect`) from `/jwks`.

use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{AccessToken, AccessTokenHash, ClientId, IssuerUrl, Nonce};
use serde_json::Value;

use crate::helpers::*;

/// Parameter changes for [`with`].
type Changes<'a> = &'a [(&'a str, Option<&'a str>)];

/// Verifies `id_token` the way a relying party would: signature via the published JWKS,
/// `iss`, `aud`, `exp`, `nonce`, and `at_hash` against `access_token`. Returns the claims.
pub async fn verify_id_token(
    app: &TestApp,
    id_token: &str,
    access_token: &str,
    alg: CoreJwsSigningAlgorithm,
) -> Value {
    let jwks: CoreJsonWebKeySet = serde_json::from_value(app.jwks().await).unwrap();
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new("app".into()),
        IssuerUrl::new(app.issuer.clone()).unwrap(),
        jwks,
    )
    .set_allowed_algs([alg]);
    let token: CoreIdToken = id_token.parse().expect("an ID token");
    let claims = token
        .claims(&verifier, &Nonce::new(NONCE.into()))
        .expect("the ID token verifies");
    let expected = AccessTokenHash::from_token(
        &AccessToken::new(access_token.into()),
        token.signing_alg().unwrap(),
        token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected), "at_hash");
    serde_json::to_value(claims).unwrap()
}

/// [`verify_id_token`] for a whole token response (its ID token against its access token).
pub async fn verify_token_response(app: &TestApp, tokens: &Value, alg: CoreJwsSigningAlgorithm) -> Value {
    let (id_token, access_token) = (
        tokens["id_token"].as_str().unwrap(),
        tokens["access_token"].as_str().unwrap(),
    );
    verify_id_token(app, id_token, access_token, alg).await
}

/// Decodes a JWT part without verifying (for asserting on headers and claims).
pub fn jwt_part(jwt: &str, index: usize) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(index).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// RFC 6749 §5.1 success: 200, no-store, Bearer, expires_in, scope, and an ID token because
/// `openid` was granted.
#[tokio::test]
async fn a_valid_code_yields_tokens_with_no_store() {
    let app = spawn_app().await;
    let code = app.issue_code(code_record("app")).await;
    let res = app.post_token(&token_params(&code)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "openid email profile");
    assert!(body["access_token"].is_string());
    assert!(body["id_token"].is_string());
    assert!(body.get("refresh_token").is_none());
}

/// OIDC Core §3.1.3.7 as a relying party checks it, with a library we did not write.
#[tokio::test]
async fn the_id_token_verifies_with_an_independent_library() {
    let app = spawn_app().await;
    let record = code_record("app");
    let auth_time = record.auth_time;
    let code = app.issue_code(record).await;
    let body: Value = app.post_token(&token_params(&code)).await.json().await.unwrap();
    let at = body["access_token"].as_str().unwrap();
    let id_token = body["id_token"].as_str().unwrap();
    let claims = verify_id_token(&app, id_token, at, CoreJwsSigningAlgorithm::EcdsaP256Sha256).await;
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["sub"], ALICE_SUB);
    assert_eq!(claims["aud"], serde_json::json!(["app"]));
    assert_eq!(claims["nonce"], NONCE);
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "Alice Example");

    // Integer NumericDates, lifetimes from configuration.
    let raw = jwt_part(id_token, 1);
    assert!(raw["exp"].is_u64() && raw["iat"].is_u64(), "{raw}");
    assert_eq!(raw["exp"].as_u64().unwrap() - raw["iat"].as_u64().unwrap(), 600);
    assert_eq!(raw["auth_time"], auth_time);
    let header = jwt_part(id_token, 0);
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());
}

/// RFC 9068 §2: the access token is a JWT with `typ: at+jwt` and the required claims.
#[tokio::test]
async fn the_access_token_is_an_rfc9068_jwt() {
    let app = spawn_app().await;
    let record = code_record("app");
    let grant_id = record.grant_id.clone();
    let code = app.issue_code(record).await;
    let body: Value = app.post_token(&token_params(&code)).await.json().await.unwrap();
    let at = body["access_token"].as_str().unwrap();
    let header = jwt_part(at, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims = jwt_part(at, 1);
    for name in [
        "iss",
        "exp",
        "aud",
        "sub",
        "client_id",
        "iat",
        "jti",
        "scope",
        "auth_time",
    ] {
        assert!(claims.get(name).is_some(), "{name} missing in {claims}");
    }
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["aud"], format!("{}/oauth2/userinfo", app.issuer));
    assert_eq!(claims["client_id"], "app");
    assert_eq!(claims["sub"], ALICE_SUB);
    assert_eq!(claims["scope"], "openid email profile");
    assert_eq!(claims["gid"], grant_id.as_str());
    assert!(claims["exp"].is_u64() && claims["iat"].is_u64());
}

/// RFC 8707 / RFC 9068 §2.2: requested resources become the audience.
#[tokio::test]
async fn resources_become_the_access_token_audience() {
    let app = spawn_app().await;
    let mut record = code_record("app");
    record.resource = vec!["https://api.example/".into()];
    let code = app.issue_code(record).await;
    let body: Value = app.post_token(&token_params(&code)).await.json().await.unwrap();
    let at = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(at, 1)["aud"], "https://api.example/");
    // Not meant for userinfo, so userinfo refuses it (audience restriction).
    assert_eq!(app.userinfo(at).await.status(), 401);
}

/// Without `openid` there is no ID token (OIDC Core §3.1.2.1: it is an OAuth-only grant).
#[tokio::test]
async fn no_id_token_without_openid_scope() {
    let app = spawn_app().await;
    let mut record = code_record("app");
    record.scope = vec!["email".into()];
    let code = app.issue_code(record).await;
    let body: Value = app.post_token(&token_params(&code)).await.json().await.unwrap();
    assert!(body.get("id_token").is_none(), "{body}");
    assert_eq!(body["scope"], "email");
}

/// RFC 6749 §4.1.2, RFC 9700 §4.2.4, FAPI-10, BCP-11: a second redemption fails **and** the
/// access token of the first one stops working.
#[tokio::test]
async fn a_replayed_code_fails_and_revokes_the_first_tokens() {
    let app = spawn_app().await;
    let code = app.issue_code(code_record("app")).await;
    let first: Value = app.post_token(&token_params(&code)).await.json().await.unwrap();
    let at = first["access_token"].as_str().unwrap();
    assert_eq!(app.userinfo(at).await.status(), 200, "works before the replay");

    let second = app.post_token(&token_params(&code)).await;
    assert_oauth_error(second, 400, "invalid_grant").await;

    let res = app.userinfo(at).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    // The revocation is remembered only as long as such tokens live.
    let redis = app.redis.as_ref().unwrap();
    let revoked = redis
        .keys()
        .into_iter()
        .find(|k| k.contains("grant:"))
        .expect("a revocation key");
    let ttl: i64 = redis.cmd(&["TTL", &revoked]);
    assert!((1..=600).contains(&ttl), "ttl {ttl}");
}

/// The store never holds the code itself, and the record is gone after redemption.
#[tokio::test]
async fn redis_holds_no_code_and_the_record_is_taken() {
    let app = spawn_app().await;
    let code = app.issue_code(code_record("app")).await;
    let redis = app.redis.as_ref().unwrap();
    assert_eq!(redis.keys().len(), 1);
    assert!(!redis.keys()[0].contains(&code));
    assert_eq!(app.post_token(&token_params(&code)).await.status(), 200);
    let keys = redis.keys();
    assert_eq!(keys.len(), 1, "only the used-marker remains: {keys:?}");
    assert!(keys[0].ends_with(":used") && !keys[0].contains(&code));
}

/// Every refused redemption of a good code, as `(changes, description)`: all `invalid_grant`.
#[tokio::test]
async fn pkce_and_redirect_uri_mismatches_are_invalid_grant() {
    let app = spawn_app().await;
    let cases: Vec<(Changes, &str)> = vec![
        (
            &[(
                "code_verifier",
                Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX"),
            )],
            "wrong verifier (RFC 7636 §4.6)",
        ),
        (&[("code_verifier", None)], "missing verifier"),
        (
            &[(
                "code_verifier",
                Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX"),
            )],
            "42-character verifier (RFC 7636 §4.1)",
        ),
        (
            &[(
                "code_verifier",
                Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk!"),
            )],
            "verifier with a reserved character",
        ),
        (
            &[("redirect_uri", Some("https://app.example/callback/"))],
            "redirect_uri differs (RFC 6749 §4.1.3)",
        ),
        (
            &[("redirect_uri", Some("http://127.0.0.1/callback"))],
            "another registered redirect_uri",
        ),
    ];
    for (changes, description) in cases {
        let code = app.issue_code(code_record("app")).await;
        let res = app.post_token(&with(token_params(&code), changes)).await;
        let body = assert_oauth_error(res, 400, "invalid_grant").await;
        assert!(body["error_description"].is_string(), "{description}");
        // The failed attempt burnt nothing: the rightful request still redeems the code.
        let retry = app.post_token(&token_params(&code)).await;
        assert_eq!(retry.status(), 200, "{description}");
    }
}

/// RFC 9700 §4.8.2: a verifier for a code issued without a challenge is a downgrade.
#[tokio::test]
async fn a_verifier_without_a_challenge_is_refused() {
    let app = spawn_app().await;
    let mut record = code_record("app");
    record.code_challenge = None;
    let code = app.issue_code(record).await;
    assert_oauth_error(app.post_token(&token_params(&code)).await, 400, "invalid_grant").await;
    // Without a verifier, such a code redeems.
    let mut record = code_record("app");
    record.code_challenge = None;
    let code = app.issue_code(record).await;
    let res = app
        .post_token(&with(token_params(&code), &[("code_verifier", None)]))
        .await;
    assert_eq!(res.status(), 200);
}

/// RFC 6749 §4.1.3: missing `redirect_uri` is a malformed request, and does not burn the code.
#[tokio::test]
async fn missing_parameters_are_invalid_request_and_keep_the_code() {
    let app = spawn_app().await;
    let code = app.issue_code(code_record("app")).await;
    let cases: Vec<(Changes, &str)> = vec![
        (&[("redirect_uri", None)], "redirect_uri"),
        (&[("code", None)], "code"),
        (&[("grant_type", None)], "grant_type"),
    ];
    for (changes, description) in cases {
        let res = app.post_token(&with(token_params(&code), changes)).await;
        let body = assert_oauth_error(res, 400, "invalid_request").await;
        assert!(
            body["error_description"].as_str().unwrap().contains(description),
            "{body}"
        );
    }
    assert_eq!(app.post_token(&token_params(&code)).await.status(), 200);
}

/// RFC 6749 §4.1.3: the code must have been issued to the authenticated client.
#[tokio::test]
async fn a_code_of_another_client_is_invalid_grant() {
    let app = spawn_app().await;
    let code = app.issue_code(code_record("post-app")).await;
    assert_oauth_error(app.post_token(&token_params(&code)).await, 400, "invalid_grant").await;
}

/// Unknown codes are `invalid_grant`.
#[tokio::test]
async fn an_unknown_code_is_invalid_grant() {
    let app = spawn_app().await;
    let res = app.post_token(&token_params("not-a-code")).await;
    assert_oauth_error(res, 400, "invalid_grant").await;
}

/// FAPI-10: an expired code is refused (code lifetime from `tokens.code_lifetime`).
#[tokio::test]
async fn an_expired_code_is_invalid_grant() {
    let app = spawn_app_with(Backend::Redis, |s| s.tokens.code_lifetime = 1).await;
    let code = app.issue_code(code_record("app")).await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_oauth_error(app.post_token(&token_params(&code)).await, 400, "invalid_grant").await;
}

/// RFC 6749 §5.2, FAPI-14, BCP-10: only `authorization_code` and `refresh_token`; ROPC is
/// refused; `refresh_token` from a client not registered for it is `unauthorized_client`.
#[tokio::test]
async fn other_grant_types_are_unsupported() {
    let app = spawn_app().await;
    let cases: Vec<Vec<(String, String)>> = vec![
        vec![
            ("grant_type".into(), "password".into()),
            ("username".into(), "alice".into()),
            ("password".into(), PASSWORD.into()),
        ],
        vec![("grant_type".into(), "client_credentials".into())],
        vec![(
            "grant_type".into(),
            "urn:ietf:params:oauth:grant-type:device_code".into(),
        )],
        vec![("grant_type".into(), "implicit".into())],
    ];
    for params in cases {
        let res = app.post_token(&params).await;
        assert_oauth_error(res, 400, "unsupported_grant_type").await;
    }
    let refresh = with(
        vec![],
        &[
            ("grant_type", Some("refresh_token")),
            ("refresh_token", Some("x")),
        ],
    );
    assert_oauth_error(app.post_token(&refresh).await, 400, "unauthorized_client").await;
}

/// RFC 6749 §3.2: parameters must not be repeated.
#[tokio::test]
async fn a_duplicated_parameter_is_invalid_request() {
    let app = spawn_app().await;
    let code = app.issue_code(code_record("app")).await;
    let mut params = token_params(&code);
    params.push(("code".into(), code.clone()));
    assert_oauth_error(app.post_token(&params).await, 400, "invalid_request").await;
}

/// RFC 6749 §5.2: failed client authentication is 401 `invalid_client` with a challenge,
/// and leaves the code alone.
#[tokio::test]
async fn bad_client_authentication_is_401() {
    let app = spawn_app().await;
    let code = app.issue_code(code_record("app")).await;
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth("app", Some("wrong-secret-0000"))
        .form(&token_params(&code))
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("www-authenticate"));
    assert_oauth_error(res, 401, "invalid_client").await;
    let res = app.post_token_unauthenticated(&token_params(&code)).await;
    assert_oauth_error(res, 401, "invalid_client").await;
    assert_eq!(app.post_token(&token_params(&code)).await.status(), 200);
}

/// Clients of every method redeem their codes: post, private_key_jwt, public + PKCE.
#[tokio::test]
async fn every_client_authentication_method_works() {
    let app = spawn_app().await;
    let code = app.issue_code(code_record("post-app")).await;
    let post = with(
        token_params(&code),
        &[("client_id", Some("post-app")), ("client_secret", Some(SECRET))],
    );
    assert_eq!(app.post_token_unauthenticated(&post).await.status(), 200);

    let code = app.issue_code(code_record("jwt-app")).await;
    let aud = Value::String(format!("{}/oauth2/token", app.issuer));
    let assertion = client_assertion("client-es256.pem", aud, serde_json::json!({}));
    let jwt = with_assertion(token_params(&code), &assertion);
    assert_eq!(app.post_token_unauthenticated(&jwt).await.status(), 200);

    let code = app.issue_code(code_record("public-app")).await;
    let public = with(token_params(&code), &[("client_id", Some("public-app"))]);
    assert_eq!(app.post_token_unauthenticated(&public).await.status(), 200);
}

/// Brief §2 "exactly one winner": 20 concurrent redemptions of one code → one 200.
#[tokio::test]
async fn concurrent_redemptions_have_exactly_one_winner() {
    let app = spawn_app_with(Backend::Redis, |s| s.http.workers = 4).await;
    let code = app.issue_code(code_record("app")).await;
    let params = token_params(&code);
    let requests = (0..20).map(|_| app.post_token(&params));
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "{statuses:?}");
}

/// RFC 9110 §15.5.6: the token endpoint is POST only.
#[tokio::test]
async fn get_on_the_token_endpoint_is_405() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/oauth2/token")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
}

/// Brief §4: Redis down → 503 `temporarily_unavailable`, fast.
#[tokio::test]
async fn redis_down_is_503() {
    let mut app = spawn_app().await;
    let code = app.issue_code(code_record("app")).await;
    app.redis.as_mut().unwrap().stop();
    let res = app.post_token(&token_params(&code)).await;
    assert_oauth_error(res, 503, "temporarily_unavailable").await;
}

/// The in-memory backend (zero-config demo) redeems too.
#[tokio::test]
async fn the_memory_backend_redeems_codes() {
    let app = spawn_app_with(Backend::Memory, |_| {}).await;
    let code = app.issue_code(code_record("app")).await;
    assert_eq!(app.post_token(&token_params(&code)).await.status(), 200);
    assert_oauth_error(app.post_token(&token_params(&code)).await, 400, "invalid_grant").await;
}

/// A code presented by another client leaves it redeemable by its own client and answers
/// like an unknown code; a body `client_id` contradicting the credentials is `invalid_client`.
#[tokio::test]
async fn another_clients_attempt_burns_nothing_and_reveals_nothing() {
    let app = spawn_app().await;
    let code = app.issue_code(code_record("app")).await;
    let unknown = app
        .post_token(&token_params("no-such-code"))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let mut as_other = token_params(&code);
    as_other.push(("client_id".into(), "post-app".into()));
    as_other.push(("client_secret".into(), SECRET.into()));
    let other = assert_oauth_error(
        app.post_token_unauthenticated(&as_other).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(other, unknown, "another client learns nothing about the code");
    let mut contradicting = token_params(&code);
    contradicting.push(("client_id".into(), "post-app".into()));
    assert_oauth_error(app.post_token(&contradicting).await, 401, "invalid_client").await;
    assert_eq!(app.post_token(&token_params(&code)).await.status(), 200);
}
