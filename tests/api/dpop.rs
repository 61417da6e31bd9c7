//! DPoP (RFC 9449) through the real endpoints: every proof rule refused with
//! `invalid_dpop_proof`, a proof's `jti` refused on another replica, server nonces issued by
//! one replica and accepted by another, a code bound at PAR (`dpop_jkt`) redeemed only with
//! its key, and bound access tokens at userinfo (`Authorization: DPoP` with `ath`; never as
//! Bearer).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use par_server::secret::Secret;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::observability::{scrape, value};

/// A client's DPoP key (a fixture P-256 key) and the proofs it signs.
pub struct DpopKey {
    key: EncodingKey,
    pub jwk: Value,
}

impl DpopKey {
    pub fn fixture(name: &str) -> Self {
        let pem = std::fs::read(fixture(name)).unwrap();
        let key = EncodingKey::from_ec_pem(&pem).unwrap();
        let jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk.as_object_mut()
            .unwrap()
            .retain(|k, _| ["kty", "crv", "x", "y"].contains(&k.as_str()));
        Self { key, jwk }
    }

    pub fn a() -> Self {
        Self::fixture("client-es256.pem")
    }

    pub fn b() -> Self {
        Self::fixture("other-es256.pem")
    }

    /// RFC 7638 thumbprint, computed by the library (not by the server's code).
    pub fn jkt(&self) -> String {
        let jwk: Jwk = serde_json::from_value(self.jwk.clone()).unwrap();
        jwk.thumbprint(ThumbprintHash::SHA256).unwrap()
    }

    /// A valid proof for `htm` `htu`, with `claims` merged in (a `null` removes a claim).
    pub fn proof(&self, htm: &str, htu: &str, claims: Value) -> String {
        let mut c = json!({ "htm": htm, "htu": htu });
        if let (Some(c), Value::Object(o)) = (c.as_object_mut(), claims) {
            c.extend(o); // a null stays, for proof_with to remove the default
        }
        self.proof_with(json!({}), c)
    }

    /// A proof with `header` and `claims` merged over valid defaults (htm POST, no htu).
    pub fn proof_with(&self, header: Value, claims: Value) -> String {
        let h = merged(
            json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk }),
            header,
        );
        let c = merged(
            json!({ "jti": uuid::Uuid::new_v4().to_string(), "htm": "POST", "iat": par_server::clock::now() }),
            claims,
        );
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap())
        );
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, Algorithm::ES256).unwrap();
        format!("{input}.{sig}")
    }
}

fn merged(mut base: Value, over: Value) -> Value {
    if let (Some(b), Value::Object(o)) = (base.as_object_mut(), over) {
        for (k, v) in o {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
    base
}

/// `ath` of an access token, computed here.
fn ath(token: &str) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token.as_bytes()))
}

const NONCE_KEY: &str = "a-nonce-key-shared-by-all-replicas-0123";

impl TestApp {
    fn endpoint(&self, name: &str) -> String {
        format!("{}/oauth2/{name}", self.issuer)
    }

    /// POST /oauth2/par as `app` with a `DPoP` header.
    async fn push_dpop(&self, params: &[(String, String)], proof: &str) -> reqwest::Response {
        self.http
            .post(self.url("/oauth2/par"))
            .basic_auth("app", Some(SECRET))
            .header("DPoP", proof)
            .form(params)
            .send()
            .await
            .unwrap()
    }

    /// POST /oauth2/token as `app`, with a `DPoP` header when `proof` is given.
    async fn token_dpop(&self, params: &[(String, String)], proof: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/oauth2/token"))
            .basic_auth("app", Some(SECRET))
            .form(params);
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        req.send().await.unwrap()
    }

    /// GET /oauth2/userinfo with `Authorization: <scheme> <token>` and an optional proof.
    async fn userinfo_dpop(&self, scheme: &str, token: &str, proof: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .get(self.url("/oauth2/userinfo"))
            .header("Authorization", format!("{scheme} {token}"));
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        req.send().await.unwrap()
    }

    /// A code for `app` bound to `jkt` (as PAR with `dpop_jkt` would bind it), redeemed
    /// with a proof by `key`: the token response.
    async fn dpop_tokens(&self, key: &DpopKey) -> Value {
        let code = self
            .issue_code(AuthorizationCodeExt::bound(code_record("app"), &key.jkt()))
            .await;
        self.redeem_with_proof(&code, key).await
    }

    /// Redeems `code` with a proof by `key`: the token response (200).
    async fn redeem_with_proof(&self, code: &str, key: &DpopKey) -> Value {
        let proof = key.proof("POST", &self.endpoint("token"), json!({}));
        let res = self.token_dpop(&token_params(code), Some(&proof)).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}

trait AuthorizationCodeExt {
    fn bound(self, jkt: &str) -> Self;
}

impl AuthorizationCodeExt for par_server::oauth::code::AuthorizationCode {
    fn bound(mut self, jkt: &str) -> Self {
        self.dpop_jkt = Some(jkt.to_owned());
        self
    }
}

/// The claims of one of our JWTs, read without verification (the server verified it).
fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn metadata_advertises_the_proof_algorithms() {
    let app = spawn_app().await;
    assert_eq!(
        app.metadata().await["dpop_signing_alg_values_supported"],
        json!(["ES256", "PS256", "EdDSA"])
    );
}

/// PAR with a proof binds the login to the key; the code is redeemed with a proof by the same
/// key; the access token is bound (`cnf.jkt`, `token_type: DPoP`) and works at userinfo only
/// with the DPoP scheme, a fresh proof and its `ath`.
#[tokio::test]
async fn a_login_bound_at_par_yields_a_dpop_bound_token() {
    let app = spawn_app().await;
    let key = DpopKey::a();
    let proof = key.proof("POST", &app.endpoint("par"), json!({}));
    let res = app.push_dpop(&push_params("app"), &proof).await;
    assert_eq!(res.status(), 201);
    let uri: Value = res.json().await.unwrap();
    let browser = http_client();
    let page = app
        .authorize(&browser, "app", uri["request_uri"].as_str().unwrap())
        .await;
    let html = page.text().await.unwrap();
    let done = app.login(&browser, &html, "alice", PASSWORD).await;
    assert_eq!(done.status(), 303);
    let code = location_params(&done)["code"].clone();

    let proof = key.proof("POST", &app.endpoint("token"), json!({}));
    let res = app.token_dpop(&token_params(&code), Some(&proof)).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(at)["cnf"], json!({ "jkt": key.jkt() }));

    let userinfo = app.endpoint("userinfo");
    let good = key.proof("GET", &userinfo, json!({ "ath": ath(at) }));
    let res = app.userinfo_dpop("DPoP", at, Some(&good)).await;
    assert_eq!(res.status(), 200);
    let info: Value = res.json().await.unwrap();
    assert_eq!(info["sub"], ALICE_SUB);
}

/// A bound token at userinfo: as Bearer, without a proof, without `ath`, with another
/// token's `ath`, by another key, or with a replayed proof → 401 with a DPoP challenge.
#[tokio::test]
async fn userinfo_refuses_a_bound_token_without_its_proof() {
    let app = spawn_app().await;
    let key = DpopKey::a();
    let tokens = app.dpop_tokens(&key).await;
    let at = tokens["access_token"].as_str().unwrap();
    let userinfo = app.endpoint("userinfo");

    let res = app.userinfo(at).await;
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("DPoP error=\"invalid_token\"")
    );
    assert_oauth_error(res, 401, "invalid_token").await;

    let ok = key.proof("GET", &userinfo, json!({ "ath": ath(at) }));
    let cases = [
        ("no proof", None),
        ("no ath", Some(key.proof("GET", &userinfo, json!({})))),
        (
            "ath of another token",
            Some(key.proof("GET", &userinfo, json!({ "ath": ath("other") }))),
        ),
        (
            "another key",
            Some(DpopKey::b().proof("GET", &userinfo, json!({ "ath": ath(at) }))),
        ),
        (
            "htm POST",
            Some(key.proof("POST", &userinfo, json!({ "ath": ath(at) }))),
        ),
    ];
    for (why, proof) in cases {
        let res = app.userinfo_dpop("DPoP", at, proof.as_deref()).await;
        let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.starts_with("DPoP error=\"invalid_dpop_proof\"") && challenge.contains("algs="),
            "{why}: {challenge}"
        );
        assert_oauth_error(res, 401, "invalid_dpop_proof").await;
    }
    assert_eq!(app.userinfo_dpop("DPoP", at, Some(&ok)).await.status(), 200);
    // The same proof again: its jti is spent.
    assert_oauth_error(
        app.userinfo_dpop("DPoP", at, Some(&ok)).await,
        401,
        "invalid_dpop_proof",
    )
    .await;
    // An unbound token is not accepted with the DPoP scheme.
    let bearer = app.tokens().await;
    let plain = bearer["access_token"].as_str().unwrap();
    assert_eq!(bearer["token_type"], "Bearer");
    let proof = key.proof("GET", &userinfo, json!({ "ath": ath(plain) }));
    assert_oauth_error(
        app.userinfo_dpop("DPoP", plain, Some(&proof)).await,
        401,
        "invalid_token",
    )
    .await;
    assert_eq!(app.userinfo(plain).await.status(), 200);
}

/// RFC 9449 §10: a code bound to a key is redeemed only with a proof by that key.
#[tokio::test]
async fn a_bound_code_needs_a_proof_by_its_key() {
    let app = spawn_app().await;
    let (a, b) = (DpopKey::a(), DpopKey::b());
    let token_url = app.endpoint("token");
    for (why, proof) in [
        ("no proof", None),
        ("another key", Some(b.proof("POST", &token_url, json!({})))),
    ] {
        let code = app
            .issue_code(AuthorizationCodeExt::bound(code_record("app"), &a.jkt()))
            .await;
        let res = app.token_dpop(&token_params(&code), proof.as_deref()).await;
        let body = assert_oauth_error(res, 400, "invalid_grant").await;
        assert!(
            body["error_description"].as_str().unwrap().contains("DPoP"),
            "{why}"
        );
    }
    let tokens = app.dpop_tokens(&a).await;
    assert_eq!(tokens["token_type"], "DPoP");
    // An unbound code with a proof gets a bound token too (RFC 9449 §5).
    let code = app.issue_code(code_record("app")).await;
    let tokens = app.redeem_with_proof(&code, &b).await;
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(
        jwt_claims(tokens["access_token"].as_str().unwrap())["cnf"]["jkt"],
        b.jkt()
    );
}

/// The `dpop_jkt` parameter at PAR: well-formed, and equal to the proof's key when both are
/// sent (RFC 9449 §10.1).
#[tokio::test]
async fn dpop_jkt_at_par_must_match_the_proof() {
    let app = spawn_app().await;
    let (a, b) = (DpopKey::a(), DpopKey::b());
    let par = app.endpoint("par");
    let with_jkt = |jkt: &str| with(push_params("app"), &[("dpop_jkt", Some(jkt))]);
    assert_eq!(app.push(&with_jkt(&a.jkt())).await.status(), 201);
    assert_oauth_error(
        app.push(&with_jkt("not-a-thumbprint")).await,
        400,
        "invalid_request",
    )
    .await;
    let proof = a.proof("POST", &par, json!({}));
    assert_eq!(app.push_dpop(&with_jkt(&a.jkt()), &proof).await.status(), 201);
    let proof = b.proof("POST", &par, json!({}));
    assert_oauth_error(
        app.push_dpop(&with_jkt(&a.jkt()), &proof).await,
        400,
        "invalid_request",
    )
    .await;
}

/// Every rule of RFC 9449 §4.3, one malformed proof each, at PAR: 400 `invalid_dpop_proof`.
#[tokio::test]
async fn each_malformed_proof_is_invalid_dpop_proof() {
    let app = spawn_app().await;
    let key = DpopKey::a();
    let par = app.endpoint("par");
    let now = par_server::clock::now();
    let mut private = key.jwk.clone();
    private["d"] = json!("AAAA");
    let ok = |claims: Value| key.proof("POST", &par, claims);
    let header = |h: Value| key.proof_with(h, json!({ "htu": par }));
    let cases: Vec<(&str, String)> = vec![
        ("not a JWT", "not-a-jwt".into()),
        ("typ JWT", header(json!({ "typ": "JWT" }))),
        ("no typ", header(json!({ "typ": null }))),
        ("alg none", header(json!({ "alg": "none" }))),
        ("alg HS256", header(json!({ "alg": "HS256" }))),
        ("no jwk", header(json!({ "jwk": null }))),
        ("private key in jwk", header(json!({ "jwk": private }))),
        (
            "signed by another key",
            header(json!({ "jwk": DpopKey::b().jwk })),
        ),
        ("htm GET", key.proof("GET", &par, json!({}))),
        (
            "htu the token endpoint",
            key.proof("POST", &app.endpoint("token"), json!({})),
        ),
        (
            "htu another host",
            key.proof("POST", "https://evil.example/oauth2/par", json!({})),
        ),
        ("no jti", ok(json!({ "jti": null }))),
        ("no iat", ok(json!({ "iat": null }))),
        ("iat too old", ok(json!({ "iat": now - 600 }))),
        ("iat in the future", ok(json!({ "iat": now + 600 }))),
    ];
    for (why, proof) in cases {
        let res = app.push_dpop(&push_params("app"), &proof).await;
        assert_eq!(res.status(), 400, "{why}");
        let body = assert_oauth_error(res, 400, "invalid_dpop_proof").await;
        assert!(body["error_description"].is_string(), "{why}");
    }
    // Two DPoP headers.
    let res = app
        .http
        .post(app.url("/oauth2/par"))
        .basic_auth("app", Some(SECRET))
        .header("DPoP", ok(json!({})))
        .header("DPoP", ok(json!({})))
        .form(&push_params("app"))
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_dpop_proof").await;
    // The htu's query is ignored.
    let query = key.proof("POST", &format!("{par}?x=1"), json!({}));
    assert_eq!(app.push_dpop(&push_params("app"), &query).await.status(), 201);
}

/// A proof's `jti` is spent on every replica: the same proof sent to another replica (the
/// endpoint URL is the shared issuer's, not the replica's address) is refused.
#[tokio::test]
async fn a_replayed_proof_is_refused_by_another_replica() {
    let a = spawn_app().await;
    let b = a.replica(|_| {}).await;
    let proof = DpopKey::a().proof("POST", &a.endpoint("par"), json!({}));
    assert_eq!(a.push_dpop(&push_params("app"), &proof).await.status(), 201);
    assert_oauth_error(
        b.push_dpop(&push_params("app"), &proof).await,
        400,
        "invalid_dpop_proof",
    )
    .await;
}

fn require_nonces(s: &mut par_server::config::Settings) {
    s.dpop.require_nonce = true;
    s.dpop.nonce_key = Some(Secret::new(NONCE_KEY));
}

/// RFC 9449 §8: a client that must use nonces gets `use_dpop_nonce` and a `DPoP-Nonce`
/// from one replica, and its retry with that nonce succeeds on another replica (no shared
/// state but the key); each success carries a fresh nonce.
#[tokio::test]
async fn a_nonce_from_one_replica_is_accepted_by_another() {
    let a = spawn_app_with(Backend::Redis, require_nonces).await;
    let b = a.replica(|_| {}).await;
    let key = DpopKey::a();
    let par = a.endpoint("par");
    let before = value(
        &scrape(&a).await,
        "par_dpop_nonce_challenges_total",
        &[("endpoint", "par")],
    );

    let res = a
        .push_dpop(&push_params("app"), &key.proof("POST", &par, json!({})))
        .await;
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_oauth_error(res, 400, "use_dpop_nonce").await;
    let after = value(
        &scrape(&a).await,
        "par_dpop_nonce_challenges_total",
        &[("endpoint", "par")],
    );
    assert!(after > before, "the challenge is counted");

    let res = b
        .push_dpop(
            &push_params("app"),
            &key.proof("POST", &par, json!({ "nonce": nonce })),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert!(
        res.headers().contains_key("dpop-nonce"),
        "a fresh nonce with success"
    );
    // A nonce the replicas did not make is refused with a new one.
    let res = b
        .push_dpop(
            &push_params("app"),
            &key.proof("POST", &par, json!({ "nonce": "forged" })),
        )
        .await;
    assert!(res.headers().contains_key("dpop-nonce"));
    assert_oauth_error(res, 400, "use_dpop_nonce").await;

    // Token and userinfo ask for it the same way; userinfo answers 401 with a challenge.
    let code = a
        .issue_code(AuthorizationCodeExt::bound(code_record("app"), &key.jkt()))
        .await;
    let token = a.endpoint("token");
    let res = a
        .token_dpop(&token_params(&code), Some(&key.proof("POST", &token, json!({}))))
        .await;
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_oauth_error(res, 400, "use_dpop_nonce").await;
    let proof = key.proof("POST", &token, json!({ "nonce": nonce }));
    let res = b.token_dpop(&token_params(&code), Some(&proof)).await;
    assert_eq!(res.status(), 200, "the refused proof did not burn the code");
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let tokens: Value = res.json().await.unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let userinfo = a.endpoint("userinfo");
    let res = b
        .userinfo_dpop(
            "DPoP",
            at,
            Some(&key.proof("GET", &userinfo, json!({ "ath": ath(at) }))),
        )
        .await;
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("DPoP error=\"use_dpop_nonce\"")
    );
    assert!(res.headers().contains_key("dpop-nonce"));
    let proof = key.proof("GET", &userinfo, json!({ "ath": ath(at), "nonce": nonce }));
    assert_eq!(a.userinfo_dpop("DPoP", at, Some(&proof)).await.status(), 200);
}

/// The per-client switches: `require_dpop_nonce: false` exempts a client from the global
/// nonce requirement; `dpop_bound_access_tokens: true` makes a proof mandatory at the token
/// endpoint.
#[tokio::test]
async fn per_client_switches() {
    let app = spawn_app_with(Backend::Redis, |s| {
        require_nonces(s);
        let app = s.clients.iter_mut().find(|c| c.client_id == "app").unwrap();
        app.require_dpop_nonce = Some(false);
        app.dpop_bound_access_tokens = true;
    })
    .await;
    let key = DpopKey::a();
    let res = app
        .push_dpop(
            &push_params("app"),
            &key.proof("POST", &app.endpoint("par"), json!({})),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert!(!res.headers().contains_key("dpop-nonce"));
    let code = app.issue_code(code_record("app")).await;
    assert_oauth_error(
        app.post_token(&token_params(&code)).await,
        400,
        "invalid_dpop_proof",
    )
    .await;
    let code = app.issue_code(code_record("app")).await;
    let tokens = app.redeem_with_proof(&code, &key).await;
    assert_eq!(tokens["token_type"], "DPoP");
}

/// The playground's DPoP box: a login whose PAR, token and userinfo requests carry proofs
/// (and answer the nonce challenges), ending on a page that shows the `cnf` claim.
#[tokio::test]
async fn the_playground_logs_in_with_dpop_and_shows_cnf() {
    let app = spawn_app_with(Backend::Redis, |s| {
        require_nonces(s);
        s.playground.enabled = true;
        s.playground.client_id = Some("app".into());
        let app = s.clients.iter_mut().find(|c| c.client_id == "app").unwrap();
        // The test's port is chosen at start: a native client's loopback redirect URI
        // matches on any port (RFC 8252 §7.3).
        app.application_type = serde_json::from_value(json!("native")).unwrap();
        app.redirect_uris
            .push("http://127.0.0.1/playground/callback".into());
    })
    .await;
    let browser = http_client();
    let start = browser
        .post(app.url("/playground/start"))
        .form(&[("dpop", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303, "{:?}", start.text().await);
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    let html = browser
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let done = app.login(&browser, &html, "alice", PASSWORD).await;
    assert_eq!(done.status(), 303);
    let callback = done.headers()["location"].to_str().unwrap().to_owned();
    let page = browser.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("<code id=\"token-type\">DPoP</code>"), "{page}");
    assert!(page.contains("cnf"), "{page}");
    assert!(page.contains("alice@example.com"), "userinfo answered: {page}");
}
