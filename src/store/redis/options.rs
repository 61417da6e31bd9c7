//! How par-server connects to Redis: topology, credentials, TLS material, timeouts, pool and
//! `WAIT` settings. Plain data: `config` builds it from the validated `redis` settings
//! (docs/configuration.md, "redis"); tests build it directly.

use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::{Client, ConnectionInfo, IntoConnectionInfo, TlsCertificates};

/// Where Redis is.
#[derive(Debug, Clone)]
pub enum Topology {
    /// One server: `redis://…`, `rediss://…` or `unix://…`.
    Standalone { url: String },
    /// Redis Cluster seed nodes.
    Cluster { nodes: Vec<String> },
    /// Sentinels and the monitored master's name.
    Sentinel {
        nodes: Vec<String>,
        master: String,
        username: Option<String>,
        password: Option<String>,
    },
}

/// PEM material for `rediss://`.
#[derive(Clone, Default)]
pub struct TlsFiles {
    /// CA certificate(s); `None` → the system trust store.
    pub ca: Option<Vec<u8>>,
    /// Client certificate and key for mutual TLS.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    pub(super) fn is_set(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }

    pub(super) fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.client.as_ref().map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.ca.clone(),
        }
    }
}

/// Pool mode (standalone only): size and the three deadpool timeouts. deadpool sets none by
/// default, so without them a Redis stall would hang requests.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub size: usize,
    pub wait_timeout: Duration,
    pub create_timeout: Duration,
    pub recycle_timeout: Duration,
}

/// How par-server connects to Redis.
#[derive(Clone)]
pub struct RedisOptions {
    pub topology: Topology,
    /// ACL user / password for the data nodes; override those in the URL(s).
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: Option<i64>,
    pub tls: TlsFiles,
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
    /// `None`: multiplexed connection(s). `Some`: a deadpool-redis pool (standalone).
    pub pool: Option<PoolOptions>,
    /// Replicas that must acknowledge a one-shot take before it is handed out (0 = off).
    pub wait_replicas: u32,
    pub wait_timeout: Duration,
}

impl RedisOptions {
    /// Standalone server at `url` with these timeouts and defaults for the rest.
    pub fn standalone(url: impl Into<String>, command_timeout: Duration) -> Self {
        Self {
            topology: Topology::Standalone { url: url.into() },
            username: None,
            password: None,
            db: None,
            tls: TlsFiles::default(),
            command_timeout,
            connect_timeout: command_timeout,
            pool: None,
            wait_replicas: 0,
            wait_timeout: command_timeout,
        }
    }

    /// A node's connection info with the configured ACL credentials and database applied.
    pub(super) fn node_info(&self, url: &str) -> redis::RedisResult<ConnectionInfo> {
        let info = url.into_connection_info()?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &self.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &self.password {
            settings = settings.set_password(p);
        }
        if let Some(db) = self.db {
            settings = settings.set_db(db);
        }
        Ok(info.set_redis_settings(settings))
    }

    pub(super) fn client(&self, info: ConnectionInfo) -> redis::RedisResult<Client> {
        if self.tls.is_set() {
            Client::build_with_tls(info, self.tls.certificates())
        } else {
            Client::open(info)
        }
    }

    pub(super) fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500))
    }
}
