//! The endpoints, one file each: extract → rules (`crate::oauth`) → state (`crate::store`) →
//! respond. The route table lives in `crate::startup`; what the endpoints share is in
//! `support`.

pub(crate) mod assets;
pub mod authorize;
pub mod consent;
pub mod discovery;
pub mod health;
pub mod jwks;
pub mod login;
pub mod methods;
pub mod metrics;
pub mod par;
pub mod revoke;
pub mod support;
pub mod token;
pub mod userinfo;
