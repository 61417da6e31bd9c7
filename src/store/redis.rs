//! The Redis backend: the product's shared state, on one of three topologies (brief §4,
//! docs/redis.md).
//!
//! - **Standalone** (`redis://`, `rediss://`): one multiplexed `ConnectionManager`, cloned
//!   per call (measured, docs/benchmarks.md). It pipelines concurrent commands on one socket
//!   and reconnects by itself after Redis restarts. A deadpool-redis pool is available with
//!   `redis.connection = "pool"` for operators who want one slow command never to queue
//!   others behind it; it costs an extra `UNWATCH`+`PING` round trip per checkout.
//! - **Cluster**: `redis::cluster_async::ClusterConnection` (one multiplexed connection per
//!   node; MOVED/ASK/TRYAGAIN handled by the library; every command goes to the slot's
//!   primary because replica reads are never enabled). Every multi-key script touches keys
//!   that share a hash tag (`store/keys.rs`), so they live in one slot.
//! - **Sentinel**: [`SentinelFollower`] asks the sentinels for the primary, talks to it
//!   through a `ConnectionManager`, and asks again whenever a call fails with a connection
//!   error, a timeout or `READONLY` (the old primary was demoted), switching managers when
//!   the answer changes. A plain `ConnectionManager` would reconnect to the old address
//!   forever; deadpool-redis' sentinel pool re-resolves only when it opens a connection and
//!   keeps a demoted primary's live connections (its health check is a `PING`, which a
//!   replica answers).
//!
//! Every call is bounded by `redis.command_timeout_ms`; a timeout is reported as
//! [`StoreError::Unavailable`] so the client gets `503 temporarily_unavailable` quickly.
//! With `redis.wait_replicas > 0`, each one-shot take is followed by `WAIT` and handed out
//! only once that many replicas hold the deletion (docs/redis.md, "failover").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionInfo, FromRedisValue, IntoConnectionInfo, RedisError, Script, ServerErrorKind,
    TlsCertificates, TlsMode, Value,
};

use super::{ClaimOutcome, TakeOutcome, error::StoreError, keys::Key};

/// Atomically claims a pushed request for one browser interaction (brief §2 step 2).
/// KEYS: record, claim. ARGV: client_id, owner, interaction ttl.
/// Returns {0} missing, {1, v} newly claimed, {2, v} resumed by the same owner,
/// {3} claimed by another browser, {4} bound to another client. The client check happens
/// before anything is written.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
local ok, rec = pcall(cjson.decode, v)
if not ok or type(rec) ~= 'table' or rec['client_id'] ~= ARGV[1] then return {4} end
local owner = redis.call('GET', KEYS[2])
if not owner then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return {1, v}
end
if owner == ARGV[2] then return {2, v} end
return {3}
"#,
    )
});

/// Takes (GETDEL) a claimed pushed request if the caller owns the claim: exactly one winner.
/// KEYS: record, claim. ARGV: owner. Returns {0} missing, {1, v} taken, {3} not the owner.
static TAKE_CLAIMED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local owner = redis.call('GET', KEYS[2])
if owner ~= ARGV[1] then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {3} end
  return {0}
end
local v = redis.call('GETDEL', KEYS[1])
redis.call('DEL', KEYS[2])
if not v then return {0} end
return {1, v}
"#,
    )
});

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
    fn is_set(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }

    fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.client.as_ref().map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.ca.clone(),
        }
    }
}

/// Pool mode (standalone only): size and the three deadpool timeouts (deps-notes §4.3:
/// deadpool has none by default, so a stall would hang requests).
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

    /// From the validated `redis` settings; reads the TLS files.
    pub fn from_settings(r: &crate::config::RedisSettings) -> anyhow::Result<Self> {
        use crate::config::{RedisConnection, RedisMode};
        let read = |key: &str, path: &Option<std::path::PathBuf>| -> anyhow::Result<Option<Vec<u8>>> {
            path.as_ref()
                .map(|p| std::fs::read(p).map_err(|e| anyhow::anyhow!("{key}: {}: {e}", p.display())))
                .transpose()
        };
        let topology = match r.mode {
            RedisMode::Standalone => Topology::Standalone {
                url: r
                    .url
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("redis.url is not set"))?
                    .expose()
                    .to_owned(),
            },
            RedisMode::Cluster => Topology::Cluster {
                nodes: r.cluster_nodes.clone(),
            },
            RedisMode::Sentinel => Topology::Sentinel {
                nodes: r.sentinel_nodes.clone(),
                master: r.sentinel_master.clone().unwrap_or_default(),
                username: r.sentinel_username.clone(),
                password: r.sentinel_password.as_ref().map(|p| p.expose().to_owned()),
            },
        };
        let command_timeout = Duration::from_millis(r.command_timeout_ms);
        let connect_timeout = Duration::from_millis(r.connect_timeout_ms);
        let client = match (
            read("redis.tls_client_cert_file", &r.tls_client_cert_file)?,
            read("redis.tls_client_key_file", &r.tls_client_key_file)?,
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => None,
        };
        Ok(Self {
            topology,
            username: r.username.clone(),
            password: r.password.as_ref().map(|p| p.expose().to_owned()),
            db: r.db,
            tls: TlsFiles {
                ca: read("redis.tls_ca_file", &r.tls_ca_file)?,
                client,
            },
            command_timeout,
            connect_timeout,
            pool: (r.connection == RedisConnection::Pool).then(|| PoolOptions {
                size: r.pool_size,
                wait_timeout: r
                    .pool_wait_timeout_ms
                    .map_or(command_timeout, Duration::from_millis),
                create_timeout: r
                    .pool_create_timeout_ms
                    .map_or(connect_timeout, Duration::from_millis),
                recycle_timeout: r
                    .pool_recycle_timeout_ms
                    .map_or(command_timeout, Duration::from_millis),
            }),
            wait_replicas: r.wait_replicas,
            wait_timeout: Duration::from_millis(r.wait_timeout_ms),
        })
    }

    /// A node's connection info with the configured ACL credentials and database applied.
    fn node_info(&self, url: &str) -> redis::RedisResult<ConnectionInfo> {
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

    fn client(&self, info: ConnectionInfo) -> redis::RedisResult<Client> {
        if self.tls.is_set() {
            Client::build_with_tls(info, self.tls.certificates())
        } else {
            Client::open(info)
        }
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500))
    }
}

/// rustls needs a process-wide crypto provider; redis' rustls feature brings none.
fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// Redeems an authorization code: GETDEL the record and, if it existed, mark the code used
/// with the record's `grant_id` (for replay detection) in the same atomic step — one round
/// trip instead of two, and no window in which a replay finds neither the code nor the
/// marker. KEYS: code, used marker (same hash tag). ARGV: marker ttl.
/// Returns {0} missing, {1, v} taken.
static REDEEM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call('GETDEL', KEYS[1])
if not v then return {0} end
local ok, rec = pcall(cjson.decode, v)
local grant = ''
if ok and type(rec) == 'table' and type(rec['grant_id']) == 'string' then grant = rec['grant_id'] end
redis.call('SET', KEYS[2], grant, 'EX', ARGV[1])
return {1, v}
"#,
    )
});

#[derive(Clone)]
enum Connection {
    Manager(ConnectionManager),
    Pool(deadpool_redis::Pool),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelFollower>),
}

#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    timeout: Duration,
    wait_replicas: u32,
    wait_timeout: Duration,
}

impl RedisStore {
    /// Builds the connection without contacting Redis: the service starts (not ready) while
    /// Redis is down and connects as soon as it answers. Must run inside a Tokio runtime
    /// (the cluster connection spawns its driver).
    pub fn connect(options: &RedisOptions) -> Result<Self, StoreError> {
        install_tls_provider();
        let conn = match (&options.topology, &options.pool) {
            (Topology::Standalone { url }, None) => {
                let client = options.client(options.node_info(url)?)?;
                Connection::Manager(ConnectionManager::new_lazy_with_config(
                    client,
                    options.manager_config(),
                )?)
            }
            (Topology::Standalone { url }, Some(p)) => {
                if options.tls.is_set() {
                    return Err(StoreError::Backend(
                        "redis.connection = pool cannot use redis.tls_* files; use the multiplexed connection".into(),
                    ));
                }
                let mut cfg = deadpool_redis::Config::from_connection_info(options.node_info(url)?);
                let mut pool = deadpool_redis::PoolConfig::new(p.size);
                pool.timeouts.wait = Some(p.wait_timeout);
                pool.timeouts.create = Some(p.create_timeout);
                pool.timeouts.recycle = Some(p.recycle_timeout);
                cfg.pool = Some(pool);
                let pool = cfg
                    .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                Connection::Pool(pool)
            }
            (Topology::Cluster { nodes }, _) => {
                let infos = nodes
                    .iter()
                    .map(|n| options.node_info(n))
                    .collect::<redis::RedisResult<Vec<_>>>()?;
                let mut builder = redis::cluster::ClusterClientBuilder::new(infos)
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.command_timeout)
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(options.command_timeout.as_millis().min(1000) as u64);
                if options.tls.is_set() {
                    builder = builder.certs(options.tls.certificates());
                }
                let client = builder.build()?;
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(options.connect_timeout)
                    .set_response_timeout(options.command_timeout);
                Connection::Cluster(client.get_pending_async_connection_with_config(config))
            }
            (Topology::Sentinel { .. }, _) => Connection::Sentinel(Arc::new(SentinelFollower::new(options)?)),
        };
        Ok(Self {
            conn,
            timeout: options.command_timeout,
            wait_replicas: options.wait_replicas,
            wait_timeout: options.wait_timeout,
        })
    }

    async fn bounded<T>(&self, fut: impl Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable("redis command timed out".into())),
        }
    }

    /// Runs `cmd`; in Sentinel mode a failure that may mean "the primary moved" makes the
    /// follower ask the sentinels again (in the background; this call still fails).
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        super::instrument::command(super::instrument::command_name(cmd), self.query_raw(cmd)).await
    }

    async fn query_raw<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        match &self.conn {
            Connection::Manager(m) => {
                let mut c = m.clone();
                self.bounded(cmd.query_async(&mut c)).await
            }
            Connection::Pool(p) => {
                let mut c = self.checkout(p).await?;
                self.bounded(cmd.query_async(&mut c)).await
            }
            Connection::Cluster(c) => {
                let mut c = c.clone();
                self.bounded(cmd.query_async(&mut c)).await
            }
            Connection::Sentinel(f) => {
                let mut c = f.manager().await?;
                let r = self.bounded(cmd.query_async(&mut c)).await;
                f.observe(&r);
                r
            }
        }
    }

    /// Runs a script; `name` labels its span and metrics.
    async fn eval(
        &self,
        name: &'static str,
        script: &Script,
        keys: &[&Key],
        args: &[&str],
    ) -> Result<Vec<Value>, StoreError> {
        super::instrument::command(name, self.eval_raw(script, keys, args)).await
    }

    async fn eval_raw(
        &self,
        script: &Script,
        keys: &[&Key],
        args: &[&str],
    ) -> Result<Vec<Value>, StoreError> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k.as_str());
        }
        for a in args {
            inv.arg(*a);
        }
        match &self.conn {
            Connection::Manager(m) => {
                let mut c = m.clone();
                self.bounded(inv.invoke_async(&mut c)).await
            }
            Connection::Pool(p) => {
                let mut c = self.checkout(p).await?;
                self.bounded(inv.invoke_async(&mut c)).await
            }
            Connection::Cluster(c) => {
                let mut c = c.clone();
                self.bounded(inv.invoke_async(&mut c)).await
            }
            Connection::Sentinel(f) => {
                let mut c = f.manager().await?;
                let r = self.bounded(inv.invoke_async(&mut c)).await;
                f.observe(&r);
                r
            }
        }
    }

    async fn checkout(&self, pool: &deadpool_redis::Pool) -> Result<deadpool_redis::Connection, StoreError> {
        pool.get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("redis pool: {e}")))
    }

    /// With `redis.wait_replicas > 0`: blocks until that many replicas acknowledge the
    /// writes sent so far on the connection that carried the take of `key` (`WAIT`), so a
    /// failover cannot resurrect a record that was already handed out. Fewer acks → the
    /// caller must not use what it took (503; the record is gone on the primary).
    async fn replicated(&self, key: &Key) -> Result<(), StoreError> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        // Any failed WAIT leaves the take unconfirmed: hand nothing out (503), never 500. After
        // a failover the slot map (or a Sentinel's answer) can still name the old primary,
        // now a replica, which answers `ERR WAIT cannot be used with replica instances`
        // (found by the chaos run, tests/chaos).
        fn unconfirmed(e: impl std::fmt::Display) -> StoreError {
            StoreError::Unavailable(format!("redis WAIT failed; take not handed out: {e}"))
        }
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.wait_replicas)
            .arg(self.wait_timeout.as_millis() as u64);
        let acked: i64 = match &self.conn {
            Connection::Cluster(c) => {
                // WAIT would go to every primary by default; ask the slot's primary only.
                let mut c = c.clone();
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
                    key.as_str(),
                    SlotAddr::Master,
                )));
                let v = tokio::time::timeout(self.timeout + self.wait_timeout, c.route_command(wait, route))
                    .await
                    .map_err(|_| StoreError::Unavailable("redis WAIT timed out".into()))?
                    .map_err(unconfirmed)?;
                i64::from_redis_value(v).map_err(unconfirmed)?
            }
            _ => {
                let timeout = self.timeout + self.wait_timeout;
                let fut = async {
                    match &self.conn {
                        Connection::Manager(m) => wait.query_async(&mut m.clone()).await,
                        Connection::Sentinel(f) => match f.manager().await {
                            Ok(mut c) => wait.query_async(&mut c).await,
                            Err(e) => Err(RedisError::from(std::io::Error::other(e.to_string()))),
                        },
                        // A pooled take and its WAIT would need one checkout; validation
                        // refuses redis.wait_replicas with redis.connection = pool.
                        _ => Err(RedisError::from((
                            redis::ErrorKind::InvalidClientConfig,
                            "redis.wait_replicas needs the multiplexed connection",
                        ))),
                    }
                };
                tokio::time::timeout(timeout, fut)
                    .await
                    .map_err(|_| StoreError::Unavailable("redis WAIT timed out".into()))?
                    .map_err(unconfirmed)?
            }
        };
        if acked < self.wait_replicas as i64 {
            tracing::warn!(
                acked,
                wanted = self.wait_replicas,
                "take not replicated in time; refusing to hand it out"
            );
            return Err(StoreError::Unavailable(
                "take not acknowledged by enough replicas".into(),
            ));
        }
        Ok(())
    }

    pub async fn put_new(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let reply: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(key.as_str())
                    .arg(value)
                    .arg("EX")
                    .arg(ttl_secs(ttl))
                    .arg("NX"),
            )
            .await?;
        Ok(reply.is_some())
    }

    pub async fn put(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.query::<()>(
            redis::cmd("SET")
                .arg(key.as_str())
                .arg(value)
                .arg("EX")
                .arg(ttl_secs(ttl)),
        )
        .await
    }

    pub async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("GET").arg(key.as_str())).await
    }

    pub async fn take(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        let taken: Option<Vec<u8>> = self.query(redis::cmd("GETDEL").arg(key.as_str())).await?;
        if taken.is_some() {
            self.replicated(key).await?;
        }
        Ok(taken)
    }

    pub async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.query::<()>(redis::cmd("DEL").arg(key.as_str())).await
    }

    pub async fn ttl(&self, key: &Key) -> Result<Option<Duration>, StoreError> {
        let ms: i64 = self.query(redis::cmd("PTTL").arg(key.as_str())).await?;
        Ok((ms >= 0).then(|| Duration::from_millis(ms as u64)))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query::<String>(&redis::cmd("PING")).await.map(|_| ())
    }

    pub async fn claim(
        &self,
        record: &Key,
        claim: &Key,
        client_id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        let ttl = ttl_secs(ttl).to_string();
        let reply = self
            .eval("claim", &CLAIM, &[record, claim], &[client_id, owner, &ttl])
            .await?;
        Ok(match (status(&reply)?, payload(&reply)) {
            (1, Some(v)) => ClaimOutcome::Claimed(v),
            (2, Some(v)) => ClaimOutcome::Resumed(v),
            (3, _) => ClaimOutcome::ClaimedByOther,
            (4, _) => ClaimOutcome::WrongClient,
            _ => ClaimOutcome::Missing,
        })
    }

    pub async fn take_claimed(
        &self,
        record: &Key,
        claim: &Key,
        owner: &str,
    ) -> Result<TakeOutcome, StoreError> {
        let reply = self
            .eval("take_claimed", &TAKE_CLAIMED, &[record, claim], &[owner])
            .await?;
        Ok(match (status(&reply)?, payload(&reply)) {
            (1, Some(v)) => {
                self.replicated(record).await?;
                TakeOutcome::Taken(v)
            }
            (3, _) => TakeOutcome::NotOwner,
            _ => TakeOutcome::Missing,
        })
    }

    /// Takes an authorization code record and marks the code used (one script).
    pub async fn redeem(&self, code: &Key, used: &Key, ttl: Duration) -> Result<Option<Vec<u8>>, StoreError> {
        let ttl = ttl_secs(ttl).to_string();
        let reply = self.eval("redeem", &REDEEM, &[code, used], &[&ttl]).await?;
        match (status(&reply)?, payload(&reply)) {
            (1, Some(v)) => {
                self.replicated(code).await?;
                Ok(Some(v))
            }
            _ => Ok(None),
        }
    }
}

fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

fn status(reply: &[Value]) -> Result<i64, StoreError> {
    match reply.first() {
        Some(Value::Int(n)) => Ok(*n),
        other => Err(StoreError::Backend(format!("unexpected script reply: {other:?}"))),
    }
}

fn payload(reply: &[Value]) -> Option<Vec<u8>> {
    match reply.get(1) {
        Some(Value::BulkString(b)) => Some(b.clone()),
        _ => None,
    }
}

/// Sentinel mode: the current primary's `ConnectionManager`, re-resolved through the
/// sentinels when a call fails in a way that may mean a failover (brief §4: "after a
/// failover the service follows the new master without a restart").
pub struct SentinelFollower {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    /// The primary's address and its manager; `None` until the first resolution.
    current: RwLock<Option<(String, ConnectionManager)>>,
    /// A background re-resolution is under way (one at a time).
    refreshing: AtomicBool,
    config: ConnectionManagerConfig,
    timeout: Duration,
}

impl SentinelFollower {
    fn new(options: &RedisOptions) -> Result<Self, StoreError> {
        let Topology::Sentinel {
            nodes,
            master,
            username,
            password,
        } = &options.topology
        else {
            return Err(StoreError::Backend("not a sentinel topology".into()));
        };
        let infos = nodes
            .iter()
            .map(|n| n.as_str().into_connection_info())
            .collect::<redis::RedisResult<Vec<_>>>()?;
        let tls = infos
            .first()
            .is_some_and(|i| matches!(i.addr(), redis::ConnectionAddr::TcpTls { .. }));
        // Credentials in the first sentinel URL apply to all sentinels unless set apart.
        let first = infos.first().map(|i| i.redis_settings().clone());
        let sentinel_user = username
            .clone()
            .or_else(|| first.as_ref().and_then(|s| s.username().map(str::to_owned)));
        let sentinel_password = password
            .clone()
            .or_else(|| first.as_ref().and_then(|s| s.password().map(str::to_owned)));
        let mut builder = SentinelClientBuilder::new(
            infos.iter().map(|i| i.addr().clone()),
            master.clone(),
            SentinelServerType::Master,
        )?
        .set_client_to_redis_tcp_settings(Default::default());
        if let Some(u) = &options.username {
            builder = builder.set_client_to_redis_username(u);
        }
        if let Some(p) = &options.password {
            builder = builder.set_client_to_redis_password(p);
        }
        if let Some(db) = options.db {
            builder = builder.set_client_to_redis_db(db);
        }
        if let Some(u) = &sentinel_user {
            builder = builder.set_client_to_sentinel_username(u);
        }
        if let Some(p) = &sentinel_password {
            builder = builder.set_client_to_sentinel_password(p);
        }
        if tls {
            builder = builder
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if options.tls.is_set() {
                builder = builder
                    .set_client_to_redis_certificates(options.tls.certificates())
                    .set_client_to_sentinel_certificates(options.tls.certificates());
            }
        }
        Ok(Self {
            sentinel: tokio::sync::Mutex::new(builder.build()?),
            current: RwLock::new(None),
            refreshing: AtomicBool::new(false),
            config: options.manager_config(),
            timeout: options.connect_timeout + options.command_timeout,
        })
    }

    fn current(&self) -> Option<ConnectionManager> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, m)| m.clone())
    }

    /// The current primary's manager, resolving it first if no primary is known yet.
    async fn manager(self: &Arc<Self>) -> Result<ConnectionManager, StoreError> {
        if let Some(m) = self.current() {
            return Ok(m);
        }
        self.resolve().await?;
        self.current()
            .ok_or_else(|| StoreError::Unavailable("no redis primary known yet".into()))
    }

    /// Asks the sentinels for the primary (the library also checks that the node it names
    /// says `ROLE master`) and switches to it if it moved.
    async fn resolve(&self) -> Result<(), StoreError> {
        let mut sentinel = self.sentinel.lock().await;
        let client = tokio::time::timeout(self.timeout, sentinel.async_get_client())
            .await
            .map_err(|_| StoreError::Unavailable("sentinels did not answer in time".into()))??;
        drop(sentinel);
        let addr = client.get_connection_info().addr().to_string();
        let known = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(a, _)| a.clone());
        if known.as_deref() != Some(addr.as_str()) {
            let manager = ConnectionManager::new_lazy_with_config(client, self.config.clone())?;
            tracing::info!(primary = %addr, previous = ?known, "redis primary (from sentinel)");
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some((addr, manager));
        }
        Ok(())
    }

    /// After a call: failures that may mean "the primary moved" (connection refused or
    /// dropped, timeout, `READONLY` from a demoted primary) trigger one background
    /// re-resolution.
    fn observe<T>(self: &Arc<Self>, result: &Result<T, StoreError>) {
        let suspicious = match result {
            Err(StoreError::Unavailable(_)) => true,
            Err(StoreError::Backend(_)) | Ok(_) => false,
        };
        if suspicious && !self.refreshing.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.resolve().await {
                    tracing::warn!(error = %e, "sentinel lookup failed");
                }
                // Pace lookups while the sentinels have not elected a new primary yet.
                tokio::time::sleep(Duration::from_millis(100)).await;
                this.refreshing.store(false, Ordering::Release);
            });
        }
    }
}

/// Server replies that mean "not now, retry", not "broken": during a failover, a slot
/// migration or a restart. They become `503 temporarily_unavailable`, never `500`.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
            )
        )
}
