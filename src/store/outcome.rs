//! What the byte-level backends answer for the atomic steps of a login.

/// A visit to a pushed request (`/authorize`, the login and consent forms).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OpenOutcome {
    /// Live and bound to nobody: the tagged record.
    Open(Vec<u8>),
    /// Bound to this browser: the tagged record and the user awaiting consent.
    BoundHere(Vec<u8>, Vec<u8>),
    /// Bound to another browser.
    BoundElsewhere,
    /// The record belongs to another client; nothing was changed.
    WrongClient,
    /// Unknown, expired or already used.
    Missing,
}

/// Binding a pushed request to the browser that authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    Bound,
    /// Another browser authenticated for it first.
    BoundElsewhere,
    /// Unknown, expired or already taken.
    Missing,
}

/// Redeeming an authorization code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RedeemOutcome {
    /// Unknown, expired, or another client's: nothing was changed.
    Unknown,
    /// The code's record; the code is now used.
    Redeemed(Vec<u8>),
    /// A used code presented again by its client, every check passing: its grant id.
    Replayed(String),
    /// The code's own client, but this field does not match; nothing was changed.
    Mismatch(String),
}

/// Presenting a refresh token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RotateOutcome {
    /// Unknown, expired, revoked, or another client's: nothing was changed.
    Unknown,
    /// The grant's record; the presented token is retired and the new one current.
    Rotated(Vec<u8>),
    /// A retired token presented again: the grant is revoked.
    Reused,
    /// The token is DPoP-bound to another key than the proof's: nothing was changed.
    KeyMismatch,
}

/// The end of a pushed request's life at the point of authorization: one winner across
/// replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Taken,
    /// Another browser authenticated for it and holds it.
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
