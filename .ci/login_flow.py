#!/usr/bin/env python3
"""Browser-less login through the load balancer, for .ci/containers.sh (login_through_lb).

PAR push -> GET /authorize -> the login form (every hidden field kept, username and password
filled in) -> optional consent form -> redirect to the client with code, iss (and state) ->
POST /token with the PKCE verifier -> GET /userinfo -> the same code again must fail.

With --until FILE it logs in again and again (fresh cookies each time) until FILE exists, then
prints "N logins, M failed" and fails if any login failed: CI runs it while replicas are
scaled down.

Standard library only. Cookies are kept by hand (name=value, whatever their Secure flag: the
stack is plain http on 127.0.0.1, which browsers treat as a secure context). Written against
the product contract (README and docs/), not against one implementation: the form is found by its
password field, its action and hidden inputs are read from the HTML.
"""

import argparse
import base64
import html.parser
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)
COOKIES = {}


def request(method, url, data=None, headers=None):
    headers = dict(headers or {})
    if COOKIES:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in COOKIES.items())
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        resp = OPENER.open(req, timeout=10)
    except urllib.error.HTTPError as e:
        resp = e
    for value in resp.headers.get_all("Set-Cookie") or []:
        name, _, rest = value.partition("=")
        COOKIES[name.strip()] = rest.split(";", 1)[0]
    return resp.status, resp.headers, resp.read().decode("utf-8", "replace")


class Forms(html.parser.HTMLParser):
    """Collects forms: action, method, inputs (name -> value), submit buttons."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": (a.get("method") or "get").lower(),
                               "inputs": {}, "types": {}, "buttons": []})
        elif self.forms and tag in ("input", "button") and a.get("name"):
            kind = (a.get("type") or ("submit" if tag == "button" else "text")).lower()
            if kind == "submit":
                self.forms[-1]["buttons"].append((a["name"], a.get("value", "")))
            else:
                self.forms[-1]["inputs"][a["name"]] = a.get("value") or ""
                self.forms[-1]["types"][a["name"]] = kind


class LoginFailed(Exception):
    pass


def fail(msg):
    raise LoginFailed(msg)


def main():
    p = argparse.ArgumentParser()
    for arg in ("base", "client", "secret", "redirect-uri", "username", "password", "code-verifier"):
        p.add_argument("--" + arg, required=True)
    p.add_argument("--until", help="log in repeatedly until this file exists")
    a = p.parse_args()
    if not a.until:
        try:
            print(login(a))
        except (LoginFailed, OSError, ValueError, KeyError) as e:
            print(e)
            sys.exit(1)
        return
    done = failed = 0
    while not os.path.exists(a.until):
        COOKIES.clear()
        try:
            login(a)
        except (LoginFailed, OSError, ValueError, KeyError) as e:
            failed += 1
            print(f"login {done + 1} failed: {e!r}")
        done += 1
    print(f"{done} logins, {failed} failed")
    sys.exit(1 if failed or not done else 0)


def login(a):
    """One full login; returns a summary line or raises LoginFailed."""
    basic = "Basic " + base64.b64encode(
        f"{urllib.parse.quote(a.client, safe='')}:{urllib.parse.quote(a.secret, safe='')}".encode()).decode()
    challenge = base64.urlsafe_b64encode(
        __import__("hashlib").sha256(a.code_verifier.encode()).digest()).rstrip(b"=").decode()
    meta_status, _, meta = request("GET", a.base + "/.well-known/openid-configuration")
    if meta_status != 200:
        fail(f"discovery: {meta_status}")
    meta = json.loads(meta)
    issuer = meta["issuer"]

    # 1. Push.
    state = "ci-state-123"
    st, _, body = request("POST", meta["pushed_authorization_request_endpoint"], {
        "client_id": a.client, "response_type": "code", "scope": "openid email profile",
        "redirect_uri": a.redirect_uri, "code_challenge": challenge,
        "code_challenge_method": "S256", "state": state, "nonce": "ci-nonce-456",
    }, {"Authorization": basic})
    if st != 201:
        fail(f"PAR: {st} {body[:200]}")
    request_uri = json.loads(body)["request_uri"]

    # 2. Authorize, then forms until the redirect to the client.
    url = meta["authorization_endpoint"] + "?" + urllib.parse.urlencode(
        {"client_id": a.client, "request_uri": request_uri})
    method, data, callback = "GET", None, None
    for _ in range(10):
        st, headers, body = request(method, url, data)
        if st in (301, 302, 303, 307):
            location = urllib.parse.urljoin(url, headers["Location"])
            if location.startswith(a.redirect_uri):
                callback = location
                break
            url, method, data = location, "GET", None
            continue
        if st != 200:
            fail(f"{method} {url}: {st} {body[:300]}")
        parser = Forms()
        parser.feed(body)
        forms = [f for f in parser.forms if f["method"] == "post"]
        if not forms:
            fail(f"{url}: no POST form in the page: {body[:300]}")
        login = [f for f in forms if "password" in f["types"].values()]
        form = login[0] if login else forms[0]
        data = dict(form["inputs"])
        if login:
            user_field = next((n for n, t in form["types"].items() if n == "username"), "username")
            pw_field = next(n for n, t in form["types"].items() if t == "password")
            data[user_field], data[pw_field] = a.username, a.password
        if form["buttons"]:
            # Consent pages: take an approving button if one is recognisable.
            buttons = form["buttons"]
            approve = [b for b in buttons if any(w in (b[0] + b[1]).lower() for w in ("allow", "approve", "accept", "yes", "consent"))]
            name, value = (approve or buttons)[0]
            data[name] = value
        url, method = urllib.parse.urljoin(url, form["action"] or url), "POST"
    if not callback:
        fail("no redirect to the client after 10 steps")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)
    if "error" in q:
        fail(f"authorization error: {q}")
    if q.get("iss") != [issuer] or q.get("state") != [state] or not q.get("code"):
        fail(f"callback {callback}: want code, iss={issuer}, state={state}")
    code = q["code"][0]

    # 3. Token.
    token_form = {"grant_type": "authorization_code", "code": code,
                  "redirect_uri": a.redirect_uri, "code_verifier": a.code_verifier}
    st, headers, body = request("POST", meta["token_endpoint"], token_form, {"Authorization": basic})
    if st != 200:
        fail(f"token: {st} {body[:300]}")
    tokens = json.loads(body)
    if "no-store" not in (headers.get("Cache-Control") or ""):
        fail("token response without Cache-Control: no-store")
    payload = tokens["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if claims.get("iss") != issuer or claims.get("aud") not in (a.client, [a.client]):
        fail(f"id_token claims {claims}")

    # 4. Userinfo.
    st, _, body = request("GET", meta["userinfo_endpoint"], None,
                          {"Authorization": "Bearer " + tokens["access_token"]})
    if st != 200 or json.loads(body).get("sub") != claims.get("sub"):
        fail(f"userinfo: {st} {body[:200]}")

    # 5. The code is single use, whichever replica answers.
    st, _, body = request("POST", meta["token_endpoint"], token_form, {"Authorization": basic})
    if st != 400 or json.loads(body).get("error") != "invalid_grant":
        fail(f"code replay: {st} {body[:200]}")
    return f"logged in as {a.username} (sub {claims.get('sub')}); code replay refused"


if __name__ == "__main__":
    main()
