//! Start-up validation: [`Settings::validate`] checks every rule, naming the offending key,
//! and builds what the service runs on — client registry, users, signing keys, Redis
//! options — once, into [`ValidSettings`]. The sections with most rules have their own
//! modules (`clients`, `keys`, `redis`).

use std::collections::HashSet;

use super::error::{ConfigError, fail};
use super::net::is_loopback_host;
use super::settings::{Settings, TelemetrySettings, UserSettings};
use super::{clients, dpop, fapi2, keys, limits, redis};
use crate::oauth::client::ClientRegistry;
use crate::oauth::dpop::DpopRules;
use crate::signing::SigningKeys;
use crate::store::RedisOptions;
use crate::users::{User, UserDirectory};

/// The configuration after [`Settings::validate`]: the settings, and what was built from
/// them.
pub struct ValidSettings {
    pub settings: Settings,
    pub(crate) clients: ClientRegistry,
    pub(crate) users: UserDirectory,
    /// Rate limits, quotas and the password queue (`limits.*`).
    pub(crate) limits: crate::limits::Limits,
    /// `None`: no key configured, allowed only without Redis (the single-process demo
    /// generates one at start).
    pub(crate) signing_keys: Option<SigningKeys>,
    /// `None`: no Redis configured (the in-memory store).
    pub(crate) redis: Option<RedisOptions>,
    /// DPoP proof policy and nonce keys.
    pub(crate) dpop: DpopRules,
    /// Where this configuration stands against FAPI 2.0 (enforced with `profile: fapi2`).
    pub fapi2: Vec<fapi2::Requirement>,
}

impl std::fmt::Debug for ValidSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidSettings")
            .field("settings", &self.settings)
            .field("signing_keys", &self.signing_keys)
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The issuer in force: configured, or derived from the bound address.
    pub(crate) fn issuer_or(&self, bound: std::net::SocketAddr) -> String {
        match &self.issuer {
            Some(i) => i.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }

    /// Checks every rule and builds, once, what the service runs on. Every error names the
    /// offending key.
    pub fn validate(self) -> Result<ValidSettings, ConfigError> {
        validate_telemetry(&self.telemetry)?;
        if let Some(issuer) = &self.issuer {
            validate_issuer(issuer)?;
        }
        let bind_host = self
            .http
            .bind
            .rsplit_once(':')
            .filter(|(_, port)| port.parse::<u16>().is_ok())
            .map(|(host, _)| host)
            .ok_or_else(|| ConfigError::new("http.bind", "must be host:port"))?;
        if let Some(admin) = &self.http.admin_bind
            && (admin.parse::<std::net::SocketAddr>().is_err() || *admin == self.http.bind)
        {
            return fail(
                "http.admin_bind",
                "must be an ip:port other than http.bind, e.g. 0.0.0.0:9090",
            );
        }
        if self.issuer.is_none() && !is_loopback_host(bind_host) {
            return fail("issuer", "required when http.bind is not a loopback address");
        }
        if !self.http.base_path.is_empty()
            && (!self.http.base_path.starts_with('/') || self.http.base_path.ends_with('/'))
        {
            return fail(
                "http.base_path",
                "must be empty or start with '/' and not end with '/'",
            );
        }
        if !(1024..=10 * 1024 * 1024).contains(&self.http.body_limit) {
            return fail("http.body_limit", "must be between 1024 and 10485760 bytes");
        }
        if !(1..=300).contains(&self.http.header_timeout_secs) {
            return fail("http.header_timeout_secs", "must be between 1 and 300 seconds");
        }
        if !(1..=300).contains(&self.http.body_timeout_secs) {
            return fail("http.body_timeout_secs", "must be between 1 and 300 seconds");
        }
        if !(16..=1_000_000).contains(&self.http.max_connections) {
            return fail("http.max_connections", "must be between 16 and 1000000");
        }
        let redis = redis::redis_options(&self.redis)?;
        if self.http.shutdown_grace_secs > 3600 {
            return fail("http.shutdown_grace_secs", "must be at most 3600 seconds");
        }
        if self.http.drain_delay_secs > 600 {
            return fail("http.drain_delay_secs", "must be at most 600 seconds");
        }
        let par = &self.par;
        if !(1..600).contains(&par.request_uri_lifetime) {
            return fail(
                "par.request_uri_lifetime",
                "must be between 1 and 599 seconds (FAPI 2.0: below 600)",
            );
        }
        if par.interaction_lifetime < par.request_uri_lifetime || par.interaction_lifetime > 86_400 {
            return fail(
                "par.interaction_lifetime",
                "must be at least par.request_uri_lifetime and at most 86400",
            );
        }
        if !(1..=86_400).contains(&par.request_object_max_lifetime) {
            return fail(
                "par.request_object_max_lifetime",
                "must be between 1 and 86400 seconds",
            );
        }
        for (i, p) in self.accepted_prefixes().iter().enumerate() {
            let key = if i == 0 {
                "par.request_uri_prefix".to_owned()
            } else {
                format!("par.accepted_request_uri_prefixes[{}]", i - 1)
            };
            if !p.starts_with("urn:") || p.len() > 128 || p.contains(char::is_whitespace) {
                return fail(
                    key,
                    "must be a URN prefix such as urn:ietf:params:oauth:request_uri:",
                );
            }
        }
        if !(1..=60).contains(&self.tokens.code_lifetime) {
            return fail("tokens.code_lifetime", "must be between 1 and 60 seconds");
        }
        if !(1..=86_400).contains(&self.tokens.access_token_lifetime) {
            return fail(
                "tokens.access_token_lifetime",
                "must be between 1 and 86400 seconds",
            );
        }
        let t = &self.tokens;
        if !(60..=366 * 86_400).contains(&t.refresh_token_idle_lifetime) {
            return fail(
                "tokens.refresh_token_idle_lifetime",
                "must be between 60 and 31622400 seconds",
            );
        }
        if t.refresh_token_absolute_lifetime < t.refresh_token_idle_lifetime
            || t.refresh_token_absolute_lifetime > 366 * 86_400
        {
            return fail(
                "tokens.refresh_token_absolute_lifetime",
                "must be at least tokens.refresh_token_idle_lifetime and at most 31622400 seconds",
            );
        }
        if !(1..=86_400).contains(&self.tokens.id_token_lifetime) {
            return fail("tokens.id_token_lifetime", "must be between 1 and 86400 seconds");
        }
        // Replicas verify each other's tokens: they must share keys.
        if self.keys.is_empty() && redis.is_some() {
            return fail(
                "keys",
                "required with a Redis store: replicas must share signing keys",
            );
        }
        let signing_keys = keys::signing_keys(&self.keys)?;
        let clients = clients::client_registry(&self.clients, &self.par, self.dpop.require_nonce)?;
        let dpop = dpop::dpop_rules(&self.dpop, &clients, redis.is_some())?;
        let users = user_directory(&self.users)?;
        if let Some(id) = &self.playground.client_id
            && clients.get(id).is_none()
        {
            return fail("playground.client_id", format!("no client '{id}' is configured"));
        }
        if !(1024..=1024 * 1024).contains(&self.par.max_record_bytes) {
            return fail("par.max_record_bytes", "must be between 1024 and 1048576 bytes");
        }
        let limits = limits::limits(
            &self.limits,
            &self.clients,
            std::time::Duration::from_secs(self.par.request_uri_lifetime),
        )?;
        let fapi2 = fapi2::assess(&self, &clients, signing_keys.as_ref());
        if let Some((key, message)) = fapi2::first_unmet(&self, &fapi2) {
            return fail(key, message);
        }
        Ok(ValidSettings {
            fapi2,
            settings: self,
            limits,
            clients,
            users,
            signing_keys,
            redis,
            dpop,
        })
    }
}

/// The users, each with a unique name and an argon2 PHC string.
fn user_directory(users: &[UserSettings]) -> Result<UserDirectory, ConfigError> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(users.len());
    for (i, u) in users.iter().enumerate() {
        if u.username.is_empty() || !names.insert(u.username.as_str()) {
            return fail(format!("users[{i}].username"), "must be non-empty and unique");
        }
        if argon2::password_hash::phc::PasswordHash::new(u.password_hash.expose()).is_err()
            || !u.password_hash.expose().starts_with("$argon2")
        {
            return fail(
                format!("users[{i}].password_hash"),
                "must be an argon2 PHC string (see `par-server hash-password`)",
            );
        }
        out.push(User {
            username: u.username.clone(),
            sub: u.sub.clone().unwrap_or_else(|| u.username.clone()),
            password_hash: u.password_hash.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            name: u.name.clone(),
            given_name: u.given_name.clone(),
            family_name: u.family_name.clone(),
        });
    }
    Ok(UserDirectory::new(out))
}

fn validate_telemetry(t: &TelemetrySettings) -> Result<(), ConfigError> {
    if let Some(r) = t.sampling_ratio
        && !(0.0..=1.0).contains(&r)
    {
        return fail("telemetry.sampling_ratio", "must be between 0.0 and 1.0");
    }
    if let Some(e) = &t.otlp_endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        return fail("telemetry.otlp_endpoint", "must be an http:// or https:// URL");
    }
    Ok(())
}

fn validate_issuer(issuer: &str) -> Result<(), ConfigError> {
    let url = url::Url::parse(issuer).or_else(|_| fail("issuer", "must be an absolute URL"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return fail("issuer", "must not have a query or fragment (RFC 8414 §2)");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(()),
        "http" => fail(
            "issuer",
            "http:// is only allowed for loopback hosts; use https://",
        ),
        _ => fail("issuer", "must be an https:// URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientSettings, KeySettings};
    use crate::oauth::client::AuthMethod;
    use crate::secret::Secret;

    fn client() -> ClientSettings {
        ClientSettings {
            client_secret: Some(Secret::new("0123456789abcdef")),
            ..ClientSettings::new("a", vec!["https://app.example/cb".into()])
        }
    }

    fn settings_with(f: impl FnOnce(&mut Settings)) -> Result<ValidSettings, ConfigError> {
        let mut s = Settings {
            clients: vec![client()],
            ..Settings::default()
        };
        f(&mut s);
        s.validate()
    }

    #[test]
    fn defaults_with_one_client_are_valid() {
        settings_with(|_| {}).unwrap();
    }

    #[test]
    fn each_rule_names_its_key() {
        type Change = Box<dyn FnOnce(&mut Settings)>;
        let table: Vec<(Change, &str)> = vec![
            (
                Box::new(|s| s.issuer = Some("http://login.example.com".into())),
                "issuer",
            ),
            (
                Box::new(|s| s.issuer = Some("https://x.example?q=1".into())),
                "issuer",
            ),
            (
                Box::new(|s| s.par.request_uri_lifetime = 0),
                "par.request_uri_lifetime",
            ),
            (
                Box::new(|s| s.par.request_uri_lifetime = 600),
                "par.request_uri_lifetime",
            ),
            (Box::new(|s| s.tokens.code_lifetime = 61), "tokens.code_lifetime"),
            (Box::new(|s| s.clients.push(client())), "clients[1].client_id"),
            (
                Box::new(|s| s.clients[0].redirect_uris = vec!["/cb".into()]),
                "clients[0].redirect_uris[0]",
            ),
            (
                Box::new(|s| s.clients[0].redirect_uris = vec!["http://app.example/cb".into()]),
                "clients[0].redirect_uris[0]",
            ),
            (
                Box::new(|s| s.clients[0].redirect_uris = vec!["https://a.example/cb#x".into()]),
                "clients[0].redirect_uris[0]",
            ),
            (
                Box::new(|s| {
                    s.clients[0].client_secret = None;
                    s.clients[0].token_endpoint_auth_method = Some(AuthMethod::ClientSecretBasic)
                }),
                "clients[0].client_secret",
            ),
            (
                Box::new(|s| s.clients[0].token_endpoint_auth_method = Some(AuthMethod::PrivateKeyJwt)),
                "clients[0].jwks",
            ),
            (Box::new(|s| s.http.bind = "0.0.0.0".into()), "http.bind"),
            (Box::new(|s| s.http.bind = "0.0.0.0:8080".into()), "issuer"),
            (
                Box::new(|s| s.redis.url = Some(Secret::new("http://x"))),
                "redis.url",
            ),
            (
                Box::new(|s| s.redis.url = Some(Secret::new("redis://127.0.0.1:6379"))),
                "keys",
            ),
            (
                Box::new(|s| {
                    s.keys = vec![KeySettings {
                        kid: None,
                        alg: "ES256".into(),
                        pem: None,
                        pem_file: Some("/nonexistent.pem".into()),
                        active: false,
                    }]
                }),
                "keys[0].pem_file",
            ),
            (
                Box::new(|s| s.redis.mode = crate::config::RedisMode::Cluster),
                "redis.cluster_nodes",
            ),
            (
                Box::new(|s| {
                    s.redis.mode = crate::config::RedisMode::Cluster;
                    s.redis.cluster_nodes = vec!["redis://a:1".into(), "tcp://b:2".into()];
                }),
                "redis.cluster_nodes[1]",
            ),
            (
                Box::new(|s| {
                    s.redis.mode = crate::config::RedisMode::Cluster;
                    s.redis.cluster_nodes = vec!["redis://a:1".into()];
                    s.redis.connection = crate::config::RedisConnection::Pool;
                }),
                "redis.connection",
            ),
            (
                Box::new(|s| {
                    s.redis.mode = crate::config::RedisMode::Sentinel;
                    s.redis.sentinel_nodes = vec!["redis://a:26379".into()];
                }),
                "redis.sentinel_master",
            ),
            (
                Box::new(|s| {
                    s.redis.mode = crate::config::RedisMode::Sentinel;
                    s.redis.sentinel_master = Some("m".into());
                }),
                "redis.sentinel_nodes",
            ),
            (
                Box::new(|s| s.redis.tls_ca_file = Some("/nonexistent/ca.pem".into())),
                "redis.tls_ca_file",
            ),
            (
                Box::new(|s| s.redis.pool_wait_timeout_ms = Some(0)),
                "redis.pool_wait_timeout_ms",
            ),
            (
                Box::new(|s| s.redis.connect_timeout_ms = 0),
                "redis.connect_timeout_ms",
            ),
            (
                Box::new(|s| s.http.drain_delay_secs = 601),
                "http.drain_delay_secs",
            ),
            (Box::new(|s| s.dpop.signing_algs = vec![]), "dpop.signing_algs"),
            (
                Box::new(|s| s.dpop.signing_algs = vec!["ES256".into(), "HS256".into()]),
                "dpop.signing_algs[1]",
            ),
            (
                Box::new(|s| s.dpop.signing_algs = vec!["none".into()]),
                "dpop.signing_algs[0]",
            ),
            (Box::new(|s| s.dpop.proof_max_age = 0), "dpop.proof_max_age"),
            (
                Box::new(|s| s.tokens.refresh_token_absolute_lifetime = 100),
                "tokens.refresh_token_absolute_lifetime",
            ),
            (
                Box::new(|s| s.clients[0].grant_types = vec!["password".into()]),
                "clients[0].grant_types[0]",
            ),
            (
                Box::new(|s| s.clients[0].grant_types = vec!["refresh_token".into()]),
                "clients[0].grant_types",
            ),
            (Box::new(|s| s.dpop.clock_skew = 301), "dpop.clock_skew"),
            (Box::new(|s| s.dpop.nonce_lifetime = 5), "dpop.nonce_lifetime"),
            (
                Box::new(|s| s.dpop.nonce_key = Some(Secret::new("short"))),
                "dpop.nonce_key",
            ),
            (
                Box::new(|s| s.dpop.previous_nonce_key = Some(Secret::new("p".repeat(32)))),
                "dpop.previous_nonce_key",
            ),
            (
                // Replicas on one Redis must share the nonce key.
                Box::new(|s| {
                    s.redis.url = Some(Secret::new("redis://127.0.0.1:6379"));
                    s.keys = vec![KeySettings {
                        kid: None,
                        alg: "ES256".into(),
                        pem: None,
                        pem_file: Some(
                            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/signing-es256.pem").into(),
                        ),
                        active: false,
                    }];
                    s.clients[0].require_dpop_nonce = Some(true);
                }),
                "dpop.nonce_key",
            ),
        ];
        for (change, key) in table {
            let err = settings_with(change).unwrap_err();
            assert_eq!(err.key, key, "{err}");
        }
    }

    #[test]
    fn dpop_nonces_need_a_key_only_when_required() {
        // One process: a key of its own is generated when a client requires nonces.
        let one = settings_with(|s| s.dpop.require_nonce = true).unwrap();
        assert!(one.dpop.nonces.is_some());
        assert!(one.clients.get("a").unwrap().require_dpop_nonce);
        let none = settings_with(|_| {}).unwrap();
        assert!(none.dpop.nonces.is_none());
        assert_eq!(none.dpop.policy.alg_names(), ["ES256", "PS256", "EdDSA"]);
        // The per-client switch overrides the global one.
        let off = settings_with(|s| {
            s.dpop.require_nonce = true;
            s.clients[0].require_dpop_nonce = Some(false);
        })
        .unwrap();
        assert!(!off.clients.get("a").unwrap().require_dpop_nonce);
    }

    #[test]
    fn https_issuer_and_non_loopback_bind_are_fine() {
        settings_with(|s| {
            s.issuer = Some("https://login.example.com".into());
            s.http.bind = "0.0.0.0:8080".into();
        })
        .unwrap();
    }
}
