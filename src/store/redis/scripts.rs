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
