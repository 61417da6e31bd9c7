//! The Redis backend: the product's shared state, on one of three topologies (docs/redis.md).
//!
//! - [`options`]: where Redis is and how to reach it.
//! - `connection`: the connection for each topology and the one call dispatch, bounded by
//!   `redis.command_timeout_ms`.
//! - `sentinel`: following the primary through the sentinels.
//! - `scripts`: the Lua scripts, each with its KEYS/ARGV contract.
//!
//! The operations below are the byte-level steps [`crate::store::Store`] builds on. With
//! `redis.wait_replicas > 0`, each one-shot take is followed by `WAIT` and handed out only
//! once that many replicas hold the deletion (docs/redis.md, "Why no record can be redeemed
//! twice").

mod connection;
pub mod options;
mod scripts;
mod sentinel;

use std::time::Duration;

use redis::{Cmd, FromRedisValue, Script, Value};

use self::connection::{Call, Connection};
use self::options::RedisOptions;
use super::error::StoreError;
use super::instrument;
use super::keyspace::Key;
use super::outcome::{Bind, OpenOutcome, RedeemOutcome, RotateOutcome, Take};
use super::rate::{Backoff, Bucket};

#[derive(Clone)]
pub(crate) struct RedisStore {
    conn: Connection,
    timeout: Duration,
    wait_replicas: u32,
    wait_timeout: Duration,
}

impl RedisStore {
    /// Builds the connection without contacting Redis (see `Connection::open`).
    pub fn connect(options: &RedisOptions) -> Result<Self, StoreError> {
        if options.wait_replicas > 0 && options.pool.is_some() {
            // A pooled take and its WAIT would need to share one checkout.
            return Err(StoreError::Backend(
                "redis.wait_replicas needs the multiplexed connection".into(),
            ));
        }
        Ok(Self {
            conn: Connection::open(options)?,
            timeout: options.command_timeout,
            wait_replicas: options.wait_replicas,
            wait_timeout: options.wait_timeout,
        })
    }

    /// Runs `cmd` inside a client span with latency and error metrics.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        let value = instrument::command(
            instrument::command_name(cmd),
            self.conn.run(Call::Cmd(cmd), self.timeout),
        )
        .await?;
        T::from_redis_value(value).map_err(|e| StoreError::Backend(e.to_string()))
    }

    /// Runs a script; `name` labels its span and metrics. Returns the reply array.
    async fn eval(
        &self,
        name: &'static str,
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
        self.invoke(name, &inv).await
    }

    /// Runs a prepared script invocation (for arguments that are bytes, not text).
    async fn invoke(
        &self,
        name: &'static str,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<Vec<Value>, StoreError> {
        let value = instrument::command(name, self.conn.run(Call::Script(inv), self.timeout)).await?;
        Vec::<Value>::from_redis_value(value).map_err(|e| StoreError::Backend(e.to_string()))
    }

    /// With `redis.wait_replicas > 0`: blocks until that many replicas acknowledge the
    /// writes sent so far on the connection that carried the take of `key` (`WAIT`), so a
    /// failover cannot resurrect a record that was already handed out. Fewer acks → the
    /// caller must not use what it took (503; the record is gone on the primary).
    async fn replicated(&self, key: &Key) -> Result<(), StoreError> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.wait_replicas)
            .arg(self.wait_timeout.as_millis() as u64);
        // Any failed WAIT leaves the take unconfirmed: hand nothing out (503), never 500. After
        // a failover the slot map (or a Sentinel's answer) can still name the old primary, now
        // a replica, which answers `ERR WAIT cannot be used with replica instances` (found by
        // the chaos run, tests/chaos).
        let unconfirmed = |e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("redis WAIT failed; take not handed out: {e}"))
        };
        let acked = instrument::command(
            "WAIT",
            self.conn.run(
                Call::OnPrimaryOf(&wait, key.as_str()),
                self.timeout + self.wait_timeout,
            ),
        )
        .await
        .map_err(|e| unconfirmed(&e))?;
        let acked = i64::from_redis_value(acked).map_err(|e| unconfirmed(&e))?;
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

    pub(crate) async fn put_new(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
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

    pub(crate) async fn put(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
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

    /// `CONFIG GET maxmemory-policy`; `None` when the server refuses `CONFIG` (ACL
    /// `NOPERM`, or a managed service that renamed or removed it).
    pub async fn eviction_policy(&self) -> Result<Option<String>, StoreError> {
        let reply: Result<Value, StoreError> = self
            .query(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
            .await;
        let value = match reply {
            Ok(v) => v,
            Err(StoreError::Backend(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        // RESP2: [name, value]; RESP3: {name: value}.
        let pairs: Vec<String> = match value {
            Value::Map(m) => m
                .into_iter()
                .flat_map(|(k, v)| [k, v])
                .filter_map(|v| String::from_redis_value(v).ok())
                .collect(),
            other => Vec::<String>::from_redis_value(other).unwrap_or_default(),
        };
        Ok(pairs.get(1).cloned())
    }

    pub async fn open(
        &self,
        keys: [&Key; 3],
        client_id: &str,
        owner: &str,
        ttl: Duration,
        extend: bool,
    ) -> Result<OpenOutcome, StoreError> {
        let ttl = ttl_secs(ttl).to_string();
        let extend = if extend { "1" } else { "0" };
        let reply = self
            .eval("open", &scripts::OPEN, &keys, &[client_id, owner, &ttl, extend])
            .await?;
        let status = status(&reply)?;
        let mut parts = reply.into_iter().skip(1).map(bulk);
        Ok(match (status, parts.next().flatten(), parts.next().flatten()) {
            (1, Some(v), _) => OpenOutcome::Open(v),
            (2, Some(v), Some(user)) => OpenOutcome::BoundHere(v, user),
            (3, ..) => OpenOutcome::BoundElsewhere,
            (4, ..) => OpenOutcome::WrongClient,
            _ => OpenOutcome::Missing,
        })
    }

    pub async fn bind(&self, keys: [&Key; 2], owner: &str, value: &[u8]) -> Result<Bind, StoreError> {
        let mut inv = scripts::BIND.prepare_invoke();
        inv.key(keys[0].as_str())
            .key(keys[1].as_str())
            .arg(owner)
            .arg(value);
        let reply = self.invoke("bind", &inv).await?;
        Ok(match status(&reply)? {
            1 => Bind::Bound,
            3 => Bind::BoundElsewhere,
            _ => Bind::Missing,
        })
    }

    pub async fn take_request(&self, keys: [&Key; 3], owner: &str) -> Result<Take, StoreError> {
        let reply = self.eval("take", &scripts::TAKE, &keys, &[owner]).await?;
        Ok(match status(&reply)? {
            1 => {
                self.replicated(keys[0]).await?;
                Take::Taken
            }
            3 => Take::NotOwner,
            _ => Take::Missing,
        })
    }

    /// Checks and redeems an authorization code (one script).
    pub async fn redeem(
        &self,
        code: &Key,
        used: &Key,
        ttl: Duration,
        client_id: &str,
        expected: &[(&str, &str)],
    ) -> Result<RedeemOutcome, StoreError> {
        let ttl = ttl_secs(ttl).to_string();
        let mut args = vec![ttl.as_str(), client_id];
        for (field, value) in expected {
            args.extend([*field, *value]);
        }
        let reply = self
            .eval("redeem", &scripts::REDEEM, &[code, used], &args)
            .await?;
        let status = status(&reply)?;
        let payload = reply.into_iter().nth(1).and_then(bulk);
        Ok(match (status, payload) {
            (1, Some(v)) => {
                self.replicated(code).await?;
                RedeemOutcome::Redeemed(v)
            }
            (2, Some(g)) => RedeemOutcome::Replayed(String::from_utf8_lossy(&g).into_owned()),
            (3, Some(f)) => RedeemOutcome::Mismatch(String::from_utf8_lossy(&f).into_owned()),
            _ => RedeemOutcome::Unknown,
        })
    }
}

impl RedisStore {
    /// Rotates a refresh token (the `ROTATE` script). `keys`: record, current, used set,
    /// revoked mark. `args`: presented digest, new digest, idle ttl, now, revoked ttl,
    /// client_id, proof jkt.
    pub(crate) async fn rotate(&self, keys: [&Key; 4], args: [&str; 7]) -> Result<RotateOutcome, StoreError> {
        let reply = self.eval("rotate", &scripts::ROTATE, &keys, &args).await?;
        let status = status(&reply)?;
        Ok(match (status, reply.into_iter().nth(1).and_then(bulk)) {
            (1, Some(v)) => RotateOutcome::Rotated(v),
            (2, _) => RotateOutcome::Reused,
            (3, _) => RotateOutcome::KeyMismatch,
            _ => RotateOutcome::Unknown,
        })
    }

    /// GCRA steps on `keys` (`params`: interval ms, burst and cells wanted per key). One script for all
    /// of them, except on a Cluster, where the buckets live in different slots: one script
    /// per bucket there, sent together.
    pub async fn gcra(&self, keys: &[Key], params: &[(u64, u64, u64)]) -> Result<Vec<Bucket>, StoreError> {
        if self.conn.is_cluster() && keys.len() > 1 {
            let each = keys
                .iter()
                .zip(params)
                .map(|(k, p)| self.gcra_script(std::slice::from_ref(k), std::slice::from_ref(p)));
            let answers = futures_util::future::try_join_all(each).await?;
            return Ok(answers.into_iter().flatten().collect());
        }
        self.gcra_script(keys, params).await
    }

    async fn gcra_script(&self, keys: &[Key], params: &[(u64, u64, u64)]) -> Result<Vec<Bucket>, StoreError> {
        let args: Vec<String> = params
            .iter()
            .flat_map(|(interval, burst, want)| [interval.to_string(), burst.to_string(), want.to_string()])
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let keys: Vec<&Key> = keys.iter().collect();
        let reply = self.eval("gcra", &scripts::GCRA, &keys, &args).await?;
        let int = |i: usize| match reply.get(i) {
            Some(Value::Int(n)) => Ok((*n).max(0) as u64),
            other => Err(StoreError::Backend(format!("unexpected gcra reply: {other:?}"))),
        };
        (0..keys.len())
            .map(|k| {
                Ok(Bucket {
                    granted: int(3 * k)?,
                    remaining_or_wait: int(3 * k + 1)?,
                    reset_ms: int(3 * k + 2)?,
                })
            })
            .collect()
    }

    pub async fn backoff(&self, key: &Key, policy: Backoff, count: bool) -> Result<u64, StoreError> {
        let ms = |d: Duration| (d.as_millis() as u64).to_string();
        let free = policy.free.to_string();
        let reply = self
            .eval(
                "backoff",
                &scripts::BACKOFF,
                &[key],
                &[
                    &free,
                    &ms(policy.base),
                    &ms(policy.max),
                    &ms(policy.forget),
                    if count { "1" } else { "0" },
                ],
            )
            .await?;
        Ok(status(&reply)?.max(0) as u64)
    }
}

/// Redis `EX` takes whole seconds, at least 1.
fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

/// A script reply's first element: its status code.
fn status(reply: &[Value]) -> Result<i64, StoreError> {
    match reply.first() {
        Some(Value::Int(n)) => Ok(*n),
        other => Err(StoreError::Backend(format!("unexpected script reply: {other:?}"))),
    }
}

/// A bulk string element of a script reply.
fn bulk(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}
