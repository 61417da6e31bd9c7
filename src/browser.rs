//! What a browser receives from par-server: HTML pages (askama templates, auto-escaping)
//! with their security headers, `303` redirects, and cookies. The login pages, the error
//! page and the playground all go through here.
//!
//! The pages under the OAuth base path (`/oauth2/authorize`, `/login`, `/consent`) link the
//! stylesheet relatively (`assets/style.css`, served at `{base}/assets/style.css`), so
//! rendering one needs no per-deployment state.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder};
use askama::Template;
use url::Url;

use crate::oauth::authorization_details::Readable;
use crate::oauth::{ErrorKind, OAuthError};

/// RFC 9700 §4.16 (clickjacking) and no caching of pages that carry CSRF tokens. No
/// `form-action` directive: browsers apply it to the redirect after the login POST, which
/// goes to the client's origin.
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The stylesheet directory as seen from a page under the OAuth base path.
const ASSETS: &str = "assets";

/// An HTML page with the security headers.
pub fn page(status: StatusCode, html: String) -> HttpResponse {
    let mut res = HttpResponseBuilder::new(status);
    secure_headers(&mut res);
    res.content_type("text/html; charset=utf-8").body(html)
}

fn secure_headers(res: &mut HttpResponseBuilder) {
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
}

/// `303 See Other` (FAPI 2.0 §5.3.2.2: never 307 for responses that follow a POST).
pub(crate) fn see_other(location: &Url) -> HttpResponse {
    let mut res = HttpResponse::SeeOther();
    secure_headers(&mut res);
    res.insert_header((header::LOCATION, location.as_str())).finish()
}

/// Renders `template`; a template failure gives the internal-error page instead.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(html) => page(status, html),
        Err(e) => {
            tracing::error!(error = %e, "page template failed");
            error_page(&OAuthError::internal())
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    assets: &'a str,
    code: &'a str,
    description: &'a str,
}

/// The local error page for an authorization error that may not be redirected: 503 with
/// `Retry-After` for `temporarily_unavailable`, 500 for `server_error`, 400 otherwise.
pub(crate) fn error_page(error: &OAuthError) -> HttpResponse {
    let status = page_status(error);
    let html = ErrorPage {
        assets: ASSETS,
        code: error.code(),
        description: &error.description,
    }
    .render()
    .unwrap_or_else(|_| "internal error".into());
    let mut res = page(status, html);
    if error.kind == ErrorKind::TemporarilyUnavailable {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
}

/// `429 Too Many Requests` with `Retry-After: secs` (RFC 6585 §4) and the error page saying
/// `description` (what to do, in words).
pub(crate) fn too_many_page(description: &str, secs: u64) -> HttpResponse {
    let mut res = error_page(&OAuthError::temporarily_unavailable(description.to_owned()));
    *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

pub(crate) fn page_status(error: &OAuthError) -> StatusCode {
    match error.kind {
        ErrorKind::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// What the login and consent pages carry: who asks, for what, and the hidden fields that
/// bring the POST back to this request.
pub(crate) struct InteractionForm<'a> {
    pub action: String,
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub request_uri: &'a str,
    pub csrf_token: String,
    pub scopes: &'a [String],
}

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage<'a> {
    assets: &'a str,
    form: InteractionForm<'a>,
    error: Option<&'a str>,
    username: &'a str,
}

impl<'a> LoginPage<'a> {
    /// `error` re-shows the form after failed credentials, with the `username` typed.
    pub fn new(form: InteractionForm<'a>, error: Option<&'a str>, username: &'a str) -> Self {
        Self {
            assets: ASSETS,
            form,
            error,
            username: username.get(..username.len().min(256)).unwrap_or(""),
        }
    }
}

#[derive(Template)]
#[template(path = "consent.html")]
pub(crate) struct ConsentPage<'a> {
    assets: &'a str,
    form: InteractionForm<'a>,
    username: &'a str,
    /// RFC 9396 authorization details, for people to read.
    details: Vec<Readable>,
}

impl<'a> ConsentPage<'a> {
    pub fn new(form: InteractionForm<'a>, username: &'a str, details: Vec<Readable>) -> Self {
        Self {
            assets: ASSETS,
            form,
            username,
            details,
        }
    }
}

/// A cookie as every par-server cookie is: `HttpOnly`, `SameSite=Lax` (sent on the
/// top-level navigation from the client to `/authorize`), `Path=/`, `Secure` unless the
/// issuer is plain http on loopback.
pub fn cookie(
    secure: bool,
    name: &'static str,
    value: String,
    max_age: Option<std::time::Duration>,
) -> Cookie<'static> {
    let mut c = Cookie::build(name, value)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(secure);
    if let Some(age) = max_age {
        c = c.max_age(CookieDuration::seconds(age.as_secs() as i64));
    }
    c.finish()
}

/// The cookie that removes `name`.
pub(crate) fn removal(secure: bool, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(secure, name, String::new(), None);
    c.make_removal();
    c
}
