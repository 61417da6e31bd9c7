//! The Lua scripts: each one atomic step of a login that needs more than one command. Every
//! script's keys share one hash tag (`store::keyspace`), so it runs in one Redis Cluster slot.
//! The in-memory backend (`store::memory`) implements the same contracts.

use std::sync::LazyLock;

use redis::Script;

/// Reads a pushed request for one visit of the front channel (docs/architecture.md, step 2).
/// A visit never binds or consumes the request (FAPI 2.0 §5.3.2.2, note: one-time use is
/// enforced at the point of authorization); the first visit extends the record's life to
/// the interaction lifetime, once.
/// KEYS: record, opened marker, binding. ARGV: client_id, owner, interaction ttl, extend (1/0).
/// Returns {0} missing, {1, v} open (unbound), {2, v, user} bound to this owner (awaiting
/// consent), {3} bound to another browser, {4} another client's. The client id is the
/// record's first line: compared without decoding the record, before anything is written.
pub(super) static OPEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
local n = #ARGV[1]
if string.sub(v, n + 1, n + 1) ~= '\n' or string.sub(v, 1, n) ~= ARGV[1] then return {4} end
if ARGV[4] == '1' and redis.call('SET', KEYS[2], '1', 'EX', ARGV[3], 'NX') then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
local b = redis.call('GET', KEYS[3])
if not b then return {1, v} end
local m = #ARGV[2]
if string.sub(b, m + 1, m + 1) == '\n' and string.sub(b, 1, m) == ARGV[2] then
  return {2, v, string.sub(b, m + 2)}
end
return {3}
"#,
    )
});

/// Binds a pushed request to the browser whose user just authenticated, while consent is
/// asked: from then on only that browser may complete it.
/// KEYS: record, binding. ARGV: owner, binding value (owner, newline, user).
/// Returns {0} missing, {1} bound (or re-bound by the same owner), {3} bound to another.
pub(super) static BIND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return {0} end
local b = redis.call('GET', KEYS[2])
local m = #ARGV[1]
if b and (string.sub(b, m + 1, m + 1) ~= '\n' or string.sub(b, 1, m) ~= ARGV[1]) then return {3} end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
return {1}
"#,
    )
});

/// Takes (deletes) a pushed request at the point of authorization: exactly one winner. A
/// request bound to a browser can be taken only by that browser.
/// KEYS: record, binding, opened marker. ARGV: owner.
/// Returns {0} missing, {1} taken, {3} bound to another browser.
pub(super) static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local b = redis.call('GET', KEYS[2])
local m = #ARGV[1]
if b and (string.sub(b, m + 1, m + 1) ~= '\n' or string.sub(b, 1, m) ~= ARGV[1]) then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {3} end
  return {0}
end
if redis.call('DEL', KEYS[1]) == 0 then return {0} end
redis.call('DEL', KEYS[2], KEYS[3])
return {1}
"#,
    )
});

/// Redeems an authorization code, checking before anything is consumed (RFC 6749 §4.1.3,
/// RFC 7636 §4.6): the code's client, then each expected field. A code presented by another
/// client, or with a field that does not match, is left untouched and redeemable by its
/// rightful client. A live code that passes is deleted and kept as the used marker (for
/// replay detection) in the same step; a used code that passes every check is a real replay.
/// KEYS: code, used marker (same hash tag). ARGV: marker ttl, client_id, then pairs
/// (field, expected value); a field named `?f` is compared only when the record has `f`.
/// Returns {0} unknown (or another client's), {1, v} redeemed, {2, grant_id} replayed,
/// {3, field} a field does not match.
pub(super) static REDEEM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = redis.call('GET', KEYS[1])
local live = v ~= false
if not live then
  v = redis.call('GET', KEYS[2])
  if not v then return {0} end
end
local ok, rec = pcall(cjson.decode, v)
if not ok or type(rec) ~= 'table' then return {0} end
local function field(name)
  local x = rec[name]
  if type(x) ~= 'string' then return '' end
  return x
end
if field('client_id') ~= ARGV[2] then return {0} end
for i = 3, #ARGV - 1, 2 do
  local name = ARGV[i]
  local optional = string.sub(name, 1, 1) == '?'
  if optional then name = string.sub(name, 2) end
  if not (optional and rec[name] == nil) and field(name) ~= ARGV[i + 1] then return {3, name} end
end
if not live then return {2, field('grant_id')} end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], v, 'EX', ARGV[1])
return {1, v}
"#,
    )
});

/// Rotates a grant's refresh token (RFC 9700 §4.14.2; docs/tokens.md §7). The record must
/// belong to the client and, when it is DPoP-bound, to the proof's key; then the presented
/// token (its digest) must be the current one: it is retired into the grant's set of used
/// tokens and the new one becomes current, for the idle lifetime capped by the absolute end.
/// A retired token presented again revokes the whole grant: its refresh keys are deleted and
/// the grant is marked revoked (which refuses its access tokens).
/// KEYS: record, current, used set, revoked mark (one hash tag: the grant id).
/// ARGV: presented digest, new digest, idle ttl, now, revoked-mark ttl, client_id, proof jkt
/// (empty without a proof).
/// Returns {0} unknown (or expired, revoked, another client's), {1, v} rotated, {2} reuse
/// detected and the grant revoked, {3} the proof's key is not the token's.
pub(super) static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[4]) == 1 then return {0} end
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
local ok, rec = pcall(cjson.decode, v)
if not ok or type(rec) ~= 'table' or rec['client_id'] ~= ARGV[6] then return {0} end
if type(rec['dpop_jkt']) == 'string' and rec['dpop_jkt'] ~= ARGV[7] then return {3} end
local left = math.floor((tonumber(rec['expires_at']) or 0) - tonumber(ARGV[4]))
if left <= 0 then return {0} end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  local ttl = math.min(tonumber(ARGV[3]), left)
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ttl)
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('EXPIRE', KEYS[3], left)
  return {1, v}
end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[5])
  return {2}
end
return {0}
"#,
    )
});

/// The time on the Redis server in ms, shared by every replica (`TIME`; Redis ≥ 5 replicates
/// a script's effects, so a script may write after reading the clock).
const NOW_MS: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"#;

/// One GCRA step (`store::rate::gcra`, which this mirrors) on each bucket: every limit of
/// one request in one script (one call instead of one per limit). KEYS: the buckets (one
/// Redis node: not used across Cluster slots). ARGV: interval ms, burst and the cells wanted
/// (a replica's lease, `store::lease`), per key. Returns per key {granted, remaining, reset
/// ms} ({0, wait ms, reset ms}: refused), flattened. Numbers are written with `%d`: Lua would
/// print a ms timestamp as `1.7e+12`.
pub(super) static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{NOW_MS}
local out = {{}}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[3 * i - 2])
  local limit = interval * tonumber(ARGV[3 * i - 1])
  local want = math.max(1, tonumber(ARGV[3 * i]))
  local tat = tonumber(redis.call('GET', KEYS[i]) or now) or now
  if tat < now then tat = now end
  local used = tat - now
  local granted = math.min(want, math.floor(math.max(0, limit - used) / interval))
  if granted == 0 then
    out[#out + 1] = 0; out[#out + 1] = used + interval - limit; out[#out + 1] = used
  else
    local ahead = used + granted * interval
    redis.call('SET', KEYS[i], string.format('%d', tat + granted * interval), 'PX', string.format('%d', ahead))
    out[#out + 1] = granted; out[#out + 1] = math.floor((limit - used) / interval) - granted; out[#out + 1] = ahead
  end
end
return out
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
