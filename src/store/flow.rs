//! [`Store`]: the typed flow layer, one method per step of a login. Each method owns its
//! keys (`store::keyspace`), lifetimes given by the caller, record format (versioned JSON,
//! `store::records`) and decoding; callers pass and get domain objects and never see a key
//! or a byte. The backends underneath are byte-level (`store::backend`).
//!
//! | step | method | Redis (round trips) |
//! |---|---|---|
//! | `POST /par` | [`Store::push_request`] | `SET … EX … NX` (1) |
//! | `/authorize`, login and consent POSTs | [`Store::claim_request`] | claim script (1) |
//! | code issuance | [`Store::issue_code`] | take script + `SET … NX` of the code, sent together (1) |
//! | error or denial at the end of a login | [`Store::end_request`] | take script (1) |
//! | `POST /token` | [`Store::redeem_code`], then on a replay [`Store::revoke_replayed_grant`] | redeem script (1); `GET` + `SET` |
//! | `/userinfo` | [`Store::grant_revoked`] | `GET` (1) |
//! | rate limits, password back-off (`store::limits`) | [`Store::admit`], [`Store::password_wait`], [`Store::password_failed`] | one script per limit, sent together (1) |
//! | SSO | [`Store::sso_session`], [`Store::start_sso_session`] | `GET` / `SET` |
//! | consent | [`Store::await_consent`], [`Store::pending_consent`], [`Store::clear_pending_consent`] | `SET` / `GET` / `DEL` |
//! | `private_key_jwt` | [`Store::first_use_of_assertion`] | `SET … NX` (1) |
//! | playground | [`Store::put_playground_login`], [`Store::take_playground_login`] | `SET` / `GETDEL` |

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backend::Backend;
use super::error::StoreError;
use super::keyspace::KeySpace;
use super::memory::MemoryStore;
use super::outcome::{ClaimOutcome, TakeOutcome};
use super::records;
use super::redis::RedisStore;
use super::redis::options::RedisOptions;
use crate::crypto::sha256_b64;
use crate::oauth::authorization::AuthorizationRequest;
use crate::oauth::code::AuthorizationCode;
use crate::oauth::interaction::Session;
use crate::oauth::request_uri::Reference;

/// A pushed request presented at `/authorize` (or resumed by a login or consent POST).
#[derive(Debug)]
pub enum Claim {
    /// First visit: this browser now owns the interaction; the record lives for the
    /// interaction lifetime.
    Claimed(AuthorizationRequest),
    /// The same browser came back (a reload, or its login/consent POST).
    Resumed(AuthorizationRequest),
    /// Another browser owns it.
    ClaimedByOther,
    /// The record belongs to another client; nothing was changed.
    WrongClient,
    /// Unknown, expired or already used.
    Missing,
}

/// The end of a pushed request's life: taken by its owner (one winner across replicas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Taken,
    /// Another browser holds the claim.
    NotOwner,
    /// Unknown, expired or already taken.
    Missing,
}

impl Take {
    /// A bounded label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Take::Taken => "taken",
            Take::NotOwner => "not_owner",
            Take::Missing => "missing",
        }
    }
}

/// What the playground keeps between its push and its callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaygroundLogin {
    pub verifier: String,
    pub request_uri: String,
}

/// The shared state of every flow.
pub struct Store {
    pub(super) backend: Backend,
    pub(super) keys: KeySpace,
}

impl Store {
    /// The single-process in-memory store of the zero-config demo.
    pub fn memory(key_prefix: &str) -> Self {
        Self {
            backend: Backend::Memory(MemoryStore::default()),
            keys: KeySpace::new(key_prefix),
        }
    }

    /// Redis, without contacting it yet: the service starts (not ready) while Redis is down.
    /// Must run inside a Tokio runtime.
    pub fn redis(options: &RedisOptions, key_prefix: &str) -> Result<Self, StoreError> {
        Ok(Self {
            backend: Backend::Redis(RedisStore::connect(options)?),
            keys: KeySpace::new(key_prefix),
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
        let value = records::encode(request)?;
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

    /// Claims the pushed request for the browser `owner` if it belongs to `client_id` (the
    /// client check comes before any write); the first claim extends its life to
    /// `interaction_lifetime`. See [`Claim`].
    #[tracing::instrument(name = "store.claim_request", level = "debug", skip_all)]
    pub async fn claim_request(
        &self,
        reference: &Reference,
        client_id: &str,
        owner: &str,
        interaction_lifetime: Duration,
    ) -> Result<Claim, StoreError> {
        let digest = reference.digest();
        let outcome = self
            .backend
            .claim(
                &self.keys.par(&digest),
                &self.keys.par_claim(&digest),
                client_id,
                owner,
                interaction_lifetime,
            )
            .await?;
        Ok(match outcome {
            ClaimOutcome::Claimed(v) => Claim::Claimed(records::decode(&v, "pushed request")?),
            ClaimOutcome::Resumed(v) => Claim::Resumed(records::decode(&v, "pushed request")?),
            ClaimOutcome::ClaimedByOther => Claim::ClaimedByOther,
            ClaimOutcome::WrongClient => Claim::WrongClient,
            ClaimOutcome::Missing => Claim::Missing,
        })
    }

    /// Takes the pushed request for its owner and stores the authorization `code`'s record
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

    /// Takes the pushed request for its owner without issuing a code (the login ends with an
    /// error sent to the client). The pending-consent marker, if any, is left to its TTL: it
    /// is useless once the request is gone.
    #[tracing::instrument(name = "store.end_request", level = "debug", skip_all)]
    pub async fn end_request(&self, reference: &Reference, owner: &str) -> Result<Take, StoreError> {
        self.take_request(reference, owner).await
    }

    async fn take_request(&self, reference: &Reference, owner: &str) -> Result<Take, StoreError> {
        let digest = reference.digest();
        let outcome = self
            .backend
            .take_claimed(&self.keys.par(&digest), &self.keys.par_claim(&digest), owner)
            .await?;
        Ok(match outcome {
            TakeOutcome::Taken(_) => Take::Taken,
            TakeOutcome::NotOwner => Take::NotOwner,
            TakeOutcome::Missing => Take::Missing,
        })
    }

    /// Redeems `code`: takes its record and marks the code used with the record's grant id
    /// for `marker_lifetime`, in one atomic step, so a replay racing this redemption finds
    /// the marker. `None` if the code is unknown, expired or already redeemed.
    #[tracing::instrument(name = "store.redeem_code", level = "debug", skip_all)]
    pub async fn redeem_code(
        &self,
        code: &str,
        marker_lifetime: Duration,
    ) -> Result<Option<AuthorizationCode>, StoreError> {
        let digest = sha256_b64(code.as_bytes());
        self.backend
            .redeem(
                &self.keys.code(&digest),
                &self.keys.code_used(&digest),
                marker_lifetime,
            )
            .await?
            .map(|v| records::decode(&v, "authorization code"))
            .transpose()
    }

    /// After a failed redemption: if `code` was redeemed before, revoke its grant for
    /// `lifetime` and return the grant id (RFC 6749 §4.1.2: a replayed code SHOULD revoke
    /// the tokens issued from it). `None`: the code was never issued or its marker expired.
    #[tracing::instrument(name = "store.revoke_replayed_grant", level = "debug", skip_all)]
    pub async fn revoke_replayed_grant(
        &self,
        code: &str,
        lifetime: Duration,
    ) -> Result<Option<String>, StoreError> {
        let marker = self.keys.code_used(&sha256_b64(code.as_bytes()));
        let Some(grant_id) = self.backend.get(&marker).await? else {
            return Ok(None);
        };
        let grant_id = String::from_utf8_lossy(&grant_id).into_owned();
        self.backend
            .put(&self.keys.grant_revoked(&grant_id), b"1", lifetime)
            .await?;
        Ok(Some(grant_id))
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

    /// Remembers who signed in for this request while the consent page is shown.
    #[tracing::instrument(name = "store.await_consent", level = "debug", skip_all)]
    pub async fn await_consent(
        &self,
        reference: &Reference,
        session: &Session,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        let value = records::encode(session)?;
        self.backend
            .put(&self.keys.par_login(&reference.digest()), &value, lifetime)
            .await
    }

    /// The user awaiting consent for this request, if any.
    #[tracing::instrument(name = "store.pending_consent", level = "debug", skip_all)]
    pub async fn pending_consent(&self, reference: &Reference) -> Result<Option<Session>, StoreError> {
        let raw = self
            .backend
            .get(&self.keys.par_login(&reference.digest()))
            .await?;
        Ok(raw.and_then(|v| lenient(records::decode(&v, "pending consent"))))
    }

    /// Housekeeping after the consent decision (the marker also has its own TTL).
    pub async fn clear_pending_consent(&self, reference: &Reference) -> Result<(), StoreError> {
        self.backend
            .delete(&self.keys.par_login(&reference.digest()))
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
