//! # par-server
//!
//! An OAuth 2.0 / OpenID Connect login service built around Pushed Authorization Requests
//! (RFC 9126). Stateless workers; all flow state lives in Redis (or, for the single-process
//! demo, in memory).
//!
//! # Layout
//! Dependencies point one way (docs/architecture.md; `scripts/check-module-graph.py`
//! enforces it): `startup` → `routes` → (`oauth`, `store`, `browser`) → small helpers.
//! - [`oauth`]: the protocol rules, pure (no HTTP, no Redis, no clock).
//! - [`store`]: the only module that talks to Redis; one typed method per step of a login.
//! - `routes`: one file per endpoint, thin: extract → rules → store → respond; what they
//!   share is in `routes::support`.
//! - `browser`: what a browser receives: pages, security headers, redirects, cookies.
//! - [`startup`]: `Application` and the one route table; [`state`]: per-process shared
//!   state built from the validated configuration.
//! - [`config`]: layered settings, validated once into `ValidSettings`; the zero-config demo.
//! - [`signing`]: the server's signing keys (rotation, JWK Set, sign/verify of issued tokens).
//! - [`telemetry`]: logging, OTLP traces (one linked trace per login), Prometheus metrics.
//! - `users`: the user directory and the claims each scope releases.
//! - `playground`: the built-in demo client.
//! - [`healthcheck`]: the `par-server healthcheck` probe (std TCP, for distroless images).
//! - [`keygen`]: `par-server gen-key`, the signing key a deployment's replicas share, made once.
//! - `shutdown`: SIGTERM/SIGINT → not-ready, drain delay, graceful stop.
//! - [`password`], [`crypto`], [`secret`], [`clock`]: small helpers.
//!
//! # Request flow
//! 1. `POST /oauth2/par` — client authenticated, request validated, stored with
//!    `Store::push_request` (`SET … EX 60 NX` under the hash of the reference);
//!    `201 {request_uri, expires_in}`.
//! 2. `GET /oauth2/authorize?client_id&request_uri` — visited (`Store::visit_request`, a
//!    Lua script): never bound or consumed by a visit; the first extends its life once.
//! 3. Login — on success the pushed request is taken and a one-time code stored
//!    (`Store::issue_code`: one winner across replicas); with consent, first bound to the
//!    browser that signed in (`Store::bind_request`).
//! 4. `POST /oauth2/token` — client, redirect_uri and PKCE checked, then the code taken and
//!    marked used, in one script (`Store::redeem_code`); tokens signed; a replay revokes.
//! 5. `GET /oauth2/userinfo` — JWT access token verified, grant not revoked.

// Instrumented store calls nest deep async state machines in the authorize handler.
#![recursion_limit = "256"]

pub(crate) mod browser;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod healthcheck;
pub mod keygen;
pub mod limits;
pub mod oauth;
pub mod password;
pub(crate) mod playground;
pub(crate) mod routes;
pub mod secret;
pub(crate) mod shutdown;
pub mod signing;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub(crate) mod users;
