//! Password hashing (argon2id, PHC strings) and verification that costs the same whether or
//! not the user exists. Verification is CPU-heavy: callers run it on the blocking pool.

use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher};

/// An argon2id PHC string for `password`, with the crate's default parameters
/// (m=19456 KiB, t=2, p=1: the OWASP minimum for argon2id).
pub fn hash(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

/// Verifies `password` against `phc`. With `phc = None` (unknown user) a dummy hash of the
/// same cost is checked, so response time does not reveal which usernames exist.
pub fn verify(password: &str, phc: Option<&str>) -> bool {
    static DUMMY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash("dummy password for timing").expect("argon2 works"));
    let (phc, real) = match phc {
        Some(p) => (p, true),
        None => (DUMMY.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_unknown_users_never_do() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", Some(&h)));
        assert!(!verify("wrong", Some(&h)));
        assert!(!verify("dummy password for timing", None));
    }
}
