// A Redis adapter for oidc-provider (its documented adapter interface: upsert, find,
// findByUid, findByUserCode, consume, destroy, revokeByGrantId), so that several processes
// share sessions, interactions, pushed requests, codes and tokens. Modelled on the
// project's example adapter; records are JSON strings, consumable ones are hashes with a
// `consumed` field. ioredis auto-pipelining batches concurrent commands on one connection
// (the same idea as par-server's multiplexed connection).
import Redis from 'ioredis';

const client = new Redis(process.env.REDIS_URL, { keyPrefix: 'oidc:', enableAutoPipelining: true });

const grantable = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest',
]);
// models the provider marks consumed (PAR records too, since v8)
const consumable = new Set([
  'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PushedAuthorizationRequest',
]);

const grantKeyFor = (id) => `grant:${id}`;
const userCodeKeyFor = (userCode) => `userCode:${userCode}`;
const uidKeyFor = (uid) => `uid:${uid}`;

export default class RedisAdapter {
  constructor(name) {
    this.name = name;
  }

  key(id) {
    return `${this.name}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const multi = client.multi();
    if (consumable.has(this.name)) {
      multi.hset(key, { payload: JSON.stringify(payload) });
      if (expiresIn) multi.expire(key, expiresIn);
    } else if (expiresIn) {
      multi.set(key, JSON.stringify(payload), 'EX', expiresIn);
    } else {
      multi.set(key, JSON.stringify(payload));
    }
    if (grantable.has(this.name) && payload.grantId) {
      const grantKey = grantKeyFor(payload.grantId);
      multi.rpush(grantKey, key);
      // keep the grant index at least as long as its longest-lived token
      if (expiresIn) multi.expire(grantKey, expiresIn, 'GT');
      multi.expire(grantKey, expiresIn || 28800, 'NX');
    }
    if (payload.userCode) {
      const userCodeKey = userCodeKeyFor(payload.userCode);
      multi.set(userCodeKey, id, 'EX', expiresIn);
    }
    if (payload.uid) {
      const uidKey = uidKeyFor(payload.uid);
      multi.set(uidKey, id, 'EX', expiresIn);
    }
    await multi.exec();
  }

  async find(id) {
    const key = this.key(id);
    if (consumable.has(this.name)) {
      const data = await client.hgetall(key);
      if (!data || !data.payload) return undefined;
      const { payload, ...rest } = data;
      return { ...rest, ...JSON.parse(payload), ...(rest.consumed ? { consumed: Number(rest.consumed) } : {}) };
    }
    const data = await client.get(key);
    return data ? JSON.parse(data) : undefined;
  }

  async findByUid(uid) {
    const id = await client.get(uidKeyFor(uid));
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode) {
    const id = await client.get(userCodeKeyFor(userCode));
    return id ? this.find(id) : undefined;
  }

  async consume(id) {
    await client.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
  }

  async destroy(id) {
    await client.del(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = grantKeyFor(grantId);
    const tokens = await client.lrange(grantKey, 0, -1);
    const multi = client.multi();
    // list entries carry the prefix-less key; ioredis adds keyPrefix to each command
    tokens.forEach((token) => multi.del(token));
    multi.del(grantKey);
    await multi.exec();
  }
}
