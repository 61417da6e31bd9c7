//! [`Store`]: the typed flow layer, one method per step of a login. Each method owns its
//! keys (`store::keyspace`), lifetimes given by the caller, record format (versioned JSON,
//! `store::records`) and decoding; callers pass and get domain objects and never see a key
//! or a byte. The backends underneath are byte-level (`store::backend`).
//!
//! | step | method | Redis (round trips) |
//! |---|---|---|
//! | `POST /par` | [`Store::push_request`] | `SET … EX … NX` (1) |
//! | `/authorize`, login and consent POSTs | [`Store::visit_request`] | open script (1) |
//! | login POST, consent to ask | [`Store::bind_request`] | bind script (1) |
//! | code issuance | [`Store::issue_code`] | take script + `SET … NX` of the code, sent together (1) |
//! | error or denial at the end of a login | [`Store::end_request`] | take script (1) |
//! | `POST /token` | [`Store::redeem_code`], then on a replay [`Store::revoke_grant`] | redeem script (1); `SET` |
//! | `/userinfo` | [`Store::access_token_revoked`] | `GET` ×2, sent together (1) |
//! | `POST /token`, `refresh_token` grant | [`Store::start_refresh`] (at code redemption), [`Store::rotate_refresh`] | `SET` ×2 (1); rotate script (1) |
//! | `POST /revoke` | [`Store::refresh_record`], [`Store::revoke_grant`], [`Store::revoke_access_token`] | `GET`; `SET` + `DEL` ×2; `SET` |
//! | rate limits, password back-off (`store::limits`) | [`Store::admit`], [`Store::password_wait`], [`Store::password_failed`] | one GCRA script for the limits a replica's leases do not answer (`store::lease`; 0 or 1); one back-off script per password limit, sent together (1) |
//! | SSO | [`Store::sso_session`], [`Store::start_sso_session`] | `GET` / `SET` |
//! | `private_key_jwt` | [`Store::first_use_of_assertion`] | `SET … NX` (1) |
//! | DPoP proof at PAR, token, userinfo | [`Store::first_use_of_dpop_proof`] | `SET … NX` (1) |
//! | playground | [`Store::put_playground_login`], [`Store::take_playground_login`] | `SET` / `GETDEL` |

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backend::Backend;
use super::error::StoreError;
use super::keyspace::KeySpace;
use super::lease::Leases;
use super::memory::MemoryStore;
use super::outcome::{Bind, OpenOutcome, RedeemOutcome, Take};
use super::records;
use super::redis::RedisStore;
use super::redis::options::RedisOptions;
use crate::crypto::sha256_b64;
use crate::oauth::authorization::AuthorizationRequest;
use crate::oauth::code::AuthorizationCode;
use crate::oauth::interaction::Session;
use crate::oauth::request_uri::Reference;

/// A visit to a pushed request: `/authorize`, or the login and consent forms. A visit never
/// binds or consumes the request (FAPI 2.0 §5.3.2.2, note).
#[derive(Debug)]
pub enum Visit {
    /// Live and not bound to another browser. `awaiting_consent`: the user this browser
    /// signed in, when the request waits for their consent.
    Open {
        request: Box<AuthorizationRequest>,
        awaiting_consent: Option<Session>,
    },
    /// A user signed in from another browser and holds it (consent pending there).
    BoundElsewhere,
    /// The record belongs to another client; nothing was changed.
    WrongClient,
    /// Unknown, expired or already used.
    Missing,
}

impl Visit {
    /// A bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Visit::Open {
                awaiting_consent: None,
                ..
            } => "open",
            Visit::Open { .. } => "awaiting_consent",
            Visit::BoundElsewhere => "bound_elsewhere",
            Visit::WrongClient => "wrong_client",
            Visit::Missing => "missing",
        }
    }
}

/// What a token request asserts about the code it presents (RFC 6749 §4.1.3, RFC 7636
/// §4.6): checked in the store before anything is consumed.
#[derive(Debug)]
pub struct CodeCheck<'a> {
    /// The authenticated client.
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// `BASE64URL(SHA-256(code_verifier))`, or `None` without a verifier: must equal the
    /// code's `code_challenge` (absent on both sides, or equal).
    pub code_challenge: Option<String>,
    /// The JWK thumbprint of the request's DPoP proof, or `None` without one: must equal
    /// the code's `dpop_jkt` when the code has one (RFC 9449 §10).
    pub dpop_jkt: Option<&'a str>,
}

impl CodeCheck<'_> {
    /// The (field, expected value) pairs the redeem script compares after the client id.
    fn fields(&self) -> [(&str, &str); 3] {
        [
            ("redirect_uri", self.redirect_uri),
            ("code_challenge", self.code_challenge.as_deref().unwrap_or("")),
            ("?dpop_jkt", self.dpop_jkt.unwrap_or("")),
        ]
    }
}

/// The result of presenting an authorization code.
#[derive(Debug)]
pub enum Redemption {
    /// The code's record; the code is now used.
    Redeemed(Box<AuthorizationCode>),
    /// The code was redeemed before and is presented again by its client with every check
    /// passing: a real replay (RFC 6749 §4.1.2).
    Replayed { grant_id: String },
    /// The code's own client, but this field of the request does not match; nothing changed.
    Mismatch(String),
    /// Unknown, expired, or another client's; nothing changed.
    Unknown,
}

/// What the playground keeps between its push and its callback: that a login was started
/// (taken once at the callback), and nothing of the user's: its PKCE verifier is derived from
/// `state` with the playground's client secret, its `request_uri` travels in the browser's
/// own cookie. With DPoP, the playground's throwaway proof key for this one login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaygroundLogin {
    /// When the playground pushed (Unix seconds).
    pub started: u64,
    /// PKCS#8, base64url; taken with the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<String>,
}

/// The shared state of every flow.
pub struct Store {
    pub(super) backend: Backend,
    pub(super) keys: KeySpace,
    /// Largest pushed request stored, in bytes (`usize::MAX`: no cap).
    max_record: usize,
    /// This replica's leases of rate-limit cells (`store::lease`).
    pub(super) leases: Leases,
}

impl Store {
    /// The single-process in-memory store of the zero-config demo.
    pub fn memory(key_prefix: &str) -> Self {
        Self {
            backend: Backend::Memory(MemoryStore::default()),
            keys: KeySpace::new(key_prefix),
            max_record: usize::MAX,
            leases: Leases::default(),
        }
    }

    /// Caps the size of a stored pushed request at `bytes` (encoded): a larger one is
    /// [`StoreError::TooLarge`]. Apart from `http.body_limit`: the body also carries client
    /// credentials and encoding, and what is kept for minutes should be small.
    pub fn limit_record_size(mut self, bytes: usize) -> Self {
        self.max_record = bytes;
        self
    }

    /// Redis, without contacting it yet: the service starts (not ready) while Redis is down.
    /// Must run inside a Tokio runtime.
    pub fn redis(options: &RedisOptions, key_prefix: &str) -> Result<Self, StoreError> {
        Ok(Self {
            backend: Backend::Redis(RedisStore::connect(options)?),
            keys: KeySpace::new(key_prefix),
            max_record: usize::MAX,
            leases: Leases::default(),
        })
    }

    /// Readiness: a small write (`SET … PX`) succeeds within the command timeout. A Redis
    /// that answers but refuses writes — out of memory under `noeviction`, or a demoted
    /// primary — is not ready (docs/redis.md, "Memory").
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend
            .put(&self.keys.health(), b"1", Duration::from_secs(10))
            .await
    }

    /// Redis' `maxmemory-policy` (`CONFIG GET`), or `None` where `CONFIG` is not allowed
    /// (ACL, managed services) or there is no Redis.
    pub async fn eviction_policy(&self) -> Result<Option<String>, StoreError> {
        self.backend.eviction_policy().await
    }

    /// Stores a validated pushed request under its reference's digest for `lifetime`
    /// (`SET … EX … NX`). A fresh 256-bit key that exists already is, in practice, our own
    /// `SET` applied twice (the cluster client resent it after losing the reply; found by the
    /// chaos run), rarely a broken RNG: refused rather than overwritten, as
    /// [`StoreError::Unavailable`] so the client pushes again.
    #[tracing::instrument(name = "store.push_request", level = "debug", skip_all)]
    pub async fn push_request(
        &self,
        reference: &Reference,
        request: &AuthorizationRequest,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        let value = records::encode_tagged(&request.client_id, request)?;
        if value.len() > self.max_record {
            return Err(StoreError::TooLarge(value.len(), self.max_record));
        }
        if self
            .backend
            .put_new(&self.keys.par(&reference.digest()), &value, lifetime)
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "request_uri reference exists already (a retried write?)".into(),
            ))
        }
    }

    /// A visit of the browser `owner` to the pushed request, if it belongs to `client_id`
    /// (checked before any write). The first visit (`extend`, unless a prefetch or `HEAD`)
    /// extends its life to `interaction_lifetime`, once. See [`Visit`].
    #[tracing::instrument(name = "store.visit_request", level = "debug", skip_all)]
    pub async fn visit_request(
        &self,
        reference: &Reference,
        client_id: &str,
        owner: &str,
        interaction_lifetime: Duration,
        extend: bool,
    ) -> Result<Visit, StoreError> {
        let digest = reference.digest();
        let outcome = self
            .backend
            .open(
                [
                    &self.keys.par(&digest),
                    &self.keys.par_opened(&digest),
                    &self.keys.par_bound(&digest),
                ],
                client_id,
                owner,
                interaction_lifetime,
                extend,
            )
            .await?;
        let request = |v: &[u8]| records::decode_tagged(v, client_id, "pushed request");
        Ok(match outcome {
            OpenOutcome::Open(v) => Visit::Open {
                request: Box::new(request(&v)?),
                awaiting_consent: None,
            },
            OpenOutcome::BoundHere(v, user) => Visit::Open {
                request: Box::new(request(&v)?),
                awaiting_consent: lenient(records::decode(&user, "pending consent")),
            },
            OpenOutcome::BoundElsewhere => Visit::BoundElsewhere,
            OpenOutcome::WrongClient => Visit::WrongClient,
            OpenOutcome::Missing => Visit::Missing,
        })
    }

    /// Binds the pushed request to the browser `owner` whose user (`session`) just signed
    /// in and is asked for consent: from now on only this browser can complete it.
    #[tracing::instrument(name = "store.bind_request", level = "debug", skip_all)]
    pub async fn bind_request(
        &self,
        reference: &Reference,
        owner: &str,
        session: &Session,
    ) -> Result<Bind, StoreError> {
        let digest = reference.digest();
        let mut value = Vec::with_capacity(owner.len() + 64);
        value.extend_from_slice(owner.as_bytes());
        value.push(b'\n');
        value.extend_from_slice(&records::encode(session)?);
        self.backend
            .bind(
                [&self.keys.par(&digest), &self.keys.par_bound(&digest)],
                owner,
                &value,
            )
            .await
    }

    /// Takes the pushed request (the point of authorization: only the bound browser may,
    /// when one is bound) and stores the authorization `code`'s record
    /// (under the code's digest, for `lifetime`), both sent together: one round trip, and
    /// exactly one winner decided by the take. A code stored for a lost race is deleted; it
    /// was never handed out.
    #[tracing::instrument(name = "store.issue_code", level = "debug", skip_all)]
    pub async fn issue_code(
        &self,
        reference: &Reference,
        owner: &str,
        code: &str,
        record: &AuthorizationCode,
        lifetime: Duration,
    ) -> Result<Take, StoreError> {
        let (taken, stored) = tokio::join!(
            self.take_request(reference, owner),
            self.store_code(code, record, lifetime)
        );
        if !matches!(taken, Ok(Take::Taken)) {
            if stored.is_ok() {
                let _ = self
                    .backend
                    .delete(&self.keys.code(&sha256_b64(code.as_bytes())))
                    .await;
            }
            return taken;
        }
        stored.map(|()| Take::Taken)
    }

    /// Stores an authorization code's record under the code's digest for `lifetime`
    /// (`SET … EX … NX`). A key that exists already is refused, never overwritten, as
    /// [`StoreError::Unavailable`] (see [`Store::push_request`]): the login ends with a 503.
    pub async fn store_code(
        &self,
        code: &str,
        record: &AuthorizationCode,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        let value = records::encode(record)?;
        let key = self.keys.code(&sha256_b64(code.as_bytes()));
        if self.backend.put_new(&key, &value, lifetime).await? {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "authorization code exists already (a retried write?)".into(),
            ))
        }
    }

    /// Takes the pushed request without issuing a code (the login ends with an error sent
    /// to the client); like code issuance, only the bound browser may, when one is bound.
    #[tracing::instrument(name = "store.end_request", level = "debug", skip_all)]
    pub async fn end_request(&self, reference: &Reference, owner: &str) -> Result<Take, StoreError> {
        self.take_request(reference, owner).await
    }

    async fn take_request(&self, reference: &Reference, owner: &str) -> Result<Take, StoreError> {
        let digest = reference.digest();
        self.backend
            .take_request(
                [
                    &self.keys.par(&digest),
                    &self.keys.par_bound(&digest),
                    &self.keys.par_opened(&digest),
                ],
                owner,
            )
            .await
    }

    /// Presents `code` with what the token request asserts about it (`check`). Every check
    /// happens before anything is consumed: another client's code, or a mismatching field,
    /// leaves the code redeemable by its rightful client. A code that passes is taken and
    /// kept as used for `marker_lifetime`, in one atomic step, so a replay racing this
    /// redemption is recognised. See [`Redemption`].
    #[tracing::instrument(name = "store.redeem_code", level = "debug", skip_all)]
    pub async fn redeem_code(
        &self,
        code: &str,
        check: &CodeCheck<'_>,
        marker_lifetime: Duration,
    ) -> Result<Redemption, StoreError> {
        let digest = sha256_b64(code.as_bytes());
        let outcome = self
            .backend
            .redeem(
                &self.keys.code(&digest),
                &self.keys.code_used(&digest),
                marker_lifetime,
                check.client_id,
                &check.fields(),
            )
            .await?;
        Ok(match outcome {
            RedeemOutcome::Redeemed(v) => {
                Redemption::Redeemed(Box::new(records::decode(&v, "authorization code")?))
            }
            RedeemOutcome::Replayed(grant_id) => Redemption::Replayed { grant_id },
            RedeemOutcome::Mismatch(field) => Redemption::Mismatch(field),
            RedeemOutcome::Unknown => Redemption::Unknown,
        })
    }

    /// Revokes a grant for `lifetime` (the longest any access token of it lives): every
    /// token carrying its id is refused from now on (RFC 6749 §4.1.2, a replayed code;
    /// RFC 7009 §2.1, a revoked refresh token), and its refresh token is deleted. The mark
    /// comes first: once it is set the rotate script refuses the grant.
    #[tracing::instrument(name = "store.revoke_grant", level = "debug", skip_all)]
    pub async fn revoke_grant(&self, grant_id: &str, lifetime: Duration) -> Result<(), StoreError> {
        self.backend
            .put(&self.keys.grant_revoked(grant_id), b"1", lifetime)
            .await?;
        let (record, current) = (self.keys.refresh(grant_id), self.keys.refresh_current(grant_id));
        let (a, b) = tokio::join!(self.backend.delete(&record), self.backend.delete(&current));
        a.and(b)
    }

    /// Puts an access token on the deny-list for `lifetime` (its remaining life; RFC 7009).
    #[tracing::instrument(name = "store.revoke_access_token", level = "debug", skip_all)]
    pub async fn revoke_access_token(&self, jti: &str, lifetime: Duration) -> Result<(), StoreError> {
        self.backend
            .put(&self.keys.access_token_revoked(jti), b"1", lifetime)
            .await
    }

    /// Whether an access token was revoked, by itself (`jti`) or with its grant.
    #[tracing::instrument(name = "store.access_token_revoked", level = "debug", skip_all)]
    pub async fn access_token_revoked(&self, grant_id: &str, jti: &str) -> Result<bool, StoreError> {
        let keys = (
            self.keys.grant_revoked(grant_id),
            self.keys.access_token_revoked(jti),
        );
        let (grant, token) = tokio::join!(self.backend.get(&keys.0), self.backend.get(&keys.1));
        Ok(grant?.is_some() || token?.is_some())
    }

    /// Whether the grant behind an access token was revoked.
    #[tracing::instrument(name = "store.grant_revoked", level = "debug", skip_all)]
    pub async fn grant_revoked(&self, grant_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .backend
            .get(&self.keys.grant_revoked(grant_id))
            .await?
            .is_some())
    }

    /// The SSO session named by a browser's session cookie. A record this release cannot
    /// read counts as no session (the user signs in again).
    #[tracing::instrument(name = "store.sso_session", level = "debug", skip_all)]
    pub async fn sso_session(&self, cookie: &str) -> Result<Option<Session>, StoreError> {
        let raw = self
            .backend
            .get(&self.keys.sso_session(&sha256_b64(cookie.as_bytes())))
            .await?;
        Ok(raw.and_then(|v| lenient(records::decode(&v, "SSO session"))))
    }

    #[tracing::instrument(name = "store.start_sso_session", level = "debug", skip_all)]
    pub async fn start_sso_session(
        &self,
        cookie: &str,
        session: &Session,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        let value = records::encode(session)?;
        self.backend
            .put(
                &self.keys.sso_session(&sha256_b64(cookie.as_bytes())),
                &value,
                lifetime,
            )
            .await
    }

    /// Records a `private_key_jwt` assertion's `jti` for `remember` (`SET … NX`): `false` if
    /// this client used it before, on any replica (RFC 7523 §3, replay).
    #[tracing::instrument(name = "store.first_use_of_assertion", level = "debug", skip_all)]
    pub async fn first_use_of_assertion(
        &self,
        client_id: &str,
        jti: &str,
        remember: Duration,
    ) -> Result<bool, StoreError> {
        self.backend
            .put_new(&self.keys.assertion_jti(client_id, jti), b"1", remember)
            .await
    }

    /// Records a DPoP proof's `jti` for `remember` (`SET … NX`): `false` if a proof with this
    /// `jti` was already presented with the key `jkt`, on any replica (RFC 9449 §11.1).
    #[tracing::instrument(name = "store.first_use_of_dpop_proof", level = "debug", skip_all)]
    pub async fn first_use_of_dpop_proof(
        &self,
        jkt: &str,
        jti: &str,
        remember: Duration,
    ) -> Result<bool, StoreError> {
        self.backend
            .put_new(&self.keys.dpop_jti(jkt, jti), b"1", remember)
            .await
    }

    /// The playground's pending login, under the digest of its `state`.
    pub async fn put_playground_login(
        &self,
        state: &str,
        login: &PlaygroundLogin,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        let value = records::encode(login)?;
        self.backend
            .put(
                &self.keys.playground(&sha256_b64(state.as_bytes())),
                &value,
                lifetime,
            )
            .await
    }

    /// Takes the playground's pending login for `state` (once).
    pub async fn take_playground_login(&self, state: &str) -> Result<Option<PlaygroundLogin>, StoreError> {
        let raw = self
            .backend
            .take(&self.keys.playground(&sha256_b64(state.as_bytes())))
            .await?;
        Ok(raw.and_then(|v| lenient(records::decode(&v, "playground login"))))
    }
}

/// A record that cannot be read is treated as absent where that only costs the user a
/// retry (SSO, consent, playground); it is logged.
fn lenient<T>(decoded: Result<T, StoreError>) -> Option<T> {
    decoded
        .inspect_err(|e| tracing::warn!(error = %e, "ignoring an unreadable store record"))
        .ok()
}
