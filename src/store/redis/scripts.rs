//! The Lua scripts: each one atomic step of a login that needs more than one command. Every
//! script's keys share one hash tag (`store::keyspace`), so it runs in one Redis Cluster slot.
//! The in-memory backend (`store::memory`) implements the same contracts.

use std::sync::LazyLock;

use redis::Script;

/// Atomically claims a pushed request for one browser interaction (docs/architecture.md, step 2).
/// KEYS: record, claim. ARGV: client_id, owner, interaction ttl.
/// Returns {0} missing, {1, v} newly claimed, {2, v} resumed by the same owner,
/// {3} claimed by another browser, {4} bound to another client. The client check happens
/// before anything is written.
pub(super) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static TAKE_CLAIMED: LazyLock<Script> = LazyLock::new(|| {
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
/// marker. KEYS: code, used marker (same hash tag). ARGV: marker ttl.
/// Returns {0} missing, {1, v} taken.
pub(super) static REDEEM: LazyLock<Script> = LazyLock::new(|| {
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

/// The time on the Redis server in ms, shared by every replica (`TIME`; Redis ≥ 5 replicates
/// a script's effects, so a script may write after reading the clock).
const NOW_MS: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"#;

/// One GCRA step (`store::limits::gcra`, which this mirrors). KEYS: bucket. ARGV: interval
/// ms, burst. Returns {1, remaining, reset ms} allowed, {0, wait ms, reset ms} refused.
/// Numbers are written with `%d`: Lua would print a ms timestamp as `1.7e+12`.
pub(super) static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{NOW_MS}
local interval = tonumber(ARGV[1])
local limit = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > limit then return {{0, ahead - limit, tat - now}} end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', ahead))
return {{1, math.floor((limit - ahead) / interval), ahead}}
"#
    ))
});

/// The password back-off (`store::limits::backoff_after`, which this mirrors). KEYS: the
/// failures hash. ARGV: free, base ms, max ms, forget ms, count (`1`: a failure to count).
/// Returns {wait ms} while a back-off runs (nothing counted), else {0} — after counting the
/// failure and setting the next back-off when `count` is `1`.
pub(super) static BACKOFF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{NOW_MS}
local wait_until = tonumber(redis.call('HGET', KEYS[1], 'until') or 0) or 0
if wait_until > now then return {{wait_until - now}} end
if ARGV[5] ~= '1' then return {{0}} end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local free = math.max(tonumber(ARGV[1]), 1)
local wait = 0
if n >= free then
  wait = math.min(tonumber(ARGV[2]) * 2 ^ math.min(n - free, 32), tonumber(ARGV[3]))
end
redis.call('HSET', KEYS[1], 'until', string.format('%d', now + wait))
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.max(tonumber(ARGV[4]), wait, 1)))
return {{0}}
"#
    ))
});
