// A relying party built on openid-client (a certified OpenID client library, independent of
// par-server), driven against the real par-server behind the load balancer by
// tests/interop. The browser's part (load /authorize, fill in the login form) is a small
// user agent below: fetch with a cookie jar, the form found by its fields.
//
//   node rp.mjs <scenario>        scenarios: see SCENARIOS at the end
//
// Environment: ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USERNAME, PASSWORD; for the
// private_key_jwt client of the dpop scenario JWT_CLIENT_ID and CLIENT_KEY_FILE (PKCS#8 PEM).
// Prints one JSON line describing what was obtained; exits non-zero on any failure.
import { readFileSync } from 'node:fs';
import * as client from 'openid-client';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

/** A browser: one cookie jar, no automatic redirects. */
export class UserAgent {
  constructor() {
    this.cookies = new Map();
  }

  async request(url, init = {}) {
    const headers = new Headers(init.headers ?? {});
    if (this.cookies.size) {
      headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    }
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '';
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  /** Opens the authorization URL; returns the login form (or the redirect, if signed in). */
  async open(url) {
    const res = await this.request(url);
    const body = await res.text();
    return { status: res.status, location: res.headers.get('location'), form: parseForm(body, url), body };
  }

  /** Submits `form` with extra fields; returns the response status and Location. */
  async submit(form, fields) {
    const res = await this.request(form.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...form.hidden, ...fields }),
    });
    const body = await res.text();
    return { status: res.status, location: res.headers.get('location'), form: parseForm(body, form.action), body };
  }
}

const decode = (s) =>
  s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCharCode(parseInt(n, 16)))
    .replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** The first POST form of an HTML page: its action (absolute) and hidden inputs. */
function parseForm(html, base) {
  const form = /<form[^>]*method="post"[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return null;
  const hidden = {};
  for (const input of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const tag = input[0];
    if (!/type="hidden"/i.test(tag)) continue;
    const name = /name="([^"]*)"/i.exec(tag)?.[1];
    const value = /value="([^"]*)"/i.exec(tag)?.[1] ?? '';
    if (name) hidden[decode(name)] = decode(value);
  }
  return { action: new URL(decode(form[1]), base).href, hidden };
}

/** Discovery as the library does it (plain http only because the test stack is loopback). */
export async function configuration(options = {}) {
  const config = await client.discovery(
    new URL(env('ISSUER')),
    env('CLIENT_ID'),
    options.metadata ?? {},
    options.auth ?? client.ClientSecretBasic(env('CLIENT_SECRET')),
    { execute: [client.allowInsecureRequests] },
  );
  return config;
}

/** A fresh authorization request's parameters and the checks that go with them. */
export async function freshRequest(extra = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const checks = { pkceCodeVerifier: verifier, expectedState: client.randomState(), expectedNonce: client.randomNonce() };
  const params = {
    redirect_uri: env('REDIRECT_URI'),
    scope: 'openid email profile',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: checks.expectedState,
    nonce: checks.expectedNonce,
    ...extra,
  };
  return { params, checks };
}

/** The user signs in on a loaded login page; returns the callback URL the browser is sent to. */
export async function signIn(agent, page) {
  if (!page.form) throw new Error(`no login form (status ${page.status}): ${page.body.slice(0, 300)}`);
  const done = await agent.submit(page.form, { username: env('USERNAME'), password: env('PASSWORD') });
  if (done.status !== 303 || !done.location) {
    throw new Error(`login answered ${done.status}: ${done.body.slice(0, 300)}`);
  }
  return new URL(done.location);
}

/** Redeems the callback with the library: iss, state, PKCE, ID token signature and nonce. */
export async function redeem(config, callback, checks, options) {
  const tokens = await client.authorizationCodeGrant(config, callback, { ...checks, idTokenExpected: true }, undefined, options);
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, options);
  return { tokens, claims, userinfo };
}

/** PAR, sign in, redeem, userinfo: the login every scenario starts from. */
async function basic() {
  const config = await configuration();
  const { params, checks } = await freshRequest();
  const url = await client.buildAuthorizationUrlWithPAR(config, params);
  const agent = new UserAgent();
  const callback = await signIn(agent, await agent.open(url));
  const { tokens, claims, userinfo } = await redeem(config, callback, checks);
  return {
    request_uri: url.searchParams.get('request_uri'),
    sub: claims.sub,
    token_type: tokens.token_type,
    scope: tokens.scope,
    userinfo_email: userinfo.email,
  };
}

/** The claims of a JWT, unverified (the library verified what it needed). */
const jwtClaims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

/** The client's private key (ES256, PKCS#8 PEM) for private_key_jwt. */
async function clientKey() {
  const pem = readFileSync(env('CLIENT_KEY_FILE'), 'utf8');
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const key = await crypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  return { key, kid: 'k1' };
}

/**
 * RFC 9449 with private_key_jwt: PAR with a DPoP proof (the server requires nonces, so the
 * first push gets use_dpop_nonce and the library retries, through the balancer, on another
 * replica), the code redeemed with a proof by the same key, userinfo with the bound token.
 */
async function dpop() {
  const config = await client.discovery(
    new URL(env('ISSUER')),
    env('JWT_CLIENT_ID'),
    {},
    client.PrivateKeyJwt(await clientKey()),
    { execute: [client.allowInsecureRequests] },
  );
  const algs = config.serverMetadata().dpop_signing_alg_values_supported ?? [];
  if (!algs.includes('ES256')) throw new Error(`metadata does not advertise DPoP ES256: ${algs}`);
  const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  const { params, checks } = await freshRequest({ scope: 'openid email profile offline_access' });
  const url = await client.buildAuthorizationUrlWithPAR(config, params, { DPoP });
  const agent = new UserAgent();
  const callback = await signIn(agent, await agent.open(url));
  const { tokens, claims, userinfo } = await redeem(config, callback, checks, { DPoP });
  if (!tokens.refresh_token) throw new Error('no refresh_token for offline_access');
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  const again = await client.fetchUserInfo(config, refreshed.access_token, claims.sub, { DPoP });
  return {
    request_uri: url.searchParams.get('request_uri'),
    sub: claims.sub,
    token_type: tokens.token_type,
    cnf_jkt: jwtClaims(tokens.access_token).cnf?.jkt,
    userinfo_email: userinfo.email,
    refresh_rotated: Boolean(refreshed.refresh_token) && refreshed.refresh_token !== tokens.refresh_token,
    refreshed_token_type: refreshed.token_type,
    refreshed_userinfo_email: again.email,
  };
}

/**
 * FAPI 2.0 §5.3.2.2 (note), conformance module
 * par-ensure-reused-request-uri-prior-to-auth-completion-succeeds: a first browser loads the
 * authorization URL, a second fresh browser loads it too and signs in; the library redeems
 * that code. The first browser's later sign-in finds the request spent.
 */
async function reuse() {
  const config = await configuration();
  const { params, checks } = await freshRequest();
  const url = await client.buildAuthorizationUrlWithPAR(config, params);
  const first = new UserAgent();
  const firstPage = await first.open(url);
  const second = new UserAgent();
  const callback = await signIn(second, await second.open(url));
  const { claims } = await redeem(config, callback, checks);
  const late = await first.submit(firstPage.form, { username: env('USERNAME'), password: env('PASSWORD') });
  return {
    first_load: firstPage.status,
    sub: claims.sub,
    first_browser_after: late.status,
    first_browser_error: /<code>([a-z_]+)<\/code>/.exec(late.body)?.[1] ?? null,
  };
}

/** Twenty browsers load one authorization URL, then all sign in at once: one code. */
async function race() {
  const config = await configuration();
  const { params, checks } = await freshRequest();
  const url = await client.buildAuthorizationUrlWithPAR(config, params);
  const agents = Array.from({ length: 20 }, () => new UserAgent());
  const pages = await Promise.all(agents.map((a) => a.open(url)));
  const fields = { username: env('USERNAME'), password: env('PASSWORD') };
  const results = await Promise.all(agents.map((a, i) => a.submit(pages[i].form, fields)));
  const winners = results.filter((r) => r.status === 303);
  const { claims } = await redeem(config, new URL(winners[0].location), checks);
  return {
    pages: pages.filter((p) => p.status === 200 && p.form).length,
    codes: winners.length,
    invalid_request_uri: results.filter((r) => r.status === 400 && r.body.includes('<code>invalid_request_uri</code>')).length,
    sub: claims.sub,
  };
}

/**
 * A FAPI 2.0 login against `profile: fapi2`: the authorization request signed as a request
 * object (JAR) and pushed (PAR) with a DPoP proof, carrying RAR authorization_details;
 * private_key_jwt; the user signs in and consents to the payment; the code is redeemed with
 * a proof by the same key; userinfo with the bound token.
 */
async function fapi2() {
  const config = await client.discovery(
    new URL(env('ISSUER')),
    env('JWT_CLIENT_ID'),
    {},
    client.PrivateKeyJwt(await clientKey()),
    { execute: [client.allowInsecureRequests] },
  );
  const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  const details = [{ type: 'payment_initiation', instructedAmount: { currency: 'EUR', amount: '123.50' }, creditorName: 'Merchant A' }];
  const { params, checks } = await freshRequest({ authorization_details: JSON.stringify(details) });
  const signed = await client.buildAuthorizationUrlWithJAR(config, params, await clientKey());
  const url = await client.buildAuthorizationUrlWithPAR(config, signed.searchParams, { DPoP });
  const agent = new UserAgent();
  const login = await agent.open(url);
  if (!login.form) throw new Error(`no login form (status ${login.status}): ${login.body.slice(0, 300)}`);
  const consent = await agent.submit(login.form, { username: env('USERNAME'), password: env('PASSWORD') });
  if (consent.status !== 200 || !consent.form) {
    throw new Error(`no consent page (status ${consent.status}): ${consent.body.slice(0, 300)}`);
  }
  const done = await agent.submit(consent.form, { decision: 'allow' });
  if (done.status !== 303 || !done.location) throw new Error(`consent answered ${done.status}: ${done.body.slice(0, 300)}`);
  const { tokens, claims, userinfo } = await redeem(config, new URL(done.location), checks, { DPoP });
  return {
    pushed_request_object: signed.searchParams.has('request'),
    consent_shows_details: consent.body.includes('payment_initiation') && consent.body.includes('Merchant A'),
    sub: claims.sub,
    token_type: tokens.token_type,
    cnf_jkt: jwtClaims(tokens.access_token).cnf?.jkt,
    authorization_details: tokens.authorization_details,
    userinfo_email: userinfo.email,
    metadata: {
      require_signed_request_object: config.serverMetadata().require_signed_request_object,
      token_endpoint_auth_methods_supported: config.serverMetadata().token_endpoint_auth_methods_supported,
      request_object_signing_alg_values_supported: config.serverMetadata().request_object_signing_alg_values_supported,
    },
  };
}

const SCENARIOS = { basic, reuse, race, dpop, fapi2 };

const name = process.argv[2];
if (!SCENARIOS[name]) {
  console.error(`unknown scenario '${name}'; one of: ${Object.keys(SCENARIOS).join(', ')}`);
  process.exit(2);
}
try {
  console.log(JSON.stringify({ scenario: name, ...(await SCENARIOS[name]()) }));
} catch (e) {
  console.error(`${name}: ${e?.stack ?? e}`);
  if (e?.cause) console.error('cause:', e.cause);
  process.exit(1);
}
