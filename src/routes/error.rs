//! Errors as HTTP: [`JsonError`] for back-channel endpoints (PAR, token, userinfo) in the
//! RFC 6749 §5.2 format. Server-side causes are logged here and never shown to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::oauth::{ErrorKind, OAuthError};
use crate::store::StoreError;

#[derive(Debug)]
pub struct JsonError {
    pub error: OAuthError,
    status: StatusCode,
    /// `Allow` header value for a 405.
    allow: Option<&'static str>,
}

impl JsonError {
    /// The same OAuth error with a different HTTP status (405, 413, 415 …).
    pub fn with_status(error: OAuthError, status: StatusCode) -> Self {
        Self {
            error,
            status,
            allow: None,
        }
    }

    /// 405 with `Allow` (RFC 9110 §15.5.6).
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let error = OAuthError::invalid_request(format!("method not allowed; use {allow}"));
        Self {
            error,
            status: StatusCode::METHOD_NOT_ALLOWED,
            allow: Some(allow),
        }
    }
}

impl From<OAuthError> for JsonError {
    fn from(error: OAuthError) -> Self {
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self {
            error,
            status,
            allow: None,
        }
    }
}

impl From<StoreError> for JsonError {
    fn from(e: StoreError) -> Self {
        store_error(e).into()
    }
}

/// Maps a store failure to the client-facing error, logging the cause.
pub fn store_error(e: StoreError) -> OAuthError {
    match e {
        StoreError::Unavailable(cause) => {
            tracing::warn!(%cause, "store unavailable");
            OAuthError::temporarily_unavailable("the service is temporarily unavailable; retry later")
        }
        StoreError::Backend(cause) => {
            tracing::error!(%cause, "store error");
            OAuthError::internal()
        }
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
        match self.error.kind {
            // RFC 6749 §5.2: 401 invalid_client carries a challenge for the scheme used.
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
            ErrorKind::TemporarilyUnavailable => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        res.json(serde_json::json!({
            "error": self.error.code(),
            "error_description": self.error.description,
        }))
    }
}
