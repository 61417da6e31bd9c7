#![allow(dead_code)] // shared by the api, observability and scale test targets; each uses a part
//! The configuration file of a real `par-server` process, for every test that starts the
//! binary (the scale suite's replicas, the binary and JSON-log tests in `tests/api`): a small
//! typed struct with the knobs those tests vary, written out as YAML, and the process started
//! on it. What no test varies is fixed here: the committed test signing key and one user,
//! `alice`, whose argon2id hash is cheap to verify.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::topology::{RedisCluster, RedisNode, SentinelGroup};

pub const BIN: &str = env!("CARGO_BIN_EXE_par-server");
/// The password of the configured user `alice`.
pub const PASSWORD: &str = "correct horse battery staple";
/// The redirect URI every configured client registers.
pub const REDIRECT: &str = "https://app.example/callback";

/// Where the process finds Redis (`redis.mode` and its addresses; docs/redis.md).
#[derive(Debug, Clone)]
pub enum RedisTarget {
    Standalone(String),
    /// Seed nodes.
    Cluster(Vec<String>),
    Sentinel {
        master: String,
        nodes: Vec<String>,
    },
}

impl From<&RedisNode> for RedisTarget {
    fn from(node: &RedisNode) -> Self {
        Self::Standalone(node.url())
    }
}

impl From<&RedisCluster> for RedisTarget {
    fn from(cluster: &RedisCluster) -> Self {
        Self::Cluster(cluster.seeds())
    }
}

impl From<&SentinelGroup> for RedisTarget {
    fn from(group: &SentinelGroup) -> Self {
        Self::Sentinel {
            master: group.master.clone(),
            nodes: group.sentinel_urls(),
        }
    }
}

/// A confidential client (`client_secret_basic`, or `private_key_jwt` when `jwks` is set)
/// redirecting to [`REDIRECT`].
#[derive(Debug, Clone)]
pub struct ClientEntry {
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    /// The client's public JWK Set: the client authenticates with `private_key_jwt` and
    /// `client_secret` is not written.
    pub jwks: Option<Value>,
    /// `grant_types`, when not the default (`[authorization_code]`).
    pub grant_types: Option<Vec<String>>,
    /// Merged over the client's generated entry (objects key by key).
    pub extra: Value,
}

impl ClientEntry {
    /// With the scopes `openid email profile`.
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scopes: ["openid", "email", "profile"].map(String::from).to_vec(),
            jwks: None,
            grant_types: None,
            extra: Value::Null,
        }
    }
}

/// The knobs; `None` leaves the service's default (docs/configuration.md).
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Listens on `127.0.0.1:<port>`, one worker.
    pub port: u16,
    /// Default `http://127.0.0.1:<port>`; behind a load balancer, the balancer's address.
    pub issuer: Option<String>,
    pub redis: RedisTarget,
    pub key_prefix: Option<String>,
    /// Both `redis.command_timeout_ms` and `redis.connect_timeout_ms`.
    pub redis_timeout_ms: Option<u64>,
    /// `redis.wait_replicas` (with `redis.wait_timeout_ms` 500).
    pub wait_replicas: Option<u32>,
    pub drain_delay_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    /// `log.format`: `json` or `pretty`.
    pub log_format: Option<&'static str>,
    /// `log.level`, an `EnvFilter` directive.
    pub log_level: Option<String>,
    /// `telemetry.otlp_endpoint`, with every trace sampled.
    pub otlp_endpoint: Option<String>,
    pub clients: Vec<ClientEntry>,
    /// The `dpop` section as written (docs/configuration.md), when a test sets one.
    pub dpop: Option<Value>,
    /// The user's argon2id hash; default [`cheap_password_hash`].
    pub password_hash: Option<String>,
    /// Merged over the generated settings (objects key by key), for keys no field covers.
    pub extra: Value,
}

impl ConfigFile {
    /// A process on `port` using `redis`, with no client yet.
    pub fn new(port: u16, redis: impl Into<RedisTarget>) -> Self {
        Self {
            port,
            issuer: None,
            redis: redis.into(),
            key_prefix: None,
            redis_timeout_ms: None,
            wait_replicas: None,
            drain_delay_secs: None,
            shutdown_grace_secs: None,
            log_format: None,
            log_level: None,
            otlp_endpoint: None,
            clients: Vec::new(),
            dpop: None,
            password_hash: None,
            extra: Value::Null,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The file's text.
    pub fn yaml(&self) -> String {
        let mut redis = match &self.redis {
            RedisTarget::Standalone(url) => json!({ "url": url }),
            RedisTarget::Cluster(seeds) => json!({ "mode": "cluster", "cluster_nodes": seeds }),
            RedisTarget::Sentinel { master, nodes } => {
                json!({ "mode": "sentinel", "sentinel_master": master, "sentinel_nodes": nodes })
            }
        };
        redis["key_prefix"] = json!(self.key_prefix);
        redis["command_timeout_ms"] = json!(self.redis_timeout_ms);
        redis["connect_timeout_ms"] = json!(self.redis_timeout_ms);
        redis["wait_replicas"] = json!(self.wait_replicas);
        redis["wait_timeout_ms"] = json!(self.wait_replicas.map(|_| 500));
        let clients: Vec<Value> = self
            .clients
            .iter()
            .map(|c| {
                let mut entry = json!({
                    "client_id": c.client_id,
                    "client_secret": c.jwks.is_none().then_some(&c.client_secret),
                    "jwks": c.jwks,
                    "grant_types": c.grant_types,
                    "redirect_uris": [REDIRECT],
                    "scopes": c.scopes,
                });
                merge(&mut entry, &c.extra);
                entry
            })
            .collect();
        let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/signing-es256.pem");
        let mut config = json!({
            "issuer": self.issuer.clone().unwrap_or_else(|| self.base_url()),
            "http": {
                "bind": format!("127.0.0.1:{}", self.port),
                "workers": 1,
                "drain_delay_secs": self.drain_delay_secs,
                "shutdown_grace_secs": self.shutdown_grace_secs,
            },
            "redis": redis,
            "log": { "format": self.log_format, "level": self.log_level },
            "telemetry": {
                "otlp_endpoint": self.otlp_endpoint,
                "sampling_ratio": self.otlp_endpoint.as_ref().map(|_| 1.0),
            },
            "keys": [{ "pem_file": key }],
            "dpop": self.dpop,
            "clients": clients,
            "users": [{
                "username": "alice",
                "password_hash": self.password_hash.clone().unwrap_or_else(cheap_password_hash),
                "email": "alice@example.com",
            }],
        });
        merge(&mut config, &self.extra);
        let mut out = String::new();
        write_yaml(&without_nulls(config), 0, &mut out);
        out
    }

    /// Writes `<dir>/<name>.yaml` and starts the binary on it, its logs (stderr) appended to
    /// `<dir>/<name>.log` (a restart keeps what the last run wrote). `RUST_LOG`, `OTEL_*` and `PAR_*` variables of the test's own
    /// environment are removed: the file alone decides.
    pub fn spawn(&self, dir: &Path, name: &str) -> (Child, PathBuf) {
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(&config, self.yaml()).unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&config).stdout(Stdio::null()).stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap(),
        );
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k == "RUST_LOG" || k.starts_with("OTEL_") || k.starts_with("PAR_") {
                cmd.env_remove(&key);
            }
        }
        (cmd.spawn().expect("the par-server binary Cargo built"), log)
    }
}

/// argon2id of [`PASSWORD`] with small parameters (computed once per test binary): these
/// tests measure coordination, not hashing, on cores shared by everything.
pub fn cheap_password_hash() -> String {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    static HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string()
    });
    HASH.clone()
}

/// `extra`'s entries over `into`'s, mappings merged key by key.
fn merge(into: &mut Value, extra: &Value) {
    match (into, extra) {
        (Value::Object(into), Value::Object(extra)) => {
            for (k, v) in extra {
                merge(into.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (_, Value::Null) => {}
        (into, extra) => *into = extra.clone(),
    }
}

/// `value` without `null` entries and the mappings left empty by that, so the service's
/// defaults apply to what a test did not set.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_nulls(v)))
                .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Block-style YAML of a JSON mapping: mappings (also inside sequences) as indented blocks,
/// every other value in JSON syntax, which YAML reads as written.
fn write_yaml(map: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (key, value) in map.as_object().expect("a mapping") {
        match value {
            Value::Object(_) => {
                out.push_str(&format!("{pad}{key}:\n"));
                write_yaml(value, indent + 2, out);
            }
            Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                for item in items {
                    // The item's block at indent + 4, its first indent marked as an entry.
                    let mut block = String::new();
                    write_yaml(item, indent + 4, &mut block);
                    out.push_str(&format!("{pad}  - {}", &block[indent + 4..]));
                }
            }
            _ => out.push_str(&format!("{pad}{key}: {value}\n")),
        }
    }
}
