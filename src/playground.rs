//! `/playground`: a small demo client built into the server (on in the zero-config demo, off
//! unless configured). It behaves as a real confidential client over HTTP against its own
//! replica: push (HTTP Basic, PKCE S256, state, nonce) → browser to `/authorize` → callback →
//! check `state` (bound to a cookie) and `iss` (RFC 9207) → redeem the code → userinfo, then
//! shows what it received. With the DPoP box ticked it proves a throwaway ES256 key at PAR,
//! token and userinfo (RFC 9449, answering a `use_dpop_nonce` once), so the access token
//! shows its `cnf` claim.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::Value;

use crate::browser;
use crate::crypto::{random_token, sha256_b64};
use crate::oauth::dpop_client::ProofKey;
use crate::state::{AppState, Playground};
use crate::store::PlaygroundLogin;

#[derive(Template)]
#[template(path = "playground.html")]
struct PlaygroundPage<'a> {
    assets: &'a str,
    start: &'a str,
    client_id: &'a str,
    error: Option<String>,
    result: Option<Outcome>,
}

struct Outcome {
    subject: String,
    token_type: String,
    request_uri: String,
    id_token: String,
    access_token: String,
    userinfo: String,
}

const COOKIE: &str = "par-pg";

fn render(state: &AppState, pg: &Playground, error: Option<String>, result: Option<Outcome>) -> HttpResponse {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let assets = format!("{}/assets", state.base_path);
    let page = PlaygroundPage {
        assets: &assets,
        start: "/playground/start",
        client_id: &pg.client_id,
        error,
        result,
    };
    browser::render(status, &page)
}

pub(crate) async fn index(state: web::Data<AppState>) -> HttpResponse {
    match &state.playground {
        Some(pg) => render(&state, pg, None, None),
        None => HttpResponse::NotFound().finish(),
    }
}

fn http() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(5)).finish()
}

/// RFC 6749 §2.3.1: form-urlencode both parts before Basic encoding.
fn basic(pg: &Playground) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            enc(&pg.client_id),
            enc(pg.client_secret.expose())
        ))
    )
}

pub(crate) async fn start(body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let Some(pg) = &state.playground else {
        return HttpResponse::NotFound().finish();
    };
    let with_dpop = form_urlencoded::parse(&body).any(|(k, v)| k == "dpop" && v == "1");
    let dpop = match with_dpop.then(ProofKey::generate).transpose() {
        Ok(key) => key,
        Err(e) => return render(&state, pg, Some(e), None),
    };
    let oauth_state = random_token(16);
    let verifier = pkce_verifier(pg, &oauth_state);
    let form = [
        ("client_id", pg.client_id.as_str()),
        ("response_type", "code"),
        ("scope", "openid email profile"),
        ("redirect_uri", pg.redirect_uri.as_str()),
        ("state", oauth_state.as_str()),
        ("nonce", &random_token(16)),
        ("code_challenge", &sha256_b64(verifier.as_bytes())),
        ("code_challenge_method", "S256"),
    ];
    let pushed = send_proven(dpop.as_ref(), &state.endpoints.par, None, |proof| {
        let mut req = http()
            .post(format!("{}/par", pg.local_base))
            .insert_header(("Authorization", basic(pg)));
        if let Some(p) = proof {
            req = req.insert_header(("DPoP", p));
        }
        req.send_form(&form)
    })
    .await;
    let body: Value = match pushed {
        Ok(mut res) if res.status() == StatusCode::CREATED => res.json().await.unwrap_or(Value::Null),
        Ok(mut res) => {
            let body = res
                .body()
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            return render(
                &state,
                pg,
                Some(format!("the push failed: {} {body}", res.status())),
                None,
            );
        }
        Err(e) => return render(&state, pg, Some(format!("the push failed: {e}")), None),
    };
    let Some(request_uri) = body["request_uri"].as_str() else {
        return render(&state, pg, Some("the push returned no request_uri".into()), None);
    };
    let pending = PlaygroundLogin {
        started: crate::clock::now(),
        dpop_key: dpop.map(|k| k.pkcs8().to_owned()),
    };
    if let Err(e) = state
        .store
        .put_playground_login(&oauth_state, &pending, state.par.interaction_lifetime)
        .await
    {
        return render(&state, pg, Some(format!("the store failed: {e}")), None);
    }
    let authorize = match url::Url::parse_with_params(
        &state.endpoints.authorize,
        [("client_id", pg.client_id.as_str()), ("request_uri", request_uri)],
    ) {
        Ok(url) => url,
        Err(e) => return render(&state, pg, Some(format!("bad authorization URL: {e}")), None),
    };
    let mut res = browser::see_other(&authorize);
    // The browser keeps its state and the request_uri (already in its address bar) for the
    // callback; the store keeps neither in clear.
    let cookie = browser::cookie(
        state.secure_cookies,
        COOKIE,
        format!("{oauth_state}.{request_uri}"),
        Some(state.par.interaction_lifetime),
    );
    let _ = res.add_cookie(&cookie);
    res
}

#[derive(Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub(crate) async fn callback(
    req: HttpRequest,
    query: web::Query<Callback>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(pg) = &state.playground else {
        return HttpResponse::NotFound().finish();
    };
    let q = query.into_inner();
    // RFC 9207 §2.4: compare iss before anything else, errors included.
    if q.iss.as_deref() != Some(state.endpoints.issuer.as_str()) {
        return render(
            &state,
            pg,
            Some("the response's iss is not this server's issuer".into()),
            None,
        );
    }
    if let Some(error) = q.error {
        return render(
            &state,
            pg,
            Some(format!("{error}: {}", q.error_description.unwrap_or_default())),
            None,
        );
    }
    let cookie = req
        .cookie(COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let (bound, request_uri) = match cookie.split_once('.') {
        Some((s, uri)) => (Some(s.to_owned()), uri.to_owned()),
        None => (None, String::new()),
    };
    let (Some(code), Some(returned_state)) = (q.code, q.state) else {
        return render(&state, pg, Some("the callback has no code or state".into()), None);
    };
    if bound.as_deref() != Some(returned_state.as_str()) {
        return render(
            &state,
            pg,
            Some("state does not match this browser's login".into()),
            None,
        );
    }
    let pending = state
        .store
        .take_playground_login(&returned_state)
        .await
        .ok()
        .flatten();
    let Some(pending) = pending else {
        return render(
            &state,
            pg,
            Some("this login was already completed or has expired".into()),
            None,
        );
    };
    let dpop = match pending.dpop_key.as_deref().map(ProofKey::from_pkcs8).transpose() {
        Ok(key) => key,
        Err(e) => return render(&state, pg, Some(e), None),
    };
    let verifier = pkce_verifier(pg, &returned_state);
    match redeem(&state, pg, &code, &verifier, dpop.as_ref()).await {
        Ok((tokens, userinfo)) => {
            let claims = |field: &str| tokens[field].as_str().map(jwt_claims).unwrap_or_default();
            let id_token = claims("id_token");
            let subject = serde_json::from_str::<Value>(&id_token)
                .ok()
                .and_then(|v| v["sub"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let outcome = Outcome {
                subject,
                token_type: tokens["token_type"].as_str().unwrap_or_default().to_owned(),
                request_uri,
                id_token,
                access_token: claims("access_token"),
                userinfo: serde_json::to_string_pretty(&userinfo).unwrap_or_default(),
            };
            let mut res = render(&state, pg, None, Some(outcome));
            let _ = res.add_removal_cookie(&browser::removal(state.secure_cookies, COOKIE));
            res
        }
        Err(e) => render(&state, pg, Some(e), None),
    }
}

async fn redeem(
    state: &AppState,
    pg: &Playground,
    code: &str,
    verifier: &str,
    dpop: Option<&ProofKey>,
) -> Result<(Value, Value), String> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", pg.redirect_uri.as_str()),
        ("code_verifier", verifier),
    ];
    let mut res = send_proven(dpop, &state.endpoints.token, None, |proof| {
        let mut req = http()
            .post(format!("{}/token", pg.local_base))
            .insert_header(("Authorization", basic(pg)));
        if let Some(p) = proof {
            req = req.insert_header(("DPoP", p));
        }
        req.send_form(&form)
    })
    .await
    .map_err(|e| format!("the token request failed: {e}"))?;
    let tokens: Value = res
        .json()
        .await
        .map_err(|e| format!("unreadable token response: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("the token request failed: {tokens}"));
    }
    let access_token = tokens["access_token"].as_str().unwrap_or_default();
    let scheme = if dpop.is_some() { "DPoP" } else { "Bearer" };
    let mut info = send_proven(dpop, &state.endpoints.userinfo, Some(access_token), |proof| {
        let mut req = http()
            .get(format!("{}/userinfo", pg.local_base))
            .insert_header(("Authorization", format!("{scheme} {access_token}")));
        if let Some(p) = proof {
            req = req.insert_header(("DPoP", p));
        }
        req.send()
    })
    .await
    .map_err(|e| format!("the userinfo request failed: {e}"))?;
    let userinfo: Value = info
        .json()
        .await
        .map_err(|e| format!("unreadable userinfo response: {e}"))?;
    Ok((tokens, userinfo))
}

/// Sends a request built by `send` with a proof when there is a key; on `use_dpop_nonce`
/// (RFC 9449 §8, §9) sends it once more with the server's nonce.
async fn send_proven<F, Fut>(
    dpop: Option<&ProofKey>,
    htu: &str,
    access_token: Option<&str>,
    send: F,
) -> Result<awc::ClientResponse, awc::error::SendRequestError>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<awc::ClientResponse, awc::error::SendRequestError>>,
{
    let Some(key) = dpop else {
        return send(None).await;
    };
    let htm = if access_token.is_some() { "GET" } else { "POST" };
    let res = send(Some(key.proof(htm, htu, access_token, None))).await?;
    let nonce = res
        .headers()
        .get("DPoP-Nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match nonce {
        Some(nonce) if matches!(res.status().as_u16(), 400 | 401) => {
            send(Some(key.proof(htm, htu, access_token, Some(&nonce)))).await
        }
        _ => Ok(res),
    }
}

/// The claims of a JWT, pretty-printed. The token endpoint's response came over a direct
/// back-channel call, so the playground shows them without re-verifying the signature.
/// The PKCE verifier of the login with this `state` (RFC 7636 §4.1: 43 characters of
/// base64url): derived with the playground's client secret, so nobody who reads the store —
/// or sees `state` — can redeem the code.
fn pkce_verifier(pg: &Playground, oauth_state: &str) -> String {
    crate::crypto::sha256_parts_b64(&[
        b"par-server playground PKCE verifier",
        pg.client_secret.expose().as_bytes(),
        oauth_state.as_bytes(),
    ])
}

fn jwt_claims(jwt: &str) -> String {
    jwt.split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_default()
}
