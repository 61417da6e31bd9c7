//! Password hashing (argon2id, PHC strings) and verification that costs the same whether or
//! not the user exists. Verification is CPU-heavy and needs 19 MiB per call: request
//! handlers use [`PasswordQueue::verify`], which runs it on a fixed set of threads (one per
//! CPU) so that neither the async workers block nor memory grows with concurrent logins,
//! and admits a bounded number of checks so that a flood is refused instead of queued.

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
///
/// The argon2 memory (`m` KiB) is allocated once per thread and reused: allocating and
/// freeing 19 MiB per call let the allocator keep one copy per arena, and a benchmark of
/// sequential logins grew the process to 220 MiB (docs/benchmarks.md).
pub fn verify(password: &str, phc: Option<&str>) -> bool {
    static DUMMY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash("dummy password for timing").expect("argon2 works"));
    thread_local! {
        static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let (phc, real) = match phc {
        Some(p) => (p, true),
        None => (DUMMY.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ok = MEMORY.with_borrow_mut(|memory| verify_with_memory(password.as_bytes(), &parsed, memory));
    ok && real
}

/// What `PasswordVerifier::verify_password` does (same parameters from the PHC string, same
/// constant-time comparison of the output), with caller-provided memory blocks.
fn verify_with_memory(password: &[u8], parsed: &PasswordHash, memory: &mut Vec<argon2::Block>) -> bool {
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = argon2::Params::try_from(parsed) else {
        return false;
    };
    memory.resize(params.block_count(), argon2::Block::default());
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut *out, &mut memory[..])
        .is_ok()
        && subtle::ConstantTimeEq::ct_eq(&*out, expected.as_bytes()).into()
}

/// A job for the verifier threads: the check and where to send its answer.
type Job = Box<dyn FnOnce() + Send>;

/// The verifier threads: as many as CPUs, fed by one queue. Bounding the threads bounds the
/// memory: each verification allocates `m` = 19 MiB, and on actix's blocking pool (up to
/// 256 threads per worker) concurrent logins each held their own copy (an SSO benchmark
/// start with 256 clients signing in at once: RSS above 500 MiB; docs/benchmarks.md). More
/// threads than CPUs add no throughput; the queue orders logins fairly instead.
static VERIFIERS: std::sync::LazyLock<std::sync::mpsc::Sender<Job>> = std::sync::LazyLock::new(|| {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for i in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a password verifier thread");
        }
    }
    tx
});

/// Why a check did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full: answer `503` + `Retry-After` at once rather than wait.
    Busy,
    /// The verifier threads are gone (never in practice).
    Stopped,
}

/// Admission to the verifier threads: at most `capacity` checks queued or running for this
/// process. Without it every login POST queued, so a flood of them made a real login wait
/// for minutes and held each flooding connection (and its buffers) open meanwhile
/// (docs/operations.md, "Limits").
#[derive(Debug, Clone)]
pub struct PasswordQueue {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    capacity: usize,
}

impl PasswordQueue {
    /// `capacity` checks at once; 0 = 32 per CPU: a full queue is about 1.5 s of work
    /// (≈ 45 ms per check and CPU), so a burst of real sign-ins waits instead of failing
    /// while a flood is refused.
    pub fn new(capacity: usize) -> Self {
        let capacity = match capacity {
            0 => 32 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        Self {
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(capacity)),
            capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// [`verify`] on the verifier threads, if a slot is free. A check whose requester has
    /// gone (the handler future was dropped with its connection) is skipped when its turn
    /// comes: nobody would read the answer.
    pub(crate) async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, Refused> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Busy)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // The span travels with the job, so the check shows under the caller's trace.
        let span = tracing::info_span!("password.verify");
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                crate::telemetry::metrics::password_check("abandoned");
                return;
            }
            let ok = span.in_scope(|| verify(&password, phc.as_deref()));
            // The slot is free before the answer arrives.
            drop(slot);
            let _ = tx.send(ok);
        });
        VERIFIERS.send(job).map_err(|_| Refused::Stopped)?;
        rx.await.map_err(|_| Refused::Stopped)
    }
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

    #[test]
    fn agrees_with_the_argon2_crate() {
        use argon2::password_hash::PasswordVerifier;
        let h = hash("correct horse").unwrap();
        let parsed = PasswordHash::new(&h).unwrap();
        for pw in ["correct horse", "correct hors", ""] {
            let theirs = Argon2::default().verify_password(pw.as_bytes(), &parsed).is_ok();
            assert_eq!(verify(pw, Some(&h)), theirs, "{pw}");
        }
        // Other parameters than the defaults: taken from the PHC string.
        let params = argon2::Params::new(64, 1, 1, Some(16)).unwrap();
        let small = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(b"password")
            .unwrap()
            .to_string();
        assert!(verify("password", Some(&small)));
        assert!(!verify("passwore", Some(&small)));
    }

    #[tokio::test]
    async fn verifies_off_thread() {
        let queue = PasswordQueue::new(0);
        assert!(queue.capacity() >= 32);
        let h = hash("correct horse").unwrap();
        assert_eq!(
            queue.verify("correct horse".into(), Some(h.clone())).await,
            Ok(true)
        );
        assert_eq!(queue.verify("wrong".into(), Some(h)).await, Ok(false));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_frees_its_slots() {
        let queue = PasswordQueue::new(2);
        let h = hash("correct horse").unwrap();
        let held = queue.slots.clone().try_acquire_many_owned(2).unwrap();
        assert_eq!(
            queue.verify("correct horse".into(), Some(h.clone())).await,
            Err(Refused::Busy)
        );
        drop(held);
        assert_eq!(queue.verify("correct horse".into(), Some(h)).await, Ok(true));
        assert_eq!(
            queue.slots.available_permits(),
            2,
            "a finished check frees its slot"
        );
    }
}
