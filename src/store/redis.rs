//! The Redis backend: the product's shared state.
//!
//! Connection choice (measured, docs/benchmarks.md): one multiplexed `ConnectionManager`,
//! cloned per call, carries the hot path. It pipelines concurrent commands on one socket and
//! reconnects by itself after Redis restarts. A deadpool-redis pool is available with
//! `redis.connection = "pool"` for operators who want one slow command never to queue others
//! behind it; it costs an extra `UNWATCH`+`PING` round trip per checkout.
//!
//! Every call is bounded by `redis.command_timeout_ms`; a timeout is reported as
//! [`StoreError::Unavailable`] so the client gets `503 temporarily_unavailable` quickly.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Cmd, FromRedisValue, Script, Value};

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

/// Redeems an authorization code: GETDEL the record and, if it existed, mark the code used
/// with the record's `grant_id` (for replay detection) in the same atomic step — one round
/// trip instead of two, and no window in which a replay finds neither the code nor the
/// marker. KEYS: code, used marker (same hash tag). ARGV: marker ttl. Returns the record.
static REDEEM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call('GETDEL', KEYS[1])
if not v then return false end
local ok, rec = pcall(cjson.decode, v)
local grant = ''
if ok and type(rec) == 'table' and type(rec['grant_id']) == 'string' then grant = rec['grant_id'] end
redis.call('SET', KEYS[2], grant, 'EX', ARGV[1])
return v
"#,
    )
});

#[derive(Clone)]
enum Connection {
    Manager(ConnectionManager),
    Pool(deadpool_redis::Pool),
}

#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    timeout: Duration,
}

/// How par-server connects to Redis.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: String,
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
    /// `None`: one multiplexed connection. `Some(n)`: a deadpool-redis pool of `n`.
    pub pool_size: Option<usize>,
}

impl RedisStore {
    /// Builds the connection without contacting Redis: the service starts (not ready) while
    /// Redis is down and connects as soon as it answers.
    pub fn connect(options: &RedisOptions) -> Result<Self, StoreError> {
        let conn = match options.pool_size {
            None => {
                let client = redis::Client::open(options.url.as_str())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.command_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                Connection::Manager(ConnectionManager::new_lazy_with_config(client, config)?)
            }
            Some(size) => {
                let mut cfg = deadpool_redis::Config::from_url(options.url.clone());
                let mut pool = deadpool_redis::PoolConfig::new(size);
                pool.timeouts.wait = Some(options.command_timeout);
                pool.timeouts.create = Some(options.connect_timeout);
                pool.timeouts.recycle = Some(options.command_timeout);
                cfg.pool = Some(pool);
                let pool = cfg
                    .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                Connection::Pool(pool)
            }
        };
        Ok(Self {
            conn,
            timeout: options.command_timeout,
        })
    }

    async fn bounded<T>(&self, fut: impl Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable("redis command timed out".into())),
        }
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        match &self.conn {
            Connection::Manager(m) => {
                let mut c = m.clone();
                self.bounded(cmd.query_async(&mut c)).await
            }
            Connection::Pool(p) => {
                let mut c = self.checkout(p).await?;
                self.bounded(cmd.query_async(&mut c)).await
            }
        }
    }

    async fn eval(&self, script: &Script, keys: &[&Key], args: &[&str]) -> Result<Vec<Value>, StoreError> {
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
        }
    }

    async fn checkout(&self, pool: &deadpool_redis::Pool) -> Result<deadpool_redis::Connection, StoreError> {
        pool.get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("redis pool: {e}")))
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
        self.query(redis::cmd("GETDEL").arg(key.as_str())).await
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
            .eval(&CLAIM, &[record, claim], &[client_id, owner, &ttl])
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
        let reply = self.eval(&TAKE_CLAIMED, &[record, claim], &[owner]).await?;
        Ok(match (status(&reply)?, payload(&reply)) {
            (1, Some(v)) => TakeOutcome::Taken(v),
            (3, _) => TakeOutcome::NotOwner,
            _ => TakeOutcome::Missing,
        })
    }
}

impl RedisStore {
    pub async fn redeem(&self, code: &Key, used: &Key, ttl: Duration) -> Result<Option<Vec<u8>>, StoreError> {
        let ttl = ttl_secs(ttl).to_string();
        let mut inv = REDEEM.prepare_invoke();
        inv.key(code.as_str()).key(used.as_str()).arg(&ttl);
        match &self.conn {
            Connection::Manager(m) => {
                let mut c = m.clone();
                self.bounded(inv.invoke_async(&mut c)).await
            }
            Connection::Pool(p) => {
                let mut c = self.checkout(p).await?;
                self.bounded(inv.invoke_async(&mut c)).await
            }
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
