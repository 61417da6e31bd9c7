//! Errors as HTTP. [`JsonError`] for the back-channel endpoints (PAR, token, userinfo) in the
//! RFC 6749 §5.2 format; [`BrowserError`] for the front channel, which redirects to the
//! client only once `client_id` and `redirect_uri` are proven (RFC 6749 §4.1.2.1, RFC 9700
//! §4.11) and otherwise shows a local error page. Both come from [`OAuthError`] and
//! [`StoreError`] by `?`; server-side causes are logged here and never shown to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use url::Url;

use crate::oauth::authorization::{RedirectTarget, Rejection};
use crate::oauth::{ErrorKind, OAuthError, response};
use crate::store::StoreError;

use super::limits::{Refusal, TooMany};

/// The response header that carries a server nonce (RFC 9449 §8.1).
pub(crate) const DPOP_NONCE: &str = "DPoP-Nonce";

/// Maps a store failure to the client-facing error, logging the cause.
fn store_error(e: StoreError) -> OAuthError {
    match e {
        StoreError::Unavailable(cause) => {
            tracing::warn!(%cause, "store unavailable");
            OAuthError::temporarily_unavailable("the service is temporarily unavailable; retry later")
        }
        StoreError::Backend(cause) => {
            tracing::error!(%cause, "store error");
            OAuthError::internal()
        }
        StoreError::TooLarge(size, cap) => {
            tracing::info!(size, cap, "authorization request too large to store");
            OAuthError::invalid_request(format!(
                "the authorization request is too large ({size} bytes stored; at most {cap})"
            ))
        }
    }
}

#[derive(Debug)]
pub(crate) struct JsonError {
    pub error: OAuthError,
    status: StatusCode,
    /// `Allow` header value for a 405.
    allow: Option<&'static str>,
    /// `DPoP-Nonce` to send: the nonce a `use_dpop_nonce` error asks for (RFC 9449 §8, §9).
    dpop_nonce: Option<String>,
    /// At a resource endpoint that accepts DPoP: the `algs` of the `DPoP` challenge
    /// (RFC 9449 §7.1) that token and proof errors carry there.
    dpop_algs: Option<String>,
    /// A rate limit's refusal: `Retry-After` and the `RateLimit-*` fields.
    too_many: Option<TooMany>,
}

impl JsonError {
    /// The same OAuth error with a different HTTP status (405, 413, 415 …).
    pub(crate) fn with_status(error: OAuthError, status: StatusCode) -> Self {
        Self {
            error,
            status,
            allow: None,
            dpop_nonce: None,
            dpop_algs: None,
            too_many: None,
        }
    }

    /// Adds the `DPoP-Nonce` header.
    pub(crate) fn with_dpop_nonce(mut self, nonce: Option<String>) -> Self {
        self.dpop_nonce = nonce;
        self
    }

    /// As a resource endpoint answers (RFC 9449 §7.1, §9): DPoP errors are 401, and token
    /// and proof errors carry a `DPoP` challenge naming the accepted `algs`.
    pub(crate) fn at_dpop_resource(mut self, algs: &str) -> Self {
        if matches!(
            self.error.kind,
            ErrorKind::InvalidDpopProof | ErrorKind::UseDpopNonce
        ) {
            self.status = StatusCode::UNAUTHORIZED;
        }
        self.dpop_algs = Some(algs.to_owned());
        self
    }

    /// 405 with `Allow` (RFC 9110 §15.5.6).
    pub(crate) fn method_not_allowed(allow: &'static str) -> Self {
        let error = OAuthError::invalid_request(format!("method not allowed; use {allow}"));
        Self {
            error,
            status: StatusCode::METHOD_NOT_ALLOWED,
            allow: Some(allow),
            dpop_nonce: None,
            dpop_algs: None,
            too_many: None,
        }
    }
}

impl From<OAuthError> for JsonError {
    fn from(error: OAuthError) -> Self {
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self::with_status(error, status)
    }
}

impl From<Refusal> for JsonError {
    /// `429` with `Retry-After` (RFC 6585 §4) and the `RateLimit-*` fields of the IETF
    /// httpapi draft; the OAuth error code is `temporarily_unavailable` (RFC 6749 §5.2 has no
    /// code of its own for this).
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Store(e) => e.into(),
            Refusal::TooMany(t) => {
                let mut e = Self::with_status(
                    OAuthError::temporarily_unavailable(format!(
                        "too many requests; retry after {} s",
                        t.retry_after_secs()
                    )),
                    StatusCode::TOO_MANY_REQUESTS,
                );
                e.too_many = Some(t);
                e
            }
        }
    }
}

impl From<StoreError> for JsonError {
    fn from(e: StoreError) -> Self {
        store_error(e).into()
    }
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for JsonError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(allow) = self.allow {
            res.insert_header((header::ALLOW, allow));
        }
        if let Some(v) = self
            .dpop_nonce
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            res.insert_header((DPOP_NONCE, v));
        }
        match self.error.kind {
            // RFC 9449 §7.1, §9: at a resource, the DPoP scheme's challenge.
            ErrorKind::InvalidToken
            | ErrorKind::InsufficientScope
            | ErrorKind::InvalidDpopProof
            | ErrorKind::UseDpopNonce
                if self.dpop_algs.is_some() =>
            {
                let algs = self.dpop_algs.as_deref().unwrap_or_default();
                let challenge = format!("DPoP error=\"{}\", algs=\"{algs}\"", self.error.code());
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    res.insert_header((header::WWW_AUTHENTICATE, v));
                }
            }
            // RFC 6749 §5.2: 401 invalid_client with a challenge for the header scheme; Basic
            // is the only Authorization scheme client authentication accepts here.
            ErrorKind::InvalidClient => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"par-server\""),
                ));
            }
            // RFC 6750 §3.
            ErrorKind::InvalidToken | ErrorKind::InsufficientScope => {
                let challenge = format!("Bearer error=\"{}\"", self.error.code());
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    res.insert_header((header::WWW_AUTHENTICATE, v));
                }
            }
            ErrorKind::TemporarilyUnavailable => match self.too_many {
                Some(t) => {
                    let secs = t.retry_after_secs().to_string();
                    res.insert_header((header::RETRY_AFTER, secs.as_str()))
                        .insert_header(("RateLimit-Limit", t.limit.to_string()))
                        .insert_header(("RateLimit-Remaining", "0"))
                        .insert_header(("RateLimit-Reset", secs));
                }
                None => {
                    res.insert_header((header::RETRY_AFTER, "1"));
                }
            },
            _ => {}
        }
        res.json(serde_json::json!({
            "error": self.error.code(),
            "error_description": self.error.description,
        }))
    }
}

/// An authorization error on the front channel.
#[derive(Debug)]
pub(crate) enum BrowserError {
    /// Redirect to the proven redirect URI (already built, with `state` and `iss`).
    Redirect(Url),
    /// A local error page.
    Page(OAuthError),
    /// A rate limit's refusal: a page saying how long to wait, `429` + `Retry-After`.
    TooMany(TooMany),
    /// A form that could not be read, with its own status (`413` too large, `400`).
    Form(OAuthError, StatusCode),
}

impl BrowserError {
    /// The opaque internal-error page.
    pub fn internal() -> Self {
        BrowserError::Page(OAuthError::internal())
    }

    /// Redirects to `target` when it is proven, otherwise a local page.
    pub(crate) fn to_client(error: OAuthError, target: Option<&RedirectTarget>, issuer: &str) -> Self {
        match target {
            Some(t) => BrowserError::Redirect(response::error(t, &error, issuer)),
            None => BrowserError::Page(error),
        }
    }

    /// A refused authorization request, redirected when its `redirect_uri` was proven.
    pub(crate) fn rejected(rejection: Rejection, issuer: &str) -> Self {
        Self::to_client(rejection.error, rejection.redirect.as_deref(), issuer)
    }
}

impl From<OAuthError> for BrowserError {
    fn from(error: OAuthError) -> Self {
        BrowserError::Page(error)
    }
}

impl From<JsonError> for BrowserError {
    /// A form body refused by `form::read`: the page keeps the status (413 for a body over
    /// `http.body_limit`).
    fn from(e: JsonError) -> Self {
        BrowserError::Form(e.error, e.status)
    }
}

impl From<Refusal> for BrowserError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Store(e) => e.into(),
            Refusal::TooMany(t) => BrowserError::TooMany(t),
        }
    }
}

impl From<StoreError> for BrowserError {
    fn from(e: StoreError) -> Self {
        BrowserError::Page(store_error(e))
    }
}

impl std::fmt::Display for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrowserError::Redirect(_) => f.write_str("authorization error (redirected)"),
            BrowserError::Page(error) => error.fmt(f),
            BrowserError::TooMany(_) => f.write_str("rate limit reached"),
            BrowserError::Form(error, _) => error.fmt(f),
        }
    }
}

impl ResponseError for BrowserError {
    fn status_code(&self) -> StatusCode {
        match self {
            BrowserError::Redirect(_) => StatusCode::SEE_OTHER,
            BrowserError::Page(error) => crate::browser::page_status(error),
            BrowserError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            BrowserError::Form(_, status) => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            BrowserError::Redirect(location) => crate::browser::see_other(location),
            BrowserError::Page(error) => crate::browser::error_page(error),
            BrowserError::Form(error, status) => {
                let mut res = crate::browser::error_page(error);
                *res.status_mut() = *status;
                res
            }
            BrowserError::TooMany(t) => crate::browser::too_many_page(
                &format!(
                    "Too many requests came from your network. Wait {} seconds, then try again.",
                    t.retry_after_secs()
                ),
                t.retry_after_secs(),
            ),
        }
    }
}
