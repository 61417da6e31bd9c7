//! Local leases of rate-limit cells (docs/operations.md, "Limits"). A replica that sees a
//! subject (a client, an address) often takes several GCRA cells from the store in one step
//! and spends them itself, so a busy subject costs the store one script per lease instead of
//! one per request; and it remembers a refusal until its `Retry-After` (GCRA only ever frees
//! a cell at the time it names), so a client over its limit costs the store nothing until
//! then. A subject seen rarely takes one cell at a time, exactly as without leases.
//!
//! What leasing changes, and its bounds: a lease doubles each time the last one was spent
//! within [`BUSY`], up to 1/[`SHARE`] of the limit (limits under 2·`SHARE` are never leased);
//! leased cells are spent within [`LEASE_TIME`] or dropped. The store counted them when
//! leased, so a busy subject is never admitted more than its limit plus the cells leased and
//! not yet spent (at most one lease per replica), and can be refused at most that many cells
//! early. Memory: at most [`CAPACITY`] subjects per replica; beyond that a new subject goes to
//! the store for each request until entries expire.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::rate::{Admission, Bucket, Rate};

/// How long an unanswered lease ask keeps others from asking for one (a request dropped
/// before its answer leaves the ask open this long).
const ASK_TIME: Duration = Duration::from_secs(1);
/// How long leased cells may be spent after they were taken.
const LEASE_TIME: Duration = Duration::from_millis(500);
/// A subject that needs a new lease within this time of the last one is busy: its next
/// lease is twice as large (else half).
const BUSY: Duration = Duration::from_millis(100);
/// A lease is at most this fraction of a limit's burst.
const SHARE: u64 = 16;
/// Subjects remembered per replica.
const CAPACITY: usize = 4096;

/// The leases of one replica (one [`super::Store`]).
pub(super) struct Leases {
    /// Keyed SipHash with a per-process key: subjects an attacker picks cannot be made to
    /// share an entry.
    hasher: RandomState,
    inner: Mutex<Inner>,
}

struct Inner {
    subjects: HashMap<u64, Lease>,
    /// No sweep of expired entries before this (a full map of live ones is not swept on
    /// every request).
    next_sweep: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    /// Cells left to spend, until `until`.
    cells: u64,
    until: Instant,
    /// Cells the store had left after the last lease, and when its bucket is full again.
    remaining: u64,
    reset: Instant,
    /// The store refused until then.
    refused_until: Instant,
    /// Cells to ask for next time, and when the last lease was taken.
    next: u64,
    taken: Option<Instant>,
    /// A lease is being asked for until then (or until its answer): concurrent requests ask
    /// for one cell each meanwhile, so 64 requests on an empty lease do not take 64 leases.
    asking_until: Instant,
}

impl Lease {
    fn live(&self, now: Instant) -> bool {
        self.until > now || self.refused_until > now || self.busy(now)
    }

    fn busy(&self, now: Instant) -> bool {
        self.taken
            .is_some_and(|t| now.saturating_duration_since(t) < BUSY)
    }
}

/// What the leases answer for one limit of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Local {
    /// Answered here: a leased cell spent, or a refusal still running.
    Answer(Admission),
    /// Ask the store for this many cells (hand the ask back to [`Leases::record`]).
    Ask(Ask),
}

/// An ask for cells: one for the request, the others (if any) for the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ask {
    pub want: u64,
    /// This ask takes the subject's next lease (one at a time per replica).
    lease: bool,
}

impl Ask {
    const ONE: Ask = Ask {
        want: 1,
        lease: false,
    };
}

impl Default for Leases {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            inner: Mutex::new(Inner {
                subjects: HashMap::new(),
                next_sweep: Instant::now(),
            }),
        }
    }
}

impl Leases {
    /// The entry of `subject` in `scope`.
    pub fn key(&self, scope: &str, subject: &str) -> u64 {
        self.hasher.hash_one((scope, subject))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Spends a leased cell of `key`, or answers a refusal that still runs; else says how
    /// many cells to ask the store for.
    pub fn spend(&self, key: u64, rate: Rate, now: Instant) -> Local {
        let mut inner = self.lock();
        let Some(lease) = inner.subjects.get_mut(&key) else {
            return Local::Ask(Ask::ONE);
        };
        if lease.refused_until > now {
            return Local::Answer(Admission::Refused {
                limit: rate.requests,
                retry_after: lease.refused_until - now,
            });
        }
        if lease.cells > 0 && lease.until > now {
            lease.cells -= 1;
            return Local::Answer(Admission::Allowed {
                limit: rate.requests,
                remaining: clamp(lease.remaining + lease.cells),
                reset: lease.reset.saturating_duration_since(now),
            });
        }
        if lease.next == 1 || lease.asking_until > now {
            return Local::Ask(Ask::ONE);
        }
        lease.asking_until = now + ASK_TIME;
        Local::Ask(Ask {
            want: lease.next,
            lease: true,
        })
    }

    /// Records the store's answer to `ask` for cells of `key`, one of them for the request
    /// itself, and answers that request.
    pub fn record(&self, key: u64, rate: Rate, ask: Ask, bucket: Bucket, now: Instant) -> Admission {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if !inner.subjects.contains_key(&key) && inner.subjects.len() >= CAPACITY && inner.next_sweep <= now {
            inner.subjects.retain(|_, lease| lease.live(now));
            inner.next_sweep = now + BUSY;
        }
        let fresh = Lease {
            cells: 0,
            until: now,
            remaining: 0,
            reset: now,
            refused_until: now,
            next: 1,
            taken: None,
            asking_until: now,
        };
        let full = inner.subjects.len() >= CAPACITY;
        let mut scratch = fresh;
        let lease = match inner.subjects.get_mut(&key) {
            Some(lease) => lease,
            None if full => &mut scratch,
            None => inner.subjects.entry(key).or_insert(fresh),
        };
        if ask.lease {
            lease.asking_until = now;
        }
        if bucket.granted == 0 {
            let retry_after = Duration::from_millis(bucket.remaining_or_wait);
            lease.cells = 0;
            lease.refused_until = now + retry_after;
            lease.next = 1;
            return Admission::Refused {
                limit: rate.requests,
                retry_after,
            };
        }
        // A subject's lease size follows its own asks: one-cell asks made while a lease was
        // being asked for say nothing about it. A one-cell ask is how every lease starts.
        if ask.lease || lease.next == 1 {
            let most = (u64::from(rate.requests) / SHARE).max(1);
            let want = ask.want;
            lease.next = if lease.busy(now) { want * 2 } else { want / 2 }.clamp(1, most);
            lease.taken = Some(now);
        }
        let unspent = if lease.until > now { lease.cells } else { 0 };
        lease.cells = unspent + bucket.granted - 1;
        if bucket.granted > 1 {
            lease.until = now + LEASE_TIME;
        }
        lease.remaining = bucket.remaining_or_wait;
        lease.reset = now + Duration::from_millis(bucket.reset_ms);
        Admission::Allowed {
            limit: rate.requests,
            remaining: clamp(lease.remaining + lease.cells),
            reset: Duration::from_millis(bucket.reset_ms),
        }
    }
}

fn clamp(n: u64) -> u32 {
    n.min(u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(requests: u32) -> Rate {
        Rate {
            requests,
            per: Duration::from_secs(60),
        }
    }

    fn granted(cells: u64) -> Bucket {
        Bucket {
            granted: cells,
            remaining_or_wait: 1000,
            reset_ms: 1000,
        }
    }

    /// Asks the store (which grants all) whenever the leases say so; returns the asks.
    fn run(leases: &Leases, key: u64, rate: Rate, requests: usize, now: Instant) -> Vec<u64> {
        let mut asks = Vec::new();
        for _ in 0..requests {
            if let Local::Ask(ask) = leases.spend(key, rate, now) {
                asks.push(ask.want);
                let answer = leases.record(key, rate, ask, granted(ask.want), now);
                assert!(matches!(answer, Admission::Allowed { .. }));
            }
        }
        asks
    }

    #[test]
    fn a_small_limit_is_never_leased() {
        let leases = Leases::default();
        let key = leases.key("par_per_client", "app");
        let asks = run(&leases, key, rate(31), 20, Instant::now());
        assert_eq!(
            asks, [1; 20],
            "one cell per request, every request asks the store"
        );
    }

    #[test]
    fn a_busy_subject_leases_more_each_time_up_to_a_sixteenth() {
        let leases = Leases::default();
        let key = leases.key("par_per_client", "app");
        let asks = run(&leases, key, rate(1600), 1000, Instant::now());
        assert_eq!(&asks[..9], [1, 1, 2, 4, 8, 16, 32, 64, 100]);
        assert!(asks[9..].iter().all(|&w| w == 100), "{asks:?}");
        assert!(asks.len() < 20, "1,000 requests took {} asks", asks.len());
    }

    #[test]
    fn leased_cells_are_dropped_after_the_lease_time_and_a_quiet_subject_shrinks() {
        let leases = Leases::default();
        let key = leases.key("par_per_client", "app");
        let start = Instant::now();
        run(&leases, key, rate(1600), 30, start);
        let later = start + LEASE_TIME + Duration::from_millis(1);
        let Local::Ask(ask) = leases.spend(key, rate(1600), later) else {
            panic!("cells left after the lease time were spent");
        };
        leases.record(key, rate(1600), ask, granted(ask.want), later);
        assert!(
            matches!(leases.spend(key, rate(1600), later), Local::Answer(_)),
            "the new lease is spent locally"
        );
        let quiet = later + LEASE_TIME * 2;
        let Local::Ask(again) = leases.spend(key, rate(1600), quiet) else {
            panic!("expired cells spent");
        };
        assert_eq!(again.want, ask.want / 2, "a subject no longer busy leases less");
    }

    #[test]
    fn one_lease_is_asked_for_at_a_time() {
        let leases = Leases::default();
        let key = leases.key("par_per_client", "app");
        let now = Instant::now();
        let first = loop {
            match leases.spend(key, rate(1600), now) {
                Local::Ask(ask) if ask.want > 1 => break ask,
                Local::Ask(ask) => {
                    leases.record(key, rate(1600), ask, granted(1), now);
                }
                Local::Answer(_) => {}
            }
        };
        // 63 more requests arrive before the store answered: one cell each, and the lease
        // they did not ask for keeps its size.
        let others: Vec<Ask> = (0..63)
            .map(|_| match leases.spend(key, rate(1600), now) {
                Local::Ask(ask) => ask,
                answer => panic!("{answer:?}"),
            })
            .collect();
        assert!(others.iter().all(|a| *a == Ask::ONE), "{others:?}");
        for ask in others {
            leases.record(key, rate(1600), ask, granted(1), now);
        }
        leases.record(key, rate(1600), first, granted(first.want), now);
        assert!(
            matches!(
                leases.spend(key, rate(1600), now + Duration::from_millis(1)),
                Local::Answer(Admission::Allowed { .. })
            ),
            "the lease's cells are spent here"
        );
    }

    #[test]
    fn a_refusal_is_answered_locally_until_its_retry_after() {
        let leases = Leases::default();
        let key = leases.key("par_per_address", "198.51.100.7");
        let now = Instant::now();
        let refused = Bucket {
            granted: 0,
            remaining_or_wait: 2000,
            reset_ms: 60_000,
        };
        assert_eq!(
            leases.record(key, rate(6000), Ask::ONE, refused, now),
            Admission::Refused {
                limit: 6000,
                retry_after: Duration::from_secs(2)
            }
        );
        assert_eq!(
            leases.spend(key, rate(6000), now + Duration::from_secs(1)),
            Local::Answer(Admission::Refused {
                limit: 6000,
                retry_after: Duration::from_secs(1)
            })
        );
        assert_eq!(
            leases.spend(key, rate(6000), now + Duration::from_secs(2)),
            Local::Ask(Ask::ONE)
        );
        let other = leases.key("par_per_address", "198.51.100.8");
        assert_eq!(
            leases.spend(other, rate(6000), now),
            Local::Ask(Ask::ONE),
            "subjects count apart"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let leases = Leases::default();
        let now = Instant::now();
        for n in 0..CAPACITY + 100 {
            let key = leases.key("par_per_address", &n.to_string());
            leases.record(key, rate(6000), Ask::ONE, granted(1), now);
        }
        assert_eq!(leases.lock().subjects.len(), CAPACITY);
        let later = now + LEASE_TIME + BUSY;
        let key = leases.key("par_per_address", "new");
        leases.record(key, rate(6000), Ask::ONE, granted(1), later);
        assert_eq!(leases.lock().subjects.len(), 1, "expired subjects swept");
    }
}
