//! What the byte-level backends answer for the atomic steps on a pushed request.

/// Result of claiming a pushed request for a browser interaction.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClaimOutcome {
    /// First claim: this browser now owns the interaction; the record's life was extended.
    Claimed(Vec<u8>),
    /// The same browser came back (a reload): continue.
    Resumed(Vec<u8>),
    /// Another browser owns it.
    ClaimedByOther,
    /// The record belongs to another client; nothing was changed.
    WrongClient,
    /// Unknown, expired or already used.
    Missing,
}

/// Result of taking a claimed pushed request at code issuance.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TakeOutcome {
    Taken(Vec<u8>),
    NotOwner,
    Missing,
}
