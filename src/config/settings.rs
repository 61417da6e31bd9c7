//! The settings tree and how it is loaded: built-in defaults, then a file (`--config FILE` or
//! `PAR_CONFIG`; YAML, TOML or JSON by extension), then `PAR__SECTION__KEY` environment
//! variables. `docs/configuration.md` lists every key; keep the two in step.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::oauth::client::AuthMethod;
use crate::oauth::request_uri::RFC_PREFIX;
use crate::secret::Secret;

pub use super::dpop_settings::DpopSettings;
use super::error::ConfigError;
pub use super::limit_settings::{BackoffSettings, ClientLimitSettings, LimitSettings, RateSettings};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `fapi2`: enforce the FAPI 2.0 Security Profile at start (`config::fapi2`).
    pub profile: Profile,
    /// Issuer identifier (RFC 8414 §2). Defaults to `http://<http.bind>`, which is only
    /// accepted for loopback addresses.
    pub issuer: Option<String>,
    pub http: HttpSettings,
    pub redis: RedisSettings,
    pub par: ParSettings,
    pub tokens: TokenSettings,
    pub session: SessionSettings,
    pub dpop: DpopSettings,
    pub keys: Vec<KeySettings>,
    pub clients: Vec<ClientSettings>,
    pub users: Vec<UserSettings>,
    pub log: LogSettings,
    pub playground: PlaygroundSettings,
    pub telemetry: TelemetrySettings,
    pub limits: LimitSettings,
}

/// A rule set the whole configuration must follow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    None,
    /// FAPI 2.0 Security Profile, plus the request-object part of Message Signing.
    Fapi2,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Listen address, `host:port`.
    pub bind: String,
    /// The admin listener, `host:port`: `/metrics` and copies of `/healthz` and `/readyz`.
    /// When set, `/metrics` is no longer served on `bind`.
    pub admin_bind: Option<String>,
    /// Path under which the OAuth endpoints live (`/oauth2/par`, …).
    pub base_path: String,
    /// actix worker threads; 0 = one per core.
    pub workers: usize,
    /// Largest accepted request body in bytes (PAR and token); larger → 413.
    pub body_limit: usize,
    /// Seconds a client has to send its request head (request line and headers); then the
    /// connection is closed (408).
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a whole form body once its handler reads it; then 408
    /// and the connection is closed.
    pub body_timeout_secs: u64,
    /// Open connections per replica (spread over the workers); beyond it new connections
    /// wait in the listen backlog.
    pub max_connections: usize,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Seconds between SIGTERM (`/readyz` turns 503) and closing the listener, so load
    /// balancers stop sending new requests first.
    pub drain_delay_secs: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            admin_bind: None,
            base_path: "/oauth2".into(),
            workers: 0,
            body_limit: 64 * 1024,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            max_connections: 4096,
            shutdown_grace_secs: 30,
            drain_delay_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RedisConnection {
    /// One multiplexed, auto-reconnecting connection per process (fastest; the default).
    Multiplexed,
    /// A deadpool-redis pool of `pool_size` connections (standalone only).
    Pool,
}

/// Redis topology (docs/redis.md).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RedisMode {
    /// One server at `redis.url` (absent → in-memory store).
    #[default]
    Standalone,
    /// Redis Cluster, discovered from `redis.cluster_nodes`.
    Cluster,
    /// A primary found through `redis.sentinel_nodes` under `redis.sentinel_master`.
    Sentinel,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `standalone` (default), `cluster` or `sentinel`.
    pub mode: RedisMode,
    /// Standalone: `redis://[user:password@]host:port[/db]` or `rediss://…`. Absent (in
    /// standalone mode) → in-memory store, single process only.
    pub url: Option<Secret>,
    /// Cluster: seed nodes, `redis://host:port` or `rediss://host:port`; the rest of the
    /// cluster is discovered from them.
    pub cluster_nodes: Vec<String>,
    /// Sentinel: the sentinels, `redis://host:26379` or `rediss://…`. The scheme also
    /// decides TLS to the primary they name.
    pub sentinel_nodes: Vec<String>,
    /// Sentinel: the monitored master's name (`sentinel monitor <name> …`).
    pub sentinel_master: Option<String>,
    /// ACL credentials for the sentinels themselves, if they require them.
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<Secret>,
    /// ACL user for the data nodes; overrides a user in the URL(s).
    pub username: Option<String>,
    /// ACL password (or `requirepass`) for the data nodes; overrides one in the URL(s).
    pub password: Option<Secret>,
    /// Database number (standalone and sentinel; Cluster has only 0).
    pub db: Option<i64>,
    /// PEM file of the CA that signed the Redis servers' certificates (`rediss://`);
    /// absent → the system trust store.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS (`tls-auth-clients yes`).
    pub tls_client_cert_file: Option<PathBuf>,
    pub tls_client_key_file: Option<PathBuf>,
    /// Prefix of every key, so several deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// Upper bound on every Redis call; past it the request fails with 503.
    pub command_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub connection: RedisConnection,
    /// Pool mode: connections in the pool.
    pub pool_size: usize,
    /// Pool mode: longest wait for a free connection (default: `command_timeout_ms`).
    pub pool_wait_timeout_ms: Option<u64>,
    /// Pool mode: longest time to open a connection (default: `connect_timeout_ms`).
    pub pool_create_timeout_ms: Option<u64>,
    /// Pool mode: longest health check of a returned connection (default:
    /// `command_timeout_ms`).
    pub pool_recycle_timeout_ms: Option<u64>,
    /// Replicas that must acknowledge (`WAIT`) a one-shot take before the record is handed
    /// out; 0 = off. Closes the async-replication window in which a failover could
    /// resurrect a taken record (docs/redis.md). Needs that many healthy replicas.
    pub wait_replicas: u32,
    /// Longest `WAIT` for those acknowledgements; fewer in time → 503.
    pub wait_timeout_ms: u64,
    /// Start even if Redis' `maxmemory-policy` may evict keys (only a loud warning). An
    /// evicted single-use marker lets a code or an assertion be used twice (docs/redis.md).
    pub allow_evicting_policy: bool,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            mode: RedisMode::Standalone,
            url: None,
            cluster_nodes: Vec::new(),
            sentinel_nodes: Vec::new(),
            sentinel_master: None,
            sentinel_username: None,
            sentinel_password: None,
            username: None,
            password: None,
            db: None,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
            key_prefix: "par:".into(),
            command_timeout_ms: 2000,
            connect_timeout_ms: 2000,
            connection: RedisConnection::Multiplexed,
            pool_size: 8,
            pool_wait_timeout_ms: None,
            pool_create_timeout_ms: None,
            pool_recycle_timeout_ms: None,
            wait_replicas: 0,
            wait_timeout_ms: 500,
            allow_evicting_policy: false,
        }
    }
}

impl RedisSettings {
    /// Whether the shared Redis store is configured (otherwise: the in-memory demo store).
    pub fn is_configured(&self) -> bool {
        match self.mode {
            RedisMode::Standalone => self.url.is_some(),
            RedisMode::Cluster | RedisMode::Sentinel => true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParSettings {
    /// Redemption window: `expires_in` of a pushed request, 1–599 s (FAPI 2.0: < 600).
    pub request_uri_lifetime: u64,
    /// How long a login may take once the browser has opened `/authorize`.
    pub interaction_lifetime: u64,
    /// Refuse authorization requests that did not come through PAR (every client).
    pub required: bool,
    /// Prefix of emitted `request_uri` values.
    pub request_uri_prefix: String,
    /// Further prefixes accepted at `/authorize` (e.g. during a prefix migration).
    pub accepted_request_uri_prefixes: Vec<String>,
    /// Largest pushed request kept in the store (bytes, as stored); larger → 400
    /// `invalid_request`. Apart from `http.body_limit`.
    pub max_record_bytes: usize,
    /// Every client must send its authorization request as a signed request object (JAR,
    /// RFC 9101); clients may override.
    pub require_signed_request_object: bool,
    /// Longest accepted request object lifetime (`exp` after `nbf`), seconds.
    pub request_object_max_lifetime: u64,
    /// Request objects must carry `typ: oauth-authz-req+jwt` (otherwise it may be absent).
    pub request_object_require_typ: bool,
}

impl Default for ParSettings {
    fn default() -> Self {
        Self {
            request_uri_lifetime: 60,
            interaction_lifetime: 600,
            required: true,
            request_uri_prefix: RFC_PREFIX.into(),
            accepted_request_uri_prefixes: Vec::new(),
            max_record_bytes: 16 * 1024,
            require_signed_request_object: false,
            request_object_max_lifetime: 3600,
            request_object_require_typ: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// Authorization code lifetime, 1–60 s (FAPI 2.0 §5.3.2.1).
    pub code_lifetime: u64,
    pub access_token_lifetime: u64,
    pub id_token_lifetime: u64,
    /// A refresh token unused this long (seconds) expires; each rotation starts it again.
    pub refresh_token_idle_lifetime: u64,
    /// The end of a grant's refresh tokens (seconds after the code was redeemed), whatever
    /// the rotations.
    pub refresh_token_absolute_lifetime: u64,
    /// A new refresh token on every use, a retired one presented again revoking the grant
    /// (RFC 9700 §4.14.2). `false`: the same token stays valid until its lifetimes end, so a
    /// client that lost a response can retry (FAPI 2.0 §5.3.2.1 requires that).
    pub refresh_token_rotation: bool,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            code_lifetime: 60,
            access_token_lifetime: 600,
            id_token_lifetime: 600,
            refresh_token_idle_lifetime: 86_400,
            refresh_token_absolute_lifetime: 30 * 86_400,
            refresh_token_rotation: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// SSO session lifetime in seconds; 0 disables SSO.
    pub lifetime: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self { lifetime: 8 * 3600 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    pub kid: Option<String>,
    /// `ES256` (default), `PS256`, `EdDSA` or `RS256`.
    #[serde(default = "default_alg")]
    pub alg: String,
    /// PKCS#8 PEM, inline.
    pub pem: Option<Secret>,
    /// PKCS#8 PEM file.
    pub pem_file: Option<PathBuf>,
    /// Signs new tokens. Exactly one key is active; the others only verify (rotation).
    #[serde(default)]
    pub active: bool,
}

fn default_alg() -> String {
    "ES256".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    pub client_id: String,
    pub client_name: Option<String>,
    pub client_secret: Option<Secret>,
    /// Defaults to `client_secret_basic` with a secret, `private_key_jwt` with `jwks`,
    /// `none` otherwise.
    pub token_endpoint_auth_method: Option<AuthMethod>,
    /// The client's public keys (a JWK Set) for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    pub jwks_file: Option<PathBuf>,
    pub redirect_uris: Vec<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Per-client PAR requirement; the global `par.required` applies when absent.
    pub require_pushed_authorization_requests: Option<bool>,
    /// Per-client signed request object requirement (RFC 9101 §10.5); the global
    /// `par.require_signed_request_object` applies when absent.
    #[serde(default)]
    pub require_signed_request_object: Option<bool>,
    #[serde(default = "yes")]
    pub require_pkce: bool,
    #[serde(default)]
    pub consent: bool,
    /// This client's own rate limits (docs/operations.md, "Limits").
    #[serde(default)]
    pub limits: ClientLimitSettings,
    /// `web` (default) or `native` (OIDC Registration §2): a native client's loopback
    /// redirect URIs may use any port (RFC 8252 §7.3).
    #[serde(default)]
    pub application_type: ApplicationType,
    /// Resource indicators (RFC 8707) the client may ask for; each becomes the access
    /// token's `aud`. Absolute URIs without a fragment.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Authorization details types (RFC 9396) the client may ask for.
    #[serde(default)]
    pub authorization_details_types: Vec<String>,
    /// RFC 9449 §5.2: the client always uses DPoP; a token request without a proof is refused.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// Per-client DPoP nonce requirement; the global `dpop.require_nonce` applies when absent.
    pub require_dpop_nonce: Option<bool>,
    /// RFC 7591 §2: `authorization_code` (always), `refresh_token` to get refresh tokens.
    #[serde(default = "default_grant_types")]
    pub grant_types: Vec<String>,
}

impl ClientSettings {
    /// A client with these redirect URIs and every other key at its default (a public
    /// client until a credential is set), for the demo and tests.
    pub fn new(client_id: impl Into<String>, redirect_uris: Vec<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_name: None,
            client_secret: None,
            token_endpoint_auth_method: None,
            jwks: None,
            jwks_file: None,
            redirect_uris,
            scopes: default_scopes(),
            require_pushed_authorization_requests: None,
            require_signed_request_object: None,
            require_pkce: yes(),
            consent: false,
            limits: ClientLimitSettings::default(),
            application_type: ApplicationType::default(),
            resources: Vec::new(),
            authorization_details_types: Vec::new(),
            dpop_bound_access_tokens: false,
            require_dpop_nonce: None,
            grant_types: default_grant_types(),
        }
    }
}

fn default_grant_types() -> Vec<String> {
    vec!["authorization_code".into()]
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationType {
    #[default]
    Web,
    Native,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into()]
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    pub username: String,
    /// argon2id PHC string (`par-server hash-password`).
    pub password_hash: Secret,
    /// Subject identifier; defaults to the username.
    pub sub: Option<String>,
    pub email: Option<String>,
    #[serde(default = "yes")]
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".into(),
        }
    }
}

/// OTLP trace export (docs/observability.md). Tracing is on when an endpoint is configured
/// here or by `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; otherwise
/// nothing is exported and no OpenTelemetry layer is installed. A key set here wins over the
/// matching `OTEL_*` variable; an unset key leaves the variable (or the SDK default) in force.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `service.name` of exported spans; else `OTEL_SERVICE_NAME`, else `par-server`.
    pub service_name: Option<String>,
    /// Collector URL: `http://host:4317` (gRPC) or `http://host:4318` (HTTP; `/v1/traces` is
    /// appended when the URL has no path). Else `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`.
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http_protobuf`; else `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`
    /// (`grpc` | `http/protobuf`), else `http_protobuf`.
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Extra headers (gRPC metadata) sent with every export, e.g. a collector API key. Values
    /// are secrets. Merged over `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`.
    pub otlp_headers: std::collections::BTreeMap<String, Secret>,
    /// Head sampling: the fraction of new traces kept, 0.0–1.0; a sampled `traceparent` on
    /// input is always followed (parent-based). Else `OTEL_TRACES_SAMPLER[_ARG]`, else 1.0.
    pub sampling_ratio: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaygroundSettings {
    /// The built-in demo client at `/playground`; on in the zero-config demo.
    pub enabled: bool,
    /// Which configured client the playground acts as.
    pub client_id: Option<String>,
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// No file: defaults and environment only.
    Defaults,
}

impl Settings {
    /// Loads defaults → `file` (or `PAR_CONFIG`) → `PAR__…` environment.
    pub fn load(file: Option<&Path>) -> Result<(Self, Source), ConfigError> {
        let from_env = std::env::var_os("PAR_CONFIG").map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(from_env);
        let mut builder = config::Config::builder();
        if let Some(path) = &file {
            let format = match path.extension().and_then(|e| e.to_str()) {
                Some("yaml" | "yml") => config::FileFormat::Yaml,
                Some("toml") => config::FileFormat::Toml,
                Some("json") => config::FileFormat::Json,
                _ => {
                    return Err(ConfigError::new(
                        "config file",
                        format!(
                            "{}: extension must be .yaml, .yml, .toml or .json",
                            path.display()
                        ),
                    ));
                }
            };
            if !path.is_file() {
                return Err(ConfigError::new(
                    "config file",
                    format!("{}: no such file", path.display()),
                ));
            }
            builder = builder.add_source(config::File::from(path.as_path()).format(format));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("PAR")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("par.accepted_request_uri_prefixes")
                .with_list_parse_key("redis.cluster_nodes")
                .with_list_parse_key("redis.sentinel_nodes")
                .with_list_parse_key("dpop.signing_algs")
                .with_list_parse_key("limits.trusted_proxies"),
        );
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::new("config", e.to_string()))?;
        let source = file.map_or(Source::Defaults, Source::File);
        Ok((settings, source))
    }

    /// All `request_uri` prefixes `/authorize` accepts.
    pub fn accepted_prefixes(&self) -> Vec<String> {
        let mut all = vec![self.par.request_uri_prefix.clone()];
        for p in &self.par.accepted_request_uri_prefixes {
            if !all.contains(p) {
                all.push(p.clone());
            }
        }
        all
    }
}
