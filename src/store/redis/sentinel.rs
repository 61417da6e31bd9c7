//! Sentinel mode: [`SentinelFollower`] asks the sentinels for the primary, talks to it
//! through a `ConnectionManager`, and asks again whenever a call fails in a way that may mean
//! a failover (docs/redis.md, "Sentinel"). A plain `ConnectionManager` would reconnect to the
//! old address forever; deadpool-redis' sentinel pool re-resolves only when it opens a
//! connection and keeps a demoted primary's live connections (its health check is a `PING`,
//! which a replica answers).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::IntoConnectionInfo;
use redis::TlsMode;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};

use super::options::{RedisOptions, Topology};
use crate::store::error::StoreError;

/// Sentinel mode: the current primary's `ConnectionManager`, re-resolved through the
/// sentinels when a call fails in a way that may mean a failover, so the service follows a
/// new primary without a restart.
pub(super) struct SentinelFollower {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    /// The primary's address and its manager; `None` until the first resolution.
    current: RwLock<Option<(String, ConnectionManager)>>,
    /// A background re-resolution is under way (one at a time).
    refreshing: AtomicBool,
    config: ConnectionManagerConfig,
    timeout: Duration,
}

impl SentinelFollower {
    pub(super) fn new(options: &RedisOptions) -> Result<Self, StoreError> {
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
    pub(super) async fn manager(self: &Arc<Self>) -> Result<ConnectionManager, StoreError> {
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
    pub(super) fn observe<T>(self: &Arc<Self>, result: &Result<T, StoreError>) {
        let suspicious = match result {
            Err(StoreError::Unavailable(_)) => true,
            Err(StoreError::Backend(_) | StoreError::TooLarge(..)) | Ok(_) => false,
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
