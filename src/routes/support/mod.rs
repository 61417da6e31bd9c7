//! What the endpoints share, kept apart from them: how a browser is recognised
//! (`binding`), one browser's interaction from claim to code (`interaction`), client
//! authentication (`client_auth`), DPoP proofs and nonces (`dpop`), bounded form bodies
//! (`form`), errors as HTTP (`errors`) and the rate limits (`limits`).

pub mod binding;
pub(crate) mod client_auth;
pub(crate) mod dpop;
pub mod errors;
pub mod form;
pub mod interaction;
pub(crate) mod limits;
