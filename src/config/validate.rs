//! Start-up validation: every rule names the offending key, so a bad deployment stops with
//! one clear line instead of failing on the first request.

use std::collections::HashSet;
use std::net::IpAddr;

use jsonwebtoken::jwk::JwkSet;

use super::{ClientSettings, Settings};
use crate::oauth::client::{AuthMethod, Client, ClientRegistry, Credential};

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

fn fail<T>(key: impl Into<String>, reason: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::new(key, reason))
}

/// `127.0.0.1`, `::1`, `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `http.bind` names a loopback address.
pub fn is_loopback_bind(bind: &str) -> bool {
    bind.rsplit_once(':')
        .is_some_and(|(host, _)| is_loopback_host(host))
}

impl Settings {
    /// The issuer in force: configured, or derived from the bound address.
    pub fn issuer_or(&self, bound: std::net::SocketAddr) -> String {
        match &self.issuer {
            Some(i) => i.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
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
        self.validate_redis()?;
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
        if !(1..=86_400).contains(&self.tokens.id_token_lifetime) {
            return fail("tokens.id_token_lifetime", "must be between 1 and 86400 seconds");
        }
        // Replicas verify each other's tokens: they must share keys (brief §4).
        if self.keys.is_empty() && self.redis.is_configured() {
            return fail(
                "keys",
                "required with a Redis store: replicas must share signing keys",
            );
        }
        crate::keys::SigningKeys::from_settings(&self.keys)?;
        self.client_registry()?;
        let mut names = HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
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
        }
        if let Some(id) = &self.playground.client_id
            && !self.clients.iter().any(|c| &c.client_id == id)
        {
            return fail("playground.client_id", format!("no client '{id}' is configured"));
        }
        Ok(())
    }

    /// The validated client registry.
    pub fn client_registry(&self) -> Result<ClientRegistry, ConfigError> {
        let mut seen = HashSet::new();
        let mut clients = Vec::with_capacity(self.clients.len());
        for (i, c) in self.clients.iter().enumerate() {
            if !seen.insert(c.client_id.as_str()) {
                return fail(
                    format!("clients[{i}].client_id"),
                    format!("duplicate client_id '{}'", c.client_id),
                );
            }
            clients.push(client_from(i, c, self.par.required)?);
        }
        Ok(ClientRegistry::new(clients))
    }
}

fn validate_telemetry(t: &super::TelemetrySettings) -> Result<(), ConfigError> {
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

fn client_from(i: usize, c: &ClientSettings, par_required: bool) -> Result<Client, ConfigError> {
    let key = |field: &str| format!("clients[{i}].{field}");
    if c.client_id.is_empty() || c.client_id.len() > 256 || c.client_id.chars().any(char::is_control) {
        return fail(key("client_id"), "must be 1-256 printable characters");
    }
    let jwks = match (&c.jwks, &c.jwks_file) {
        (Some(_), Some(_)) => return fail(key("jwks"), "set jwks or jwks_file, not both"),
        (Some(v), None) => Some(v.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .or_else(|e| fail(key("jwks_file"), format!("{}: {e}", path.display())))?;
            Some(serde_json::from_str(&text).or_else(|e| fail(key("jwks_file"), e.to_string()))?)
        }
        (None, None) => None,
    };
    let method = c
        .token_endpoint_auth_method
        .unwrap_or(match (&c.client_secret, &jwks) {
            (Some(_), _) => AuthMethod::ClientSecretBasic,
            (None, Some(_)) => AuthMethod::PrivateKeyJwt,
            (None, None) => AuthMethod::None,
        });
    let credential = match method {
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
            let secret = c.client_secret.clone().ok_or_else(|| {
                ConfigError::new(key("client_secret"), format!("required for {}", method.as_str()))
            })?;
            if secret.expose().len() < 8 {
                return fail(key("client_secret"), "must be at least 8 characters");
            }
            if jwks.is_some() {
                return fail(key("jwks"), format!("not used with {}", method.as_str()));
            }
            Credential::Secret(secret)
        }
        AuthMethod::PrivateKeyJwt => {
            let value = jwks.ok_or_else(|| ConfigError::new(key("jwks"), "required for private_key_jwt"))?;
            let set: JwkSet = serde_json::from_value(value)
                .or_else(|e| fail(key("jwks"), format!("not a JWK Set: {e}")))?;
            if set.keys.is_empty() {
                return fail(key("jwks"), "must contain at least one key");
            }
            for (k, jwk) in set.keys.iter().enumerate() {
                if jsonwebtoken::DecodingKey::from_jwk(jwk).is_err() {
                    return fail(format!("clients[{i}].jwks.keys[{k}]"), "unusable key");
                }
            }
            if c.client_secret.is_some() {
                return fail(key("client_secret"), "not used with private_key_jwt");
            }
            Credential::Jwks(Box::new(set))
        }
        AuthMethod::None => {
            if c.client_secret.is_some() || jwks.is_some() {
                return fail(
                    key("token_endpoint_auth_method"),
                    "a public client (none) has no secret or keys",
                );
            }
            Credential::None
        }
    };
    if c.redirect_uris.is_empty() {
        return fail(key("redirect_uris"), "at least one redirect URI is required");
    }
    for (j, uri) in c.redirect_uris.iter().enumerate() {
        validate_redirect_uri(uri)
            .map_err(|reason| ConfigError::new(format!("clients[{i}].redirect_uris[{j}]"), reason))?;
    }
    if c.scopes.is_empty() {
        return fail(key("scopes"), "at least one scope is required");
    }
    if method == AuthMethod::None && !c.require_pkce {
        return fail(key("require_pkce"), "public clients must use PKCE");
    }
    Ok(Client {
        id: c.client_id.clone(),
        name: c.client_name.clone().unwrap_or_else(|| c.client_id.clone()),
        auth_method: method,
        credential,
        redirect_uris: c.redirect_uris.clone(),
        scopes: c.scopes.clone(),
        require_par: c.require_pushed_authorization_requests.unwrap_or(par_required),
        require_pkce: c.require_pkce,
        consent: c.consent,
    })
}

/// RFC 6749 §3.1.2: absolute, no fragment. RFC 9700 §2.6 / FAPI 2.0: `https`, or `http` only
/// on loopback (RFC 8252 §7.3); private-use schemes (RFC 8252 §7.1) must contain a dot.
fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|_| format!("'{uri}' is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!("'{uri}' must not contain a fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(()),
        "http" => Err(format!("'{uri}': http is only allowed for loopback hosts")),
        s if s.contains('.') => Ok(()),
        _ => Err(format!(
            "'{uri}': scheme must be https, loopback http, or a reverse-DNS private-use scheme"
        )),
    }
}

/// A Redis node URL: `redis://` or `rediss://` (plus `unix://` where `unix_ok`) that the
/// client library parses.
fn redis_url_ok(url: &str, unix_ok: bool) -> bool {
    let schemes: &[&str] = if unix_ok {
        &["redis://", "rediss://", "unix://", "redis+unix://"]
    } else {
        &["redis://", "rediss://"]
    };
    schemes.iter().any(|s| url.starts_with(s)) && redis::Client::open(url).is_ok()
}

impl Settings {
    /// The `redis` section (brief §4): one topology, its addresses, TLS files, timeouts and
    /// pool settings.
    fn validate_redis(&self) -> Result<(), ConfigError> {
        use super::{RedisConnection, RedisMode};
        let r = &self.redis;
        match r.mode {
            RedisMode::Standalone => {
                if let Some(url) = &r.url
                    && !redis_url_ok(url.expose(), true)
                {
                    return fail("redis.url", "must be a redis://, rediss:// or unix:// URL");
                }
                if !r.cluster_nodes.is_empty() {
                    return fail("redis.cluster_nodes", "only used with redis.mode = cluster");
                }
                if !r.sentinel_nodes.is_empty() || r.sentinel_master.is_some() {
                    return fail("redis.sentinel_nodes", "only used with redis.mode = sentinel");
                }
            }
            RedisMode::Cluster => {
                if r.url.is_some() {
                    return fail(
                        "redis.url",
                        "not used with redis.mode = cluster; list redis.cluster_nodes",
                    );
                }
                if r.cluster_nodes.is_empty() {
                    return fail(
                        "redis.cluster_nodes",
                        "at least one seed node is required in cluster mode",
                    );
                }
                for (i, n) in r.cluster_nodes.iter().enumerate() {
                    if !redis_url_ok(n, false) {
                        return fail(
                            format!("redis.cluster_nodes[{i}]"),
                            "must be a redis://host:port or rediss://host:port URL",
                        );
                    }
                }
                if r.cluster_nodes.iter().any(|n| n.starts_with("rediss://"))
                    != r.cluster_nodes.iter().all(|n| n.starts_with("rediss://"))
                {
                    return fail(
                        "redis.cluster_nodes",
                        "use rediss:// for all seed nodes or for none",
                    );
                }
                if r.db.is_some_and(|d| d != 0) {
                    return fail("redis.db", "Redis Cluster has only database 0");
                }
                if !r.sentinel_nodes.is_empty() || r.sentinel_master.is_some() {
                    return fail("redis.sentinel_nodes", "only used with redis.mode = sentinel");
                }
            }
            RedisMode::Sentinel => {
                if r.url.is_some() {
                    return fail(
                        "redis.url",
                        "not used with redis.mode = sentinel; list redis.sentinel_nodes",
                    );
                }
                if r.sentinel_nodes.is_empty() {
                    return fail(
                        "redis.sentinel_nodes",
                        "at least one sentinel is required in sentinel mode",
                    );
                }
                for (i, n) in r.sentinel_nodes.iter().enumerate() {
                    if !redis_url_ok(n, false) {
                        return fail(
                            format!("redis.sentinel_nodes[{i}]"),
                            "must be a redis://host:port or rediss://host:port URL",
                        );
                    }
                }
                if r.sentinel_nodes.iter().any(|n| n.starts_with("rediss://"))
                    != r.sentinel_nodes.iter().all(|n| n.starts_with("rediss://"))
                {
                    return fail(
                        "redis.sentinel_nodes",
                        "use rediss:// for all sentinels or for none",
                    );
                }
                if r.sentinel_master.as_deref().is_none_or(str::is_empty) {
                    return fail(
                        "redis.sentinel_master",
                        "the monitored master's name is required in sentinel mode",
                    );
                }
                if !r.cluster_nodes.is_empty() {
                    return fail("redis.cluster_nodes", "only used with redis.mode = cluster");
                }
            }
        }
        if r.connection == RedisConnection::Pool && r.mode != RedisMode::Standalone {
            return fail(
                "redis.connection",
                "pool is only available with redis.mode = standalone (cluster and sentinel connections are multiplexed)",
            );
        }
        if r.wait_replicas > 0 && r.connection == RedisConnection::Pool {
            return fail("redis.wait_replicas", "needs redis.connection = multiplexed");
        }
        if r.wait_replicas > 16 {
            return fail("redis.wait_replicas", "must be at most 16");
        }
        if r.wait_timeout_ms == 0 {
            return fail("redis.wait_timeout_ms", "must be > 0");
        }
        if r.db.is_some_and(|d| !(0..=15).contains(&d)) {
            return fail("redis.db", "must be between 0 and 15");
        }
        for (key, file) in [
            ("redis.tls_ca_file", &r.tls_ca_file),
            ("redis.tls_client_cert_file", &r.tls_client_cert_file),
            ("redis.tls_client_key_file", &r.tls_client_key_file),
        ] {
            if let Some(f) = file
                && !f.is_file()
            {
                return fail(key, format!("{}: no such file", f.display()));
            }
        }
        if r.tls_client_cert_file.is_some() != r.tls_client_key_file.is_some() {
            return fail(
                "redis.tls_client_key_file",
                "set both redis.tls_client_cert_file and redis.tls_client_key_file, or neither",
            );
        }
        if r.command_timeout_ms == 0 {
            return fail("redis.command_timeout_ms", "must be > 0");
        }
        if r.connect_timeout_ms == 0 {
            return fail("redis.connect_timeout_ms", "must be > 0");
        }
        if !(1..=256).contains(&r.pool_size) {
            return fail("redis.pool_size", "must be between 1 and 256");
        }
        for (key, v) in [
            ("redis.pool_wait_timeout_ms", r.pool_wait_timeout_ms),
            ("redis.pool_create_timeout_ms", r.pool_create_timeout_ms),
            ("redis.pool_recycle_timeout_ms", r.pool_recycle_timeout_ms),
        ] {
            if v == Some(0) {
                return fail(key, "must be > 0");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeySettings;
    use crate::secret::Secret;

    fn client() -> ClientSettings {
        ClientSettings {
            client_id: "a".into(),
            client_name: None,
            client_secret: Some(Secret::new("0123456789abcdef")),
            token_endpoint_auth_method: None,
            jwks: None,
            jwks_file: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            scopes: vec!["openid".into()],
            require_pushed_authorization_requests: None,
            require_pkce: true,
            consent: false,
        }
    }

    fn settings_with(f: impl FnOnce(&mut Settings)) -> Result<(), ConfigError> {
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
        ];
        for (change, key) in table {
            let err = settings_with(change).unwrap_err();
            assert_eq!(err.key, key, "{err}");
        }
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
