//! The `redis` section (docs/redis.md): validated, then turned into the store's
//! [`RedisOptions`] with the TLS files read, once, at start.

use std::time::Duration;

use super::error::{ConfigError, fail};
use super::settings::{RedisConnection, RedisMode, RedisSettings};
use crate::store::{PoolOptions, RedisOptions, TlsFiles, Topology};

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

/// Checks the `redis` section and builds the connection options (reading the TLS files) once:
/// one topology, its addresses, TLS files, timeouts and pool settings. `Ok(None)`: no Redis
/// configured (the in-memory store).
pub(super) fn redis_options(r: &RedisSettings) -> Result<Option<RedisOptions>, ConfigError> {
    validate(r)?;
    if !r.is_configured() {
        return Ok(None);
    }
    options(r).map(Some)
}

fn validate(r: &RedisSettings) -> Result<(), ConfigError> {
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

fn options(r: &RedisSettings) -> Result<RedisOptions, ConfigError> {
    let read = |key: &str, path: &Option<std::path::PathBuf>| -> Result<Option<Vec<u8>>, ConfigError> {
        path.as_ref()
            .map(|p| std::fs::read(p).or_else(|e| fail(key, format!("{}: {e}", p.display()))))
            .transpose()
    };
    let topology = match r.mode {
        RedisMode::Standalone => Topology::Standalone {
            url: r.url.as_ref().map(|u| u.expose().to_owned()).unwrap_or_default(),
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
    Ok(RedisOptions {
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
