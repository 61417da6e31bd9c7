//! The connection to Redis, whatever the topology, and the one place that dispatches a call
//! to it. Every call is bounded by the command timeout; a timeout is
//! [`StoreError::Unavailable`], so the client gets `503 temporarily_unavailable` quickly.
//!
//! - **Standalone**: one multiplexed `ConnectionManager`, cloned per call (measured,
//!   docs/benchmarks.md). It pipelines concurrent commands on one socket and reconnects by
//!   itself after Redis restarts. `redis.connection = "pool"` gives a deadpool-redis pool
//!   instead, for operators who want one slow command never to queue others behind it; it
//!   costs an extra `UNWATCH`+`PING` round trip per checkout.
//! - **Cluster**: `ClusterConnection` (one multiplexed connection per node; MOVED/ASK/TRYAGAIN
//!   handled by the library; every command goes to the slot's primary because replica reads
//!   are never enabled).
//! - **Sentinel**: [`SentinelFollower`] (the current primary's manager, re-resolved after a
//!   failure that may mean a failover).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, ScriptInvocation, Value};

use super::options::{RedisOptions, Topology};
use super::sentinel::SentinelFollower;
use crate::store::error::StoreError;

/// What is sent: a command, a script, or a command for the primary that owns `key` (only
/// Cluster needs the routing; elsewhere there is one primary).
pub(super) enum Call<'a> {
    Cmd(&'a Cmd),
    Script(&'a ScriptInvocation<'a>),
    OnPrimaryOf(&'a Cmd, &'a str),
}

#[derive(Clone)]
pub(super) enum Connection {
    Manager(ConnectionManager),
    Pool(deadpool_redis::Pool),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelFollower>),
}

impl Connection {
    /// Keys of different hash slots may live on different nodes: no script may touch them
    /// together.
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }

    /// Builds the connection without contacting Redis: the service starts (not ready) while
    /// Redis is down and connects as soon as it answers. Must run inside a Tokio runtime
    /// (the cluster connection spawns its driver).
    pub(super) fn open(options: &RedisOptions) -> Result<Self, StoreError> {
        install_tls_provider();
        Ok(match (&options.topology, &options.pool) {
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
        })
    }

    /// Sends `call` and waits at most `timeout` for the reply. In Sentinel mode a failure
    /// that may mean "the primary moved" makes the follower ask the sentinels again (in the
    /// background; this call still fails).
    pub(super) async fn run(&self, call: Call<'_>, timeout: Duration) -> Result<Value, StoreError> {
        // The other topologies' futures are boxed: they are several KiB (pool checkout,
        // cluster routing, sentinel resolution); inline they would make every store future
        // that large, and it is copied each time it moves (see `store::instrument::command`).
        match self {
            Connection::Manager(m) => bounded(timeout, send(&mut m.clone(), call)).await,
            Connection::Pool(p) => Box::pin(pooled(p, call, timeout)).await,
            Connection::Cluster(c) => Box::pin(clustered(c, call, timeout)).await,
            Connection::Sentinel(f) => Box::pin(followed(f, call, timeout)).await,
        }
    }
}

async fn pooled(p: &deadpool_redis::Pool, call: Call<'_>, timeout: Duration) -> Result<Value, StoreError> {
    let mut c = p
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(format!("redis pool: {e}")))?;
    bounded(timeout, send(&mut c, call)).await
}

async fn clustered(c: &ClusterConnection, call: Call<'_>, timeout: Duration) -> Result<Value, StoreError> {
    let mut c = c.clone();
    match call {
        Call::OnPrimaryOf(cmd, key) => {
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
                key,
                SlotAddr::Master,
            )));
            bounded(timeout, async {
                c.route_command(cmd.clone(), route).await?.extract_error()
            })
            .await
        }
        call => bounded(timeout, send(&mut c, call)).await,
    }
}

async fn followed(f: &Arc<SentinelFollower>, call: Call<'_>, timeout: Duration) -> Result<Value, StoreError> {
    let mut c = f.manager().await?;
    let r = bounded(timeout, send(&mut c, call)).await;
    f.observe(&r);
    r
}

async fn send<C: ConnectionLike + Send>(c: &mut C, call: Call<'_>) -> redis::RedisResult<Value> {
    match call {
        Call::Cmd(cmd) | Call::OnPrimaryOf(cmd, _) => cmd.query_async(c).await,
        Call::Script(script) => script.invoke_async(c).await,
    }
}

async fn bounded(
    timeout: Duration,
    fut: impl Future<Output = redis::RedisResult<Value>>,
) -> Result<Value, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(StoreError::from),
        Err(_) => Err(StoreError::Unavailable("redis command timed out".into())),
    }
}

/// rustls needs a process-wide crypto provider; redis' rustls feature brings none.
fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}
