#![allow(dead_code)] // shared by many test modules; not every helper is used by each
//! Test harness: a real `redis-server` per test on a free loopback port, the real
//! `Application` on port 0, and one request helper per endpoint. `TEST_LOG=<filter>` (e.g.
//! `TEST_LOG=debug`) prints the application's logs with each test's output.

use std::path::PathBuf;
use std::time::Duration;

use actix_web::web;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use par_server::config::{ClientSettings, KeySettings, Settings, UserSettings};
use par_server::oauth::client::AuthMethod;
use par_server::oauth::code::AuthorizationCode;
use par_server::secret::Secret;
use par_server::startup::Application;
use par_server::state::AppState;
use serde_json::Value;

pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const SECRET: &str = "test-secret-0123456789";
/// `sub` of the test user `alice`.
pub const ALICE_SUB: &str = "248289761001";
pub const NONCE: &str = "n-0S6_WzA2Mj";

pub use crate::config_file::{PASSWORD, REDIRECT};
pub use crate::html::form_value;
pub use crate::topology::RedisNode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redis,
    Memory,
}

pub struct TestApp {
    pub address: String,
    pub issuer: String,
    pub http: reqwest::Client,
    pub redis: Option<RedisNode>,
    pub state: web::Data<AppState>,
    pub settings: Settings,
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Public JWK Set of a fixture key, as a client would register it.
pub fn jwks_of(pem_fixture: &str, kid: &str) -> Value {
    let pem = std::fs::read(fixture(pem_fixture)).unwrap();
    let key = EncodingKey::from_ec_pem(&pem).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::json!({ "keys": [jwk] })
}

fn client(id: &str, method: Option<AuthMethod>, secret: Option<&str>) -> ClientSettings {
    ClientSettings {
        client_secret: secret.map(Secret::new),
        token_endpoint_auth_method: method,
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
        ..ClientSettings::new(id, vec![REDIRECT.into(), "http://127.0.0.1/callback".into()])
    }
}

/// An argon2id hash of [`PASSWORD`], computed once per test binary.
pub fn password_hash() -> String {
    static HASH: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| par_server::password::hash(PASSWORD).unwrap());
    HASH.clone()
}

/// Settings every test starts from: one client per authentication method, one user.
pub fn base_settings() -> Settings {
    let mut s = Settings::default();
    s.http.bind = "127.0.0.1:0".into();
    s.http.workers = 1;
    s.clients = vec![
        client("app", None, Some(SECRET)),
        client("post-app", Some(AuthMethod::ClientSecretPost), Some(SECRET)),
        ClientSettings {
            jwks: Some(jwks_of("client-es256.pem", "k1")),
            ..client("jwt-app", None, None)
        },
        client("public-app", None, None),
    ];
    s.users = vec![UserSettings {
        username: "alice".into(),
        password_hash: Secret::new(password_hash()),
        sub: Some(ALICE_SUB.into()),
        email: Some("alice@example.com".into()),
        email_verified: true,
        name: Some("Alice Example".into()),
        given_name: Some("Alice".into()),
        family_name: Some("Example".into()),
    }];
    // Replicas sharing Redis must share keys; tests use a committed test-only key.
    s.keys = vec![signing_key("signing-es256.pem", "ES256", false)];
    s
}

/// A `keys[]` entry for a fixture PEM file.
pub fn signing_key(pem_fixture: &str, alg: &str, active: bool) -> KeySettings {
    KeySettings {
        kid: None,
        alg: alg.into(),
        pem: None,
        pem_file: Some(fixture(pem_fixture)),
        active,
    }
}

/// The record code issuance stores after `alice` logged in to `app` with PKCE and a nonce.
pub fn code_record(client_id: &str) -> AuthorizationCode {
    AuthorizationCode {
        client_id: client_id.into(),
        redirect_uri: REDIRECT.into(),
        scope: vec!["openid".into(), "email".into(), "profile".into()],
        code_challenge: Some(CHALLENGE.into()),
        nonce: Some(NONCE.into()),
        sub: ALICE_SUB.into(),
        auth_time: par_server::clock::now() - 5,
        resource: vec![],
        claims: Default::default(),
        authorization_details: None,
        grant_id: par_server::crypto::random_token(16),
        dpop_jkt: None,
        flow_id: uuid::Uuid::new_v4().to_string(),
        trace: None,
    }
}

/// Token request parameters redeeming `code` the way client `app` should.
pub fn token_params(code: &str) -> Vec<(String, String)> {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Backend::Redis, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, customise: impl FnOnce(&mut Settings)) -> TestApp {
    let redis = (backend == Backend::Redis).then(|| RedisNode::start(&[]));
    let mut settings = base_settings();
    if let Some(r) = &redis {
        settings.redis.url = Some(Secret::new(r.url()));
        settings.redis.key_prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
        settings.redis.command_timeout_ms = 500;
        settings.redis.connect_timeout_ms = 500;
    }
    customise(&mut settings);
    spawn_with_settings(settings, redis).await
}

/// Starts an `Application` from `settings` (validated here, as `main` does).
pub async fn spawn_with_settings(settings: Settings, redis: Option<RedisNode>) -> TestApp {
    init_test_log();
    let valid = settings.clone().validate().expect("test settings are valid");
    let app = Application::build(valid).await.expect("app builds");
    let address = format!("http://{}", app.address());
    let issuer = app.issuer().to_owned();
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        issuer,
        http: http_client(),
        redis,
        state,
        settings,
    }
}

/// With `TEST_LOG` set, logs of the applications this process starts go to the output of the
/// test that emits them (shown when it fails, or always with `--nocapture`), filtered by the
/// variable's value (`debug`, `par_server=trace`, …). Installed once per process; nothing
/// when unset, and nothing where a test installed its own subscriber first.
fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .with_test_writer()
                .try_init();
        }
    });
}

/// A browser-like client: keeps cookies, never follows redirects.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Waits (20 s at most) until `url` answers 200: a started process is ready.
pub async fn wait_ready(url: &str) {
    let http = http_client();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if http.get(url).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became ready");
}

/// The parameters of a valid push for `client_id`.
pub fn push_params(client_id: &str) -> Vec<(String, String)> {
    [
        ("client_id", client_id),
        ("response_type", "code"),
        ("scope", "openid email profile"),
        ("redirect_uri", REDIRECT),
        ("state", "af0ifjsldkj"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Replaces (or with `None` removes) parameters.
pub fn with(mut params: Vec<(String, String)>, changes: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    for (k, v) in changes {
        params.retain(|(n, _)| n != k);
        if let Some(v) = v {
            params.push((k.to_string(), v.to_string()));
        }
    }
    params
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// POST /oauth2/par with HTTP Basic as client `app`.
    pub async fn push(&self, params: &[(String, String)]) -> reqwest::Response {
        self.http
            .post(self.url("/oauth2/par"))
            .basic_auth("app", Some(SECRET))
            .form(params)
            .send()
            .await
            .unwrap()
    }

    /// POST /oauth2/par with no Authorization header (post, assertion or public clients).
    pub async fn push_unauthenticated(&self, params: &[(String, String)]) -> reqwest::Response {
        self.http
            .post(self.url("/oauth2/par"))
            .form(params)
            .send()
            .await
            .unwrap()
    }

    /// Stores `record` exactly as code issuance does (the store's `store_code`, code
    /// lifetime) and returns the code.
    pub async fn issue_code(&self, record: AuthorizationCode) -> String {
        let code = par_server::oauth::code::new_code();
        self.state
            .store
            .store_code(&code, &record, self.state.lifetimes.code)
            .await
            .unwrap();
        code
    }

    /// POST /oauth2/token with HTTP Basic as client `app`.
    pub async fn post_token(&self, params: &[(String, String)]) -> reqwest::Response {
        self.http
            .post(self.url("/oauth2/token"))
            .basic_auth("app", Some(SECRET))
            .form(params)
            .send()
            .await
            .unwrap()
    }

    /// Issues a code for `app` and redeems it; returns the token response body.
    pub async fn tokens(&self) -> Value {
        let code = self.issue_code(code_record("app")).await;
        let res = self.post_token(&token_params(&code)).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// GET /oauth2/userinfo with `Authorization: Bearer <token>`.
    pub async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/oauth2/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }

    /// POST /oauth2/token with no Authorization header (post, assertion or public clients).
    pub async fn post_token_unauthenticated(&self, params: &[(String, String)]) -> reqwest::Response {
        self.http
            .post(self.url("/oauth2/token"))
            .form(params)
            .send()
            .await
            .unwrap()
    }

    /// The OpenID Provider metadata document.
    pub async fn metadata(&self) -> Value {
        let res = self
            .http
            .get(self.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// GET /oauth2/jwks as JSON.
    pub async fn jwks(&self) -> Value {
        let res = self.http.get(self.url("/oauth2/jwks")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Pushes a valid request for `app` and returns its request_uri.
    pub async fn push_valid(&self) -> String {
        request_uri_of(self.push(&push_params("app")).await).await
    }
}

/// The `request_uri` of a `201` push response.
pub async fn request_uri_of(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["request_uri"].as_str().unwrap().to_owned()
}

/// Asserts an OAuth JSON error with `status` and `code`; returns the body.
pub async fn assert_oauth_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = res.status().as_u16();
    assert!(
        res.headers().get("location").is_none(),
        "an error must not redirect"
    );
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (actual, body["error"].as_str().unwrap_or("")),
        (status, code),
        "body: {body}"
    );
    body
}

/// `params` authenticated by a `private_key_jwt` client assertion (RFC 7523 §2.2).
pub fn with_assertion(params: Vec<(String, String)>, assertion: &str) -> Vec<(String, String)> {
    with(
        params,
        &[
            (
                "client_assertion_type",
                Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ),
            ("client_assertion", Some(assertion)),
        ],
    )
}

/// A signed `private_key_jwt` client assertion (RFC 7523) with `claims` merged over sane
/// defaults for client `jwt-app`.
pub fn client_assertion(key_fixture: &str, aud: Value, overrides: Value) -> String {
    let now = par_server::clock::now();
    let mut claims = serde_json::json!({
        "iss": "jwt-app", "sub": "jwt-app", "aud": aud,
        "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 60,
    });
    if let (Some(c), Some(o)) = (claims.as_object_mut(), overrides.as_object()) {
        for (k, v) in o {
            c.insert(k.clone(), v.clone());
        }
    }
    let pem = std::fs::read(fixture(key_fixture)).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_pem(&pem).unwrap()).unwrap()
}

/// Query parameters of a redirect's `Location`.
pub fn location_params(res: &reqwest::Response) -> std::collections::HashMap<String, String> {
    let location = res
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap();
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

impl TestApp {
    /// Another replica: a second `Application` on the same Redis and key prefix.
    pub async fn replica(&self, customise: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings.clone();
        // Replicas share one issuer (behind a load balancer), not one each.
        settings.issuer = Some(self.issuer.clone());
        customise(&mut settings);
        spawn_with_settings(settings, None).await
    }

    pub async fn authorize(
        &self,
        browser: &reqwest::Client,
        client_id: &str,
        request_uri: &str,
    ) -> reqwest::Response {
        browser
            .get(self.url("/oauth2/authorize"))
            .query(&[("client_id", client_id), ("request_uri", request_uri)])
            .send()
            .await
            .unwrap()
    }

    /// Submits the login form found in `page` with these credentials.
    pub async fn login(
        &self,
        browser: &reqwest::Client,
        page: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let fields =
            ["client_id", "request_uri", "csrf_token"].map(|n| (n, form_value(page, n).unwrap_or_default()));
        let mut form: Vec<(&str, String)> = fields.to_vec();
        form.push(("username", username.into()));
        form.push(("password", password.into()));
        browser
            .post(self.url("/oauth2/login"))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Submits the consent form found in `page` with `decision` (`allow` or `deny`).
    pub async fn consent(&self, browser: &reqwest::Client, page: &str, decision: &str) -> reqwest::Response {
        let mut form: Vec<(&str, String)> = ["client_id", "request_uri", "csrf_token"]
            .map(|n| (n, form_value(page, n).unwrap_or_default()))
            .to_vec();
        form.push(("decision", decision.into()));
        browser
            .post(self.url("/oauth2/consent"))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// push → authorize → login as alice; returns the final (redirect) response.
    pub async fn full_login(&self, browser: &reqwest::Client) -> reqwest::Response {
        let uri = self.push_valid().await;
        let page = self.authorize(browser, "app", &uri).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        self.login(browser, &html, "alice", PASSWORD).await
    }
}

/// Asserts that `/authorize` refuses `request_uri` for client `app` in a fresh browser.
pub async fn assert_request_uri_refused(app: &TestApp, request_uri: &str) {
    assert_error_page(
        app.authorize(&http_client(), "app", request_uri).await,
        400,
        "invalid_request_uri",
    )
    .await;
}

/// Asserts a local HTML error page (no redirect) with `code`.
pub async fn assert_error_page(res: reqwest::Response, status: u16, code: &str) {
    assert_eq!(res.status().as_u16(), status);
    assert!(res.headers().get("location").is_none(), "must not redirect");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = res.text().await.unwrap();
    assert!(
        body.contains(&format!("<code>{code}</code>")),
        "expected {code} in {body}"
    );
}
