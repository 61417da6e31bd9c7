//! # par-server
//!
//! An OAuth 2.0 / OpenID Connect login service built around Pushed Authorization Requests
//! (RFC 9126). Stateless workers; all flow state lives in Redis (or, for the single-process
//! demo, in memory).
//!
//! # Layout
//! - [`oauth`]: the protocol rules, pure (no HTTP, no Redis, no clock).
//! - [`store`]: the only module that talks to Redis; keys and TTLs in `store::keys`.
//! - [`routes`]: actix handlers, thin: extract → rules → store → respond.
//! - [`startup`]: `Application` and the one route table.
//! - [`state`]: per-process shared state built from the configuration.
//! - [`keys`]: the server's signing keys (rotation, JWK Set, sign/verify of issued tokens).
//! - [`config`]: layered settings and start-up validation; the zero-config demo.
//! - [`telemetry`]: logging, OTLP traces (one linked trace per login), Prometheus metrics.
//! - [`users`]: the user directory and the claims each scope releases.
//! - [`healthcheck`]: the `par-server healthcheck` probe (std TCP, for distroless images).
//! - [`shutdown`]: SIGTERM/SIGINT → not-ready, drain delay, graceful stop.
//! - [`password`], [`crypto`], [`secret`], [`clock`]: small helpers.
//!
//! # Request flow
//! 1. `POST /oauth2/par` — client authenticated, request validated, stored under
//!    `par:{sha256(reference)}` with `SET … EX 60 NX`; `201 {request_uri, expires_in}`.
//! 2. `GET /oauth2/authorize?client_id&request_uri` — claimed for this browser (Lua script),
//!    life extended to the interaction lifetime.
//! 3. Login — on success the pushed request is taken (`GETDEL` in a script: one winner) and a
//!    one-time code stored under `code:{sha256(code)}`.
//! 4. `POST /oauth2/token` — code taken with `GETDEL` and marked used in one script, PKCE
//!    verified, tokens signed; a
//!    replayed code revokes its grant (`code:{…}:used` → `grant:{…}:revoked`).
//! 5. `GET /oauth2/userinfo` — Bearer JWT access token verified, grant not revoked.

// Instrumented store calls nest deep async state machines in the authorize handler.
#![recursion_limit = "256"]

pub(crate) mod browser;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod healthcheck;
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
