//! How a browser is recognised across the steps of a login: the `HttpOnly` binding cookie
//! (a 256-bit secret), the SSO session cookie, the hash of the binding that the store
//! records as a claim's owner, and the CSRF token derived from the binding and the request.

use actix_web::HttpRequest;
use actix_web::cookie::Cookie;

use crate::crypto::{random_token, sha256_parts_b64};

/// Cookie names. With `Secure` cookies the `__Host-` prefix pins them to this origin.
pub(crate) struct CookieNames {
    pub browser: &'static str,
    pub sso: &'static str,
}

pub(crate) fn cookie_names(secure: bool) -> CookieNames {
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

/// The browser's binding secret (cookie), if it has one with a sane shape.
pub(crate) fn browser_id(req: &HttpRequest, secure: bool) -> Option<String> {
    read_token_cookie(req, cookie_names(secure).browser)
}

/// A fresh binding secret and its cookie, for a browser that has none.
pub(crate) fn new_browser(secure: bool) -> (String, Cookie<'static>) {
    let id = random_token(32);
    let cookie = crate::browser::cookie(secure, cookie_names(secure).browser, id.clone(), None);
    (id, cookie)
}

/// The browser's SSO session cookie value, if any.
pub(crate) fn sso_cookie(req: &HttpRequest, secure: bool) -> Option<String> {
    read_token_cookie(req, cookie_names(secure).sso)
}

fn read_token_cookie(req: &HttpRequest, name: &str) -> Option<String> {
    let value = req.cookie(name)?.value().to_owned();
    (value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(value)
}

/// What the store records as the owner of a claimed request: a hash of the browser's
/// secret, so the store never holds the cookie value.
pub(crate) fn owner_of(browser_id: &str) -> String {
    sha256_parts_b64(&[b"owner", browser_id.as_bytes()])
}

/// The CSRF token of one interaction: bound to the browser secret (an `HttpOnly` cookie a
/// cross-site attacker cannot read) and to the pushed request (`digest` of its reference).
pub fn csrf_token(browser_id: &str, digest: &str) -> String {
    sha256_parts_b64(&[b"csrf", browser_id.as_bytes(), digest.as_bytes()])
}

/// Constant-time check of a submitted CSRF token.
pub(crate) fn csrf_matches(browser_id: &str, digest: &str, submitted: Option<&str>) -> bool {
    submitted.is_some_and(|s| {
        crate::crypto::constant_time_eq(s.as_bytes(), csrf_token(browser_id, digest).as_bytes())
    })
}
