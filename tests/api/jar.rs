//! Signed request objects (JAR, RFC 9101) pushed to PAR (RFC 9126 §3) by the
//! `private_key_jwt` client, against a real Redis. Tests are named after the OpenID FAPI 2.0
//! conformance modules they mirror where one exists.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::helpers::*;

pub(crate) const KEY: &str = "client-es256.pem";

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A JWS over `claims` with `header`, signed by the `jwt-app` client's key (ES256) whatever
/// `header` says, or by `key` when given.
pub(crate) fn sign(header: Value, claims: Value, key: &str) -> String {
    let message = format!("{}.{}", b64(&header), b64(&claims));
    let pem = std::fs::read(fixture(key)).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::ES256).unwrap();
    format!("{message}.{sig}")
}

pub(crate) fn es256() -> Value {
    json!({"alg": "ES256", "kid": "k1", "typ": "oauth-authz-req+jwt"})
}

/// The request object of a valid login of `jwt-app`, addressed to `app`'s issuer.
pub(crate) fn claims(app: &TestApp) -> Value {
    let now = par_server::clock::now();
    let mut c = json!({
        "iss": "jwt-app", "aud": app.issuer, "exp": now + 300, "nbf": now, "iat": now,
        "client_id": "jwt-app",
    });
    for (k, v) in push_params("jwt-app") {
        c[k] = json!(v);
    }
    c["scope"] = json!("openid");
    c
}

/// The push of a request object: only `request`, `client_id` and the client assertion, plus
/// `extra` outside the object.
pub(crate) async fn push_object(app: &TestApp, object: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let assertion = client_assertion(KEY, json!(app.issuer.clone()), json!({}));
    let mut form = vec![
        ("client_id".to_owned(), "jwt-app".to_owned()),
        ("request".to_owned(), object.to_owned()),
    ];
    form.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    app.push_unauthenticated(&with_assertion(form, &assertion)).await
}

/// The whole login from a pushed request object; the parameters outside it are ignored
/// (RFC 9101 §5): the ID token is built from the object's `scope`, not the outside one.
#[tokio::test]
async fn a_pushed_request_object_logs_in_with_its_own_parameters() {
    let app = spawn_app().await;
    let object = sign(es256(), claims(&app), KEY);
    let res = push_object(&app, &object, &[("scope", "openid email profile")]).await;
    let uri = request_uri_of(res).await;
    let browser = http_client();
    let html = app
        .authorize(&browser, "jwt-app", &uri)
        .await
        .text()
        .await
        .unwrap();
    let res = app.login(&browser, &html, "alice", PASSWORD).await;
    assert_eq!(res.status(), 303);
    let code = location_params(&res)["code"].clone();
    let assertion = client_assertion(KEY, json!(app.issuer.clone()), json!({}));
    let mut token = with_assertion(token_params(&code), &assertion);
    token.push(("client_id".into(), "jwt-app".into()));
    let tokens: Value = app.post_token_unauthenticated(&token).await.json().await.unwrap();
    assert_eq!(tokens["scope"], "openid", "{tokens}");
    let id = crate::token::jwt_part(tokens["id_token"].as_str().unwrap(), 1);
    assert!(id.get("email").is_none(), "the outside scope was ignored");
}

/// Every broken request object is `invalid_request_object` naming the check.
#[tokio::test]
async fn broken_request_objects_are_refused_with_the_reason() {
    let app = spawn_app().await;
    let now = par_server::clock::now();
    let with_claims = |change: Value| {
        let mut c = claims(&app);
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        sign(es256(), c, KEY)
    };
    let with_header = |h: Value| sign(h, claims(&app), KEY);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "ensure_request_object_without_exp_fails",
            with_claims(json!({"exp": null})),
            "exp is required",
        ),
        (
            "ensure_expired_request_object_fails",
            with_claims(json!({"exp": now - 120})),
            "expired",
        ),
        (
            "ensure_request_object_with_long_exp_fails",
            with_claims(json!({"exp": now + 3 * 3600})),
            "lifetime",
        ),
        (
            "ensure_request_object_with_nbf_in_the_future_fails",
            with_claims(json!({"nbf": now + 120})),
            "nbf",
        ),
        (
            "ensure_request_object_with_bad_aud_fails",
            with_claims(json!({"aud": "https://evil.example"})),
            "aud",
        ),
        (
            "ensure_request_object_without_aud_fails",
            with_claims(json!({"aud": null})),
            "aud",
        ),
        (
            "ensure_request_object_with_wrong_iss_fails",
            with_claims(json!({"iss": "app"})),
            "iss",
        ),
        (
            "ensure_client_id_in_request_object_matches",
            with_claims(json!({"client_id": "app"})),
            "client_id",
        ),
        (
            "request_uri inside the object",
            with_claims(json!({"request_uri": "urn:x"})),
            "inside",
        ),
        (
            "ensure_request_object_signature_algorithm_is_none_fails",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims(&app))),
            "algorithm",
        ),
        (
            "ensure_request_object_signature_algorithm_is_hs256_fails",
            with_header(json!({"alg": "HS256", "kid": "k1"})),
            "algorithm",
        ),
        (
            "ensure_request_object_with_invalid_signature_fails",
            sign(es256(), claims(&app), "other-es256.pem"),
            "signature",
        ),
        (
            "a DPoP proof is no request object (typ)",
            with_header(json!({"alg": "ES256", "kid": "k1", "typ": "dpop+jwt"})),
            "typ",
        ),
        (
            "crit",
            with_header(json!({"alg": "ES256", "kid": "k1", "crit": ["x"], "x": 1})),
            "crit",
        ),
        ("not a JWT", "abc".to_owned(), "not a signed JWT"),
    ];
    for (name, object, reason) in cases {
        let res = push_object(&app, &object, &[]).await;
        let body = assert_oauth_error(res, 400, "invalid_request_object").await;
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(reason), "{name}: {description}");
    }
    // The client_id outside must name the same client (here it contradicts the assertion).
    let object = sign(es256(), claims(&app), KEY);
    let assertion = client_assertion(KEY, json!(app.issuer.clone()), json!({}));
    let form = vec![
        ("client_id".to_owned(), "app".to_owned()),
        ("request".to_owned(), object),
    ];
    let res = app.push_unauthenticated(&with_assertion(form, &assertion)).await;
    assert_oauth_error(res, 401, "invalid_client").await;
}

/// RFC 9101 §10.5 / PAR-14: a client that must sign gets `invalid_request` for plain
/// parameters; in strict mode a request object without `typ` is refused; metadata says so.
#[tokio::test]
async fn signed_request_objects_can_be_required_and_typ_enforced() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.clients[2].require_signed_request_object = Some(true);
        s.par.request_object_require_typ = true;
    })
    .await;
    let assertion = client_assertion(KEY, json!(app.issuer.clone()), json!({}));
    let plain = with_assertion(push_params("jwt-app"), &assertion);
    assert_oauth_error(app.push_unauthenticated(&plain).await, 400, "invalid_request").await;
    let untyped = sign(json!({"alg": "ES256", "kid": "k1"}), claims(&app), KEY);
    let res = push_object(&app, &untyped, &[]).await;
    assert_oauth_error(res, 400, "invalid_request_object").await;
    let typed = sign(es256(), claims(&app), KEY);
    assert_eq!(push_object(&app, &typed, &[]).await.status(), 201);
    let m = app.metadata().await;
    assert_eq!(m["request_parameter_supported"], true);
    assert_eq!(
        m["require_signed_request_object"], false,
        "other clients may send plain requests"
    );
    assert!(
        m["request_object_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("ES256"))
    );
}
