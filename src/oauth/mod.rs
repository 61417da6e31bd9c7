//! The protocol core: OAuth 2.0 (RFC 6749), PAR (RFC 9126), PKCE (RFC 7636), DPoP
//! (RFC 9449), RFC 9207 `iss`, OIDC Core and the FAPI 2.0 / RFC 9700 rules that apply. No
//! HTTP, no Redis, no clock: callers pass `now` and the registered client, so every rule is
//! unit-testable.

pub mod authorization;
pub(crate) mod authorization_details;
pub mod claims;
pub mod client;
pub(crate) mod client_auth;
pub mod code;
pub mod discovery;
pub mod dpop;
pub mod dpop_binding;
pub mod dpop_client;
pub mod dpop_nonce;
pub mod error;
pub mod interaction;
pub mod params;
pub(crate) mod pkce;
pub mod refresh;
pub(crate) mod request_object;
pub mod request_uri;
pub mod response;
pub mod token;

pub use error::{ErrorKind, OAuthError};
