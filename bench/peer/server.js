// panva/oidc-provider set up like par-server's benchmark: PAR (required for the client),
// PKCE S256, one confidential client with client_secret_basic, ES256 ID tokens, one trivial
// account. A login posts username/password to /interaction/:uid/login and grants the
// requested scopes at once, so a later authorization with the session cookie answers
// directly with a code (the SSO case).
//
// Environment: PORT (default 3000), WORKERS (node cluster processes, default 1),
// REDIS_URL (shared storage through ./redis-adapter.js; required for WORKERS > 1),
// CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USERNAME, PASSWORD.
import cluster from 'node:cluster';
import crypto from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

import RedisAdapter from './redis-adapter.js';

const PORT = Number(process.env.PORT || 3000);
const WORKERS = Number(process.env.WORKERS || 1);
const CLIENT_ID = process.env.CLIENT_ID || 'bench-app';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'bench-secret-0123456789';
const REDIRECT_URI = process.env.REDIRECT_URI || 'http://127.0.0.1:9000/callback';
const USERNAME = process.env.USERNAME || 'alice';
const PASSWORD = process.env.PASSWORD || 'bench-password';
const ISSUER = `http://127.0.0.1:${PORT}`;

if (WORKERS > 1 && !process.env.REDIS_URL) {
  throw new Error('WORKERS > 1 needs REDIS_URL: the processes must share logins');
}

if (cluster.isPrimary && WORKERS > 1) {
  // One signing key and one cookie key for all processes.
  process.env.PEER_JWK = JSON.stringify(signingJwk());
  process.env.PEER_COOKIE_KEY = crypto.randomBytes(32).toString('base64url');
  for (let i = 0; i < WORKERS; i += 1) cluster.fork();
  cluster.on('exit', (w, code) => {
    console.error(`worker ${w.process.pid} exited with ${code}`);
    process.exit(1);
  });
} else {
  start();
}

function signingJwk() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid: 'peer-es256', use: 'sig', alg: 'ES256' };
}

function account(accountId) {
  return {
    accountId,
    async claims() {
      return { sub: accountId, email: `${accountId}@example.com`, email_verified: true, name: accountId };
    },
  };
}

function start() {
  const jwk = process.env.PEER_JWK ? JSON.parse(process.env.PEER_JWK) : signingJwk();
  const cookieKey = process.env.PEER_COOKIE_KEY || crypto.randomBytes(32).toString('base64url');
  const provider = new Provider(ISSUER, {
    adapter: process.env.REDIS_URL ? RedisAdapter : undefined,
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
      require_pushed_authorization_requests: true,
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: [cookieKey] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    scopes: ['openid', 'email', 'profile'],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      pushedAuthorizationRequests: { enabled: true },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: (ctx, sub) => account(sub),
    ttl: { PushedAuthorizationRequest: 60, AuthorizationCode: 60, AccessToken: 600, IdToken: 600, Session: 28800, Interaction: 600, Grant: 28800 },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error:', err));
  const callback = provider.callback();

  async function login(req, res) {
    const body = await new Promise((resolve, reject) => {
      let data = '';
      req.on('data', (c) => { data += c; });
      req.on('end', () => resolve(new URLSearchParams(data)));
      req.on('error', reject);
    });
    if (body.get('username') !== USERNAME || body.get('password') !== PASSWORD) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('bad credentials');
      return;
    }
    const details = await provider.interactionDetails(req, res);
    const accountId = USERNAME;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  }

  http.createServer((req, res) => {
    if (req.url.startsWith('/interaction/')) {
      if (req.method === 'POST' && req.url.endsWith('/login')) {
        login(req, res).catch((e) => {
          console.error('login failed:', e);
          res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
        });
      } else {
        res.writeHead(200, { 'content-type': 'text/html' })
          .end('<form method="post" action="login"><input name="username"><input name="password" type="password"></form>');
      }
      return;
    }
    callback(req, res);
  }).listen(PORT, '127.0.0.1', () => {
    console.error(`oidc-provider ${process.pid} on ${ISSUER} (${process.env.REDIS_URL ? 'redis' : 'memory'} adapter)`);
  });
}
