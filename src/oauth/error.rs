//! The one table of OAuth 2.0 / OIDC error codes (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1,
//! RFC 9126 §2.3, RFC 9101 §7, RFC 9449 §12.2, OIDC Core §3.1.2.6). Call sites add a description; they never
//! invent a code string.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    /// RFC 9396 §5: authorization details malformed, of an unknown type, or not allowed.
    InvalidAuthorizationDetails,
    /// RFC 8707 §2: the requested resource is invalid, unknown, or not for this client.
    InvalidTarget,
    AccessDenied,
    InvalidRequestUri,
    InvalidRequestObject,
    RequestNotSupported,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    InvalidToken,
    InsufficientScope,
    /// RFC 9449 §4.3, §7.1: a missing or invalid DPoP proof.
    InvalidDpopProof,
    /// RFC 9449 §8, §9: the proof must carry the server's nonce (sent in `DPoP-Nonce`).
    UseDpopNonce,
    ServerError,
    TemporarilyUnavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub kind: ErrorKind,
    pub description: Cow<'static, str>,
}

macro_rules! constructors {
    ($($fn_name:ident => $kind:ident),* $(,)?) => {
        $(
            pub fn $fn_name(description: impl Into<Cow<'static, str>>) -> Self {
                Self::new(ErrorKind::$kind, description)
            }
        )*
    };
}

impl OAuthError {
    pub fn new(kind: ErrorKind, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            description: description.into(),
        }
    }

    constructors! {
        invalid_request => InvalidRequest,
        invalid_client => InvalidClient,
        invalid_grant => InvalidGrant,
        unauthorized_client => UnauthorizedClient,
        unsupported_grant_type => UnsupportedGrantType,
        unsupported_response_type => UnsupportedResponseType,
        invalid_scope => InvalidScope,
        invalid_target => InvalidTarget,
        invalid_authorization_details => InvalidAuthorizationDetails,
        access_denied => AccessDenied,
        invalid_request_uri => InvalidRequestUri,
        invalid_request_object => InvalidRequestObject,
        request_not_supported => RequestNotSupported,
        login_required => LoginRequired,
        consent_required => ConsentRequired,
        interaction_required => InteractionRequired,
        invalid_token => InvalidToken,
        insufficient_scope => InsufficientScope,
        invalid_dpop_proof => InvalidDpopProof,
        use_dpop_nonce => UseDpopNonce,
        server_error => ServerError,
        temporarily_unavailable => TemporarilyUnavailable,
    }

    /// The opaque error shown for a server-side failure; the cause goes to the log only.
    pub fn internal() -> Self {
        Self::server_error("internal error")
    }

    /// The registered error code.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::InvalidClient => "invalid_client",
            ErrorKind::InvalidGrant => "invalid_grant",
            ErrorKind::UnauthorizedClient => "unauthorized_client",
            ErrorKind::UnsupportedGrantType => "unsupported_grant_type",
            ErrorKind::UnsupportedResponseType => "unsupported_response_type",
            ErrorKind::InvalidScope => "invalid_scope",
            ErrorKind::InvalidTarget => "invalid_target",
            ErrorKind::InvalidAuthorizationDetails => "invalid_authorization_details",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::InvalidRequestUri => "invalid_request_uri",
            ErrorKind::InvalidRequestObject => "invalid_request_object",
            ErrorKind::RequestNotSupported => "request_not_supported",
            ErrorKind::LoginRequired => "login_required",
            ErrorKind::ConsentRequired => "consent_required",
            ErrorKind::InteractionRequired => "interaction_required",
            ErrorKind::InvalidToken => "invalid_token",
            ErrorKind::InsufficientScope => "insufficient_scope",
            ErrorKind::InvalidDpopProof => "invalid_dpop_proof",
            ErrorKind::UseDpopNonce => "use_dpop_nonce",
            ErrorKind::ServerError => "server_error",
            ErrorKind::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// HTTP status for back-channel (JSON) responses. RFC 6749 §5.2: `invalid_client` is 401
    /// when the client tried to authenticate; RFC 6750 §3.1 for bearer-token errors. The DPoP
    /// errors are 400 at the authorization server (RFC 9449 §5, §8); a resource endpoint
    /// answers them with 401 and a challenge instead (§7.1, §9).
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::InvalidClient | ErrorKind::InvalidToken => 401,
            ErrorKind::InsufficientScope => 403,
            ErrorKind::ServerError => 500,
            ErrorKind::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.description)
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_follow_the_rfcs() {
        assert_eq!(OAuthError::invalid_client("x").status(), 401);
        assert_eq!(OAuthError::invalid_request_uri("x").code(), "invalid_request_uri");
        assert_eq!(OAuthError::temporarily_unavailable("x").status(), 503);
        assert_eq!(OAuthError::invalid_scope("x").status(), 400);
    }
}
