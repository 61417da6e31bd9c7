"""A plain push against a signed one (JAR, RFC 9101) on one par-server: server CPU per push.

Sequential pushes by a private_key_jwt client (a fresh client assertion each, both kinds),
the signed kind carrying the same parameters in a request object. Uses jwskate (installed
with requests-oauth2client in target/interop-venv by scripts/test.sh). Command (docs/benchmarks.md):

  target/interop-venv/bin/python bench/jar_push.py keys        # writes /tmp/jar/jwks.json
  target/release/par-server --config bench/jar_push.yaml &     # in-memory store, port 18290
  target/interop-venv/bin/python bench/jar_push.py plain  <pid> 3000
  target/interop-venv/bin/python bench/jar_push.py signed <pid> 3000
"""
import json, sys, time, os, http.client, urllib.parse
from jwskate import Jwk, Jwt
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
key = Jwk.from_pem(open(os.path.join(ROOT, 'tests/fixtures/client-es256.pem'), 'rb').read()).with_kid_thumbprint()
os.makedirs('/tmp/jar', exist_ok=True)
json.dump({"keys": [key.public_jwk().with_usage_parameters(alg="ES256").to_dict()]}, open('/tmp/jar/jwks.json','w'))
if sys.argv[1] == 'keys': sys.exit()
pid, n = int(sys.argv[2]), int(sys.argv[3])
iss = "http://127.0.0.1:18290"
params = {"client_id": "jwt-app", "response_type": "code", "scope": "openid", "redirect_uri": "https://app.example/cb",
          "state": "s", "nonce": "n", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}
now = int(time.time())
def assertion(i):
    return str(Jwt.sign({"iss": "jwt-app", "sub": "jwt-app", "aud": iss, "jti": f"j{i}-{now}-{sys.argv[1]}", "iat": now, "exp": now + 600}, key, alg="ES256"))
ro = str(Jwt.sign({**params, "iss": "jwt-app", "aud": iss, "exp": now + 600, "nbf": now}, key, alg="ES256", typ="oauth-authz-req+jwt"))
bodies = []
for i in range(n):
    auth = {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion(i)}
    form = {**params, **auth} if sys.argv[1] == 'plain' else {"client_id": "jwt-app", "request": ro, **auth}
    bodies.append(urllib.parse.urlencode(form))
def cpu():
    f = open(f'/proc/{pid}/stat').read().split(')')[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')
c = http.client.HTTPConnection('127.0.0.1', 18290)
c0, t0 = cpu(), time.time()
for b in bodies:
    c.request('POST', '/oauth2/par', b, {'Content-Type': 'application/x-www-form-urlencoded'})
    r = c.getresponse(); r.read()
    assert r.status == 201, (r.status)
print(sys.argv[1], f"{(cpu()-c0)/n*1e6:.0f} us server CPU per push", f"{n/(time.time()-t0):.0f}/s sequential")
