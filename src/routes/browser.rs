//! What the front-channel endpoints share: the browser-binding and SSO cookies, HTML pages
//! with their security headers, and [`BrowserError`] — an authorization error that redirects
//! to the client only when `client_id` and `redirect_uri` are proven (RFC 6749 §4.1.2.1,
//! RFC 9700 §4.11) and is otherwise shown as a local error page.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError};
use askama::Template;

use crate::crypto::{random_token, sha256_parts_b64};
use crate::oauth::authorization::RedirectTarget;
use crate::oauth::{ErrorKind, OAuthError, response};
use crate::state::AppState;

/// RFC 9700 §4.16 (clickjacking) and no caching of pages that carry CSRF tokens. No
/// `form-action` directive: browsers apply it to the redirect after the login POST, which
/// goes to the client's origin.
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn page(status: StatusCode, html: String) -> HttpResponse {
    let mut res = HttpResponseBuilder::new(status);
    secure_headers(&mut res);
    res.content_type("text/html; charset=utf-8").body(html)
}

pub fn secure_headers(res: &mut HttpResponseBuilder) {
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
}

/// `303 See Other` (FAPI 2.0 §5.3.2.2: never 307 for responses that follow a POST).
pub fn see_other(location: &str) -> HttpResponse {
    let mut res = HttpResponse::SeeOther();
    secure_headers(&mut res);
    res.insert_header((header::LOCATION, location)).finish()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    assets: &'a str,
    code: &'a str,
    description: &'a str,
}

/// An authorization error on the front channel.
#[derive(Debug)]
pub enum BrowserError {
    /// Redirect to the proven redirect URI (already built, with `state` and `iss`).
    Redirect(String),
    /// A local error page.
    Page { error: OAuthError, assets: String },
}

impl BrowserError {
    pub fn page(state: &AppState, error: OAuthError) -> Self {
        BrowserError::Page {
            error,
            assets: state.assets.clone(),
        }
    }

    /// The opaque internal-error page.
    pub fn internal(state: &AppState) -> Self {
        Self::page(state, OAuthError::internal())
    }

    /// Redirects when `target` is proven, otherwise a page.
    pub fn to_client(state: &AppState, error: OAuthError, target: Option<&RedirectTarget>) -> Self {
        match target {
            Some(t) => BrowserError::Redirect(response::error(t, &error, &state.endpoints.issuer)),
            None => Self::page(state, error),
        }
    }
}

impl std::fmt::Display for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrowserError::Redirect(_) => f.write_str("authorization error (redirected)"),
            BrowserError::Page { error, .. } => error.fmt(f),
        }
    }
}

impl ResponseError for BrowserError {
    fn status_code(&self) -> StatusCode {
        match self {
            BrowserError::Redirect(_) => StatusCode::SEE_OTHER,
            BrowserError::Page { error, .. } => match error.kind {
                ErrorKind::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            BrowserError::Redirect(location) => see_other(location),
            BrowserError::Page { error, assets } => {
                let html = ErrorPage {
                    assets,
                    code: error.code(),
                    description: &error.description,
                }
                .render()
                .unwrap_or_else(|_| "error".into());
                let mut res = page(self.status_code(), html);
                if error.kind == ErrorKind::TemporarilyUnavailable {
                    res.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                }
                res
            }
        }
    }
}

/// Cookie names. With `Secure` cookies the `__Host-` prefix pins them to this origin.
pub struct CookieNames {
    pub browser: &'static str,
    pub sso: &'static str,
}

pub fn cookie_names(secure: bool) -> CookieNames {
    if secure {
        CookieNames {
            browser: "__Host-par-b",
            sso: "__Host-par-sso",
        }
    } else {
        CookieNames {
            browser: "par-b",
            sso: "par-sso",
        }
    }
}

/// A cookie as every par-server cookie is: `HttpOnly`, `SameSite=Lax` (sent on the
/// top-level navigation from the client to `/authorize`), `Path=/`, `Secure` except on
/// loopback http.
pub fn cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    max_age: Option<std::time::Duration>,
) -> Cookie<'static> {
    let mut c = Cookie::build(name, value)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(state.secure_cookies);
    if let Some(age) = max_age {
        c = c.max_age(CookieDuration::seconds(age.as_secs() as i64));
    }
    c.finish()
}

pub fn removal(state: &AppState, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(state, name, String::new(), None);
    c.make_removal();
    c
}

/// The browser's binding secret (cookie), if it has one with a sane shape.
pub fn browser_id(req: &HttpRequest, state: &AppState) -> Option<String> {
    read_token_cookie(req, cookie_names(state.secure_cookies).browser)
}

pub fn sso_cookie(req: &HttpRequest, state: &AppState) -> Option<String> {
    read_token_cookie(req, cookie_names(state.secure_cookies).sso)
}

fn read_token_cookie(req: &HttpRequest, name: &str) -> Option<String> {
    let value = req.cookie(name)?.value().to_owned();
    (value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(value)
}

pub fn new_browser_id() -> String {
    random_token(32)
}

/// What the store records as the owner of a claimed request: a hash of the browser's
/// secret, so the store never holds the cookie value.
pub fn owner_of(browser_id: &str) -> String {
    sha256_parts_b64(&[b"owner", browser_id.as_bytes()])
}

/// The CSRF token of one interaction: bound to the browser secret (an `HttpOnly` cookie a
/// cross-site attacker cannot read) and to the pushed request.
pub fn csrf_token(browser_id: &str, digest: &str) -> String {
    sha256_parts_b64(&[b"csrf", browser_id.as_bytes(), digest.as_bytes()])
}
