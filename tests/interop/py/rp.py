"""A relying party built on requests-oauth2client (independent of par-server), driven
against the real par-server behind the load balancer by tests/interop. The browser's part
(load /authorize, fill in the login form) is a requests.Session with its cookie jar.

    python rp.py <scenario>          scenarios: see SCENARIOS at the end

Environment: ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USERNAME, PASSWORD.
Prints one JSON line describing what was obtained; exits non-zero on any failure.
"""

import base64
import json
import os
import sys
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests
from requests_oauth2client import BearerToken, ClientSecretBasic, OAuth2Client


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set")
    return value


class LoginForm(HTMLParser):
    """The first POST form of a page: its action and hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action = None
        self.hidden: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None and (a.get("method") or "").lower() == "post":
            self.action, self._in_form = a.get("action"), True
        elif tag == "input" and self._in_form and a.get("type") == "hidden" and a.get("name"):
            self.hidden[a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def sign_in(browser: requests.Session, url: str) -> str:
    """Loads the authorization URL and submits the login form; returns the callback URL."""
    page = browser.get(url, allow_redirects=False, timeout=10)
    form = LoginForm()
    form.feed(page.text)
    if form.action is None:
        raise SystemExit(f"no login form (status {page.status_code}): {page.text[:300]}")
    done = browser.post(
        urljoin(url, form.action),
        data={**form.hidden, "username": env("USERNAME"), "password": env("PASSWORD")},
        allow_redirects=False,
        timeout=10,
    )
    if done.status_code != 303:
        raise SystemExit(f"login answered {done.status_code}: {done.text[:300]}")
    return done.headers["Location"]


def client() -> OAuth2Client:
    issuer = env("ISSUER")
    # testing=True only lifts the https requirement: the test stack is plain http on loopback.
    return OAuth2Client.from_discovery_endpoint(
        f"{issuer}/.well-known/openid-configuration",
        issuer=issuer,
        # The clients are registered for client_secret_basic (the library's default is _post).
        auth=ClientSecretBasic(env("CLIENT_ID"), env("CLIENT_SECRET")),
        redirect_uri=env("REDIRECT_URI"),
        # The client's registered ID token algorithm (RFC 7591 §2); the library assumes RS256.
        id_token_signed_response_alg=os.environ.get("ID_TOKEN_ALG", "ES256"),
        testing=True,
    )


def basic() -> dict:
    """PAR, sign in, redeem (the library checks iss, state, PKCE, the ID token), userinfo."""
    rp = client()
    request = rp.authorization_request(scope="openid email profile")
    pushed = rp.pushed_authorization_request(request)
    callback = sign_in(requests.Session(), str(pushed))
    response = request.validate_callback(callback)
    token = rp.authorization_code(response)
    userinfo = rp.userinfo(token)
    return {
        "request_uri": pushed.request_uri,
        "sub": token.id_token.subject,
        "token_type": token.token_type,
        "userinfo_email": userinfo.get("email"),
    }


def dpop() -> dict:
    """RFC 9449: PAR with `dpop_jkt`, the code redeemed with a DPoP proof by that key (the
    server requires nonces: the library retries once with the `DPoP-Nonce` it gets, and the
    balancer sends the retry to another replica), userinfo with the bound token."""
    rp = client()
    request = rp.authorization_request(scope="openid email profile", dpop=True)
    pushed = rp.pushed_authorization_request(request)
    callback = sign_in(requests.Session(), str(pushed))
    response = request.validate_callback(callback)
    # requests-oauth2client 1.8.0 cannot rebuild a DPoPToken after validating its ID token
    # (validate_id_token calls DPoPToken(...) without its key: a TypeError). So the library
    # validates the ID token (signature, iss, aud, nonce, at_hash, ...) on a BearerToken copy
    # of the same response, and the DPoPToken is used as returned.
    token = rp.authorization_code(response, validate=False)
    BearerToken(
        access_token=token.access_token,
        expires_at=token.expires_at,
        scope=token.scope,
        id_token=token.id_token,
    ).validate_id_token(rp, response)
    userinfo = rp.userinfo(token)
    claims = json.loads(base64.urlsafe_b64decode(token.access_token.split(".")[1] + "=="))
    return {
        "request_uri": pushed.request_uri,
        "sub": token.id_token.subject,
        "token_type": token.token_type,
        "cnf_jkt": claims.get("cnf", {}).get("jkt"),
        "dpop_jkt": request.dpop_jkt,
        "userinfo_email": userinfo.get("email"),
    }


SCENARIOS = {"basic": basic, "dpop": dpop}

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in SCENARIOS:
        raise SystemExit(f"unknown scenario '{name}'; one of: {', '.join(SCENARIOS)}")
    print(json.dumps({"scenario": name, **SCENARIOS[name]()}))
