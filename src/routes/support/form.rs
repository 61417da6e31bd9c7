//! Reading an `application/x-www-form-urlencoded` body with the configured size limit and
//! deadline, into checked [`Params`] (no duplicates). Over the limit → 413; not all there
//! by the deadline → 408 (a stalled body holds a connection and its buffer: it is cut);
//! another content type → 400.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use super::errors::JsonError;
use crate::oauth::OAuthError;
use crate::oauth::params::Params;
use crate::state::BodyLimits;

pub(crate) async fn read(
    req: &HttpRequest,
    payload: web::Payload,
    limits: &BodyLimits,
) -> Result<Params, JsonError> {
    match tokio::time::timeout(limits.deadline, read_within(req, payload, limits.max)).await {
        Ok(read) => read,
        Err(_) => {
            tracing::info!(
                deadline_secs = limits.deadline.as_secs(),
                "request body not received in time"
            );
            Err(JsonError::with_status(
                OAuthError::invalid_request("the request body did not arrive in time"),
                StatusCode::REQUEST_TIMEOUT,
            ))
        }
    }
}

async fn read_within(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Params, JsonError> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(
            OAuthError::invalid_request("Content-Type must be application/x-www-form-urlencoded").into(),
        );
    }
    let too_large = || {
        JsonError::with_status(
            OAuthError::invalid_request("request body too large"),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // Grown as bytes arrive, not reserved for the declared length: a client that declares
    // 64 KiB and stalls must not hold 64 KiB (2,000 of them held 300 MB).
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit).min(4096));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| OAuthError::invalid_request("could not read the request body"))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Params::parse(&body)?)
}
