//! DPoP at the endpoints (RFC 9449) as PAR, token and userinfo do it: read the one `DPoP`
//! header, verify the proof against the endpoint's public URL ([`crate::oauth::dpop`]),
//! demand the server nonce where the client must use one (§8, §9; checked without Redis,
//! [`crate::oauth::dpop_nonce`]) — [`check`] — and refuse a replayed `jti` on every replica
//! (`SET NX` in the store, §11.1) — [`spend`], which an endpoint sends together with its
//! other Redis work where a refused proof cannot cost the client anything. Failures and nonce
//! challenges are counted by endpoint and reason; the proof itself is never logged.

use actix_web::HttpRequest;

use super::errors::JsonError;
use crate::oauth::OAuthError;
use crate::oauth::dpop::{self, Expected, Proof};
use crate::state::AppState;
use crate::telemetry::metrics;

/// The request header that carries a proof (RFC 9449 §4.1).
const DPOP: &str = "DPoP";

/// Where a proof is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Par,
    Token,
    Userinfo,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Endpoint::Par => "par",
            Endpoint::Token => "token",
            Endpoint::Userinfo => "userinfo",
        }
    }

    /// The public URL a proof's `htu` must name: from the issuer, never from the request's
    /// `Host` (behind the load balancer they differ).
    fn url(self, state: &AppState) -> &str {
        match self {
            Endpoint::Par => &state.endpoints.par,
            Endpoint::Token => &state.endpoints.token,
            Endpoint::Userinfo => &state.endpoints.userinfo,
        }
    }
}

/// The request's proof, verified (but its `jti` not yet spent: [`spend`]), or `None` when
/// it has no `DPoP` header.
/// `require_nonce`: the client must use a server nonce. `access_token`: at a resource, the
/// token the proof must be bound to (`ath`). Errors are the authorization server's
/// (400); a resource endpoint maps them with [`JsonError::at_dpop_resource`].
pub(crate) async fn check(
    req: &HttpRequest,
    state: &AppState,
    endpoint: Endpoint,
    require_nonce: bool,
    access_token: Option<&str>,
) -> Result<Option<Proof>, JsonError> {
    let mut headers = req.headers().get_all(DPOP);
    let Some(value) = headers.next() else {
        return Ok(None);
    };
    // §4.3 check 1: exactly one DPoP header.
    let proof = if headers.next().is_some() {
        Err(())
    } else {
        value.to_str().map_err(|_| ())
    };
    verify_presented(req, state, endpoint, require_nonce, access_token, proof)
        .await
        .map(Some)
}

#[tracing::instrument(name = "dpop.check", skip_all, fields(endpoint = endpoint.label(), outcome = tracing::field::Empty))]
async fn verify_presented(
    req: &HttpRequest,
    state: &AppState,
    endpoint: Endpoint,
    require_nonce: bool,
    access_token: Option<&str>,
    proof: Result<&str, ()>,
) -> Result<Proof, JsonError> {
    let span = tracing::Span::current();
    let fail = |reason: &'static str, error: OAuthError| {
        metrics::dpop_failure(endpoint.label(), reason);
        span.record("outcome", reason);
        tracing::info!(reason, "DPoP proof refused");
        JsonError::from(error)
    };
    let proof = proof.map_err(|()| {
        fail(
            "malformed",
            OAuthError::invalid_dpop_proof("exactly one DPoP header with a JWT is required"),
        )
    })?;
    let expected = Expected {
        method: req.method().as_str(),
        url: endpoint.url(state),
        access_token,
        now: crate::clock::now(),
    };
    let proof = dpop::verify(proof, &expected, &state.dpop.policy)
        .map_err(|refused| fail(refused.reason.label(), refused.error))?;
    // §8/§9: a nonce this deployment issued, recently. Checked before the jti is recorded,
    // so the client's retry with the nonce may be a new proof as usual.
    if require_nonce && !nonce_accepted(state, proof.nonce.as_deref(), expected.now) {
        metrics::dpop_nonce_challenge(endpoint.label());
        span.record("outcome", "nonce_challenge");
        return Err(JsonError::from(OAuthError::use_dpop_nonce(
            "resend the request with a proof that carries the nonce in DPoP-Nonce",
        ))
        .with_dpop_nonce(fresh_nonce(state, true)));
    }
    span.record("outcome", "ok");
    Ok(proof)
}

/// §11.1: one use of a proof, across all replicas (`SET NX EX` of its key and `jti`).
pub(crate) async fn spend(
    state: &AppState,
    endpoint: Endpoint,
    proof: Option<&Proof>,
) -> Result<(), JsonError> {
    let Some(proof) = proof else {
        return Ok(());
    };
    let lifetime = std::time::Duration::from_secs(state.dpop.policy.jti_lifetime());
    if state
        .store
        .first_use_of_dpop_proof(&proof.jkt, &proof.jti, lifetime)
        .await?
    {
        return Ok(());
    }
    metrics::dpop_failure(endpoint.label(), "replay");
    tracing::info!(reason = "replay", "DPoP proof refused");
    Err(OAuthError::invalid_dpop_proof("the DPoP proof was already used (jti replay)").into())
}

fn nonce_accepted(state: &AppState, nonce: Option<&str>, now: u64) -> bool {
    match (&state.dpop.nonces, nonce) {
        (Some(keys), Some(nonce)) => keys.accepts(nonce, now),
        _ => false,
    }
}

/// A fresh nonce for the `DPoP-Nonce` header of a response to a client that must use
/// nonces (RFC 9449 §8.2: the server may send a new one with any response).
pub(crate) fn fresh_nonce(state: &AppState, require_nonce: bool) -> Option<String> {
    if !require_nonce {
        return None;
    }
    state
        .dpop
        .nonces
        .as_ref()
        .map(|keys| keys.issue(crate::clock::now()))
}

/// Counts a proof refused by a rule outside the proof itself (a key that does not match
/// the code's or the token's binding, a proof missing where one is required).
pub(crate) fn refused(endpoint: Endpoint, reason: &'static str) {
    metrics::dpop_failure(endpoint.label(), reason);
}
