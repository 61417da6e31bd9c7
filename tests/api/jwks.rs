//! `GET /oauth2/jwks` and the signing keys: public parts only, every configured key
//! published, the active one signing, each supported algorithm end to end.

use openidconnect::core::CoreJwsSigningAlgorithm;
use serde_json::Value;

use crate::helpers::*;
use crate::token::{jwt_part, verify_id_token, verify_token_response};

const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn assert_public_only(jwks: &Value) {
    for key in jwks["keys"].as_array().unwrap() {
        for m in PRIVATE_MEMBERS {
            assert!(key.get(*m).is_none(), "private member {m} published: {key}");
        }
        assert_eq!(key["use"], "sig");
    }
}

/// RFC 7517 §5: cacheable, CORS-open JWK Set whose `kid` is the one in token headers.
#[tokio::test]
async fn jwks_publishes_the_public_key_of_the_token_kid() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/oauth2/jwks")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let cache = res.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.starts_with("public, max-age="), "{cache}");
    let jwks: Value = res.json().await.unwrap();
    assert_public_only(&jwks);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0]["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(keys[0]["alg"], "ES256");

    let tokens = app.tokens().await;
    for t in ["access_token", "id_token"] {
        let header = jwt_part(tokens[t].as_str().unwrap(), 0);
        assert_eq!(header["kid"], keys[0]["kid"], "{t}");
    }
}

/// Rotation: two keys configured, the active one signs, both are published, and a token
/// signed by the other (previous) key still verifies at userinfo.
#[tokio::test]
async fn rotation_publishes_both_keys_and_the_active_one_signs() {
    let old = spawn_app().await;
    let old_token = old.tokens().await["access_token"].as_str().unwrap().to_owned();
    let old_kid = jwt_part(&old_token, 0)["kid"].clone();

    let app = spawn_app_with(Backend::Redis, |s| {
        s.keys = vec![
            signing_key("signing-es256.pem", "ES256", false),
            signing_key("signing-es256-next.pem", "ES256", true),
        ];
    })
    .await;
    let jwks = app.jwks().await;
    assert_public_only(&jwks);
    let kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&&old_kid));

    let tokens = app.tokens().await;
    let new_kid = jwt_part(tokens["id_token"].as_str().unwrap(), 0)["kid"].clone();
    assert_ne!(new_kid, old_kid, "the active (new) key signs");
    assert!(kids.contains(&&new_kid));
    verify_token_response(&app, &tokens, CoreJwsSigningAlgorithm::EcdsaP256Sha256).await;
    // A token of the previous key (same issuer needed: rebuild it for this app's issuer).
    let claims = jwt_part(&old_token, 1);
    let mut claims = claims.as_object().unwrap().clone();
    claims.insert("iss".into(), app.issuer.clone().into());
    claims.insert("aud".into(), format!("{}/oauth2/userinfo", app.issuer).into());
    let pem = std::fs::read(fixture("signing-es256.pem")).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = old_kid.as_str().map(str::to_owned);
    header.typ = Some("at+jwt".into());
    let by_old_key = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap(),
    )
    .unwrap();
    assert_eq!(app.userinfo(&by_old_key).await.status(), 200);
}

/// FAPI 2.0 §5.4: PS256 and EdDSA keys work end to end, verified independently, and
/// metadata advertises exactly the active key's algorithm.
#[tokio::test]
async fn ps256_eddsa_and_rs256_keys_work() {
    for (file, alg, oidc_alg, kty) in [
        (
            "signing-rsa2048.pem",
            "PS256",
            CoreJwsSigningAlgorithm::RsaSsaPssSha256,
            "RSA",
        ),
        (
            "signing-ed25519.pem",
            "EdDSA",
            CoreJwsSigningAlgorithm::EdDsa,
            "OKP",
        ),
        (
            "signing-rsa2048.pem",
            "RS256",
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            "RSA",
        ),
    ] {
        let app = spawn_app_with(Backend::Redis, |s| {
            s.keys = vec![signing_key(file, alg, false)];
        })
        .await;
        let jwks = app.jwks().await;
        assert_public_only(&jwks);
        assert_eq!(jwks["keys"][0]["kty"], kty);
        assert_eq!(jwks["keys"][0]["alg"], alg);
        let tokens = app.tokens().await;
        let id_token = tokens["id_token"].as_str().unwrap();
        let at = tokens["access_token"].as_str().unwrap();
        assert_eq!(jwt_part(id_token, 0)["alg"], alg);
        verify_id_token(&app, id_token, at, oidc_alg).await;
        assert_eq!(app.userinfo(at).await.status(), 200, "{alg}");
        let meta: Value = app.metadata().await;
        assert_eq!(
            meta["id_token_signing_alg_values_supported"],
            serde_json::json!([alg])
        );
    }
}

/// The demo mode (no keys, no Redis) generates a key and still verifies its own tokens.
#[tokio::test]
async fn without_keys_and_redis_a_key_is_generated() {
    let app = spawn_app_with(Backend::Memory, |s| s.keys.clear()).await;
    let jwks = app.jwks().await;
    assert_public_only(&jwks);
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    let tokens = app.tokens().await;
    verify_token_response(&app, &tokens, CoreJwsSigningAlgorithm::EcdsaP256Sha256).await;
}

/// Start-up validation names the offending key entry.
#[tokio::test]
async fn key_configuration_errors_name_the_key() {
    let mut settings = base_settings();
    settings.redis.url = Some(par_server::secret::Secret::new("redis://127.0.0.1:1"));
    settings.keys.clear();
    let err = settings.validate().unwrap_err();
    assert_eq!(err.key, "keys");
    assert!(err.reason.contains("replicas must share signing keys"), "{err}");

    let cases: Vec<(Vec<par_server::config::KeySettings>, &str)> = vec![
        (
            vec![
                signing_key("signing-es256.pem", "ES256", false),
                signing_key("client-es256.pem", "ES256", false),
                signing_key("README.md", "ES256", false),
            ],
            "keys[2].pem_file",
        ),
        (
            vec![
                signing_key("signing-es256.pem", "ES256", true),
                signing_key("signing-es256-next.pem", "ES256", true),
            ],
            "keys[1].active",
        ),
        (
            vec![signing_key("signing-rsa1024.pem", "PS256", true)],
            "keys[0].pem_file",
        ),
        (
            vec![signing_key("signing-es256.pem", "HS256", true)],
            "keys[0].alg",
        ),
    ];
    for (keys, name) in cases {
        let mut s = base_settings();
        s.keys = keys;
        let err = s.validate().unwrap_err();
        assert_eq!(err.key, name, "{err}");
    }
}
