//! The arithmetic of the limits (`store::limits`), shared by both backends: GCRA on a
//! stored theoretical arrival time, the password back-off schedule, and the types they
//! answer with. No I/O.

use std::time::Duration;

/// `requests` per `per`, in a burst or spread out (GCRA: one request every `per/requests`,
/// up to `requests` at once). `requests == 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub requests: u32,
    pub per: Duration,
}

impl Rate {
    pub fn is_off(&self) -> bool {
        self.requests == 0 || self.per.is_zero()
    }

    /// The emission interval in ms (at least 1).
    pub(crate) fn interval_ms(&self) -> u64 {
        (self.per.as_millis() as u64 / u64::from(self.requests.max(1))).max(1)
    }
}

/// Password failures: the first `free` cost nothing; after the `free`-th and each later one
/// the next attempt must wait `base`, `2·base`, `4·base` … at most `max`. Counting starts
/// over `forget` after the last failure, or at a successful login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub free: u32,
    pub base: Duration,
    pub max: Duration,
    pub forget: Duration,
}

/// A limit's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go on; `remaining` more fit in the limit now, which is full again after `reset`.
    Allowed {
        limit: u32,
        remaining: u32,
        reset: Duration,
    },
    /// Refused: try again after `retry_after`.
    Refused { limit: u32, retry_after: Duration },
}

impl Admission {
    /// Combines the answers of several limits: refused if any refused (with the longest
    /// wait), else the tightest allowance.
    pub fn all(answers: impl IntoIterator<Item = Admission>) -> Option<Admission> {
        answers.into_iter().reduce(|a, b| match (a, b) {
            (Admission::Refused { retry_after: x, .. }, Admission::Refused { retry_after: y, .. }) => {
                if x >= y { a } else { b }
            }
            (Admission::Refused { .. }, _) => a,
            (_, Admission::Refused { .. }) => b,
            (Admission::Allowed { remaining: x, .. }, Admission::Allowed { remaining: y, .. }) => {
                if x <= y {
                    a
                } else {
                    b
                }
            }
        })
    }
}

/// What a backend's GCRA step answers: how many of the cells asked for were `granted` (0:
/// refused), the cells still free after them (granted) or the wait in ms until one is
/// (refused), and ms until the bucket is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub granted: u64,
    pub remaining_or_wait: u64,
    pub reset_ms: u64,
}

/// GCRA (the generic cell rate algorithm) on a stored theoretical arrival time `tat`:
/// the one formula both backends apply (the Redis script mirrors it line by line). Takes up
/// to `want` cells at once (a replica's lease, `store::lease`; 1 for one request): as many
/// as fit now, each moving `tat` one interval on. Returns the answer and the new `tat` to
/// store (with its TTL in ms), if any cell was granted.
pub(crate) fn gcra(
    now: u64,
    tat: Option<u64>,
    interval: u64,
    burst: u64,
    want: u64,
) -> (Bucket, Option<(u64, u64)>) {
    let limit = interval * burst;
    let tat = tat.unwrap_or(now).max(now);
    let used = tat - now;
    let fits = limit.saturating_sub(used) / interval;
    let granted = want.max(1).min(fits);
    if granted == 0 {
        let bucket = Bucket {
            granted: 0,
            remaining_or_wait: used + interval - limit,
            reset_ms: used,
        };
        return (bucket, None);
    }
    let ahead = used + granted * interval;
    let bucket = Bucket {
        granted,
        remaining_or_wait: fits - granted,
        reset_ms: ahead,
    };
    (bucket, Some((tat + granted * interval, ahead)))
}

/// The back-off after the `n`-th counted failure (ms): 0 for the first `free - 1`, then
/// `base · 2^k`, at most `max`.
pub(crate) fn backoff_after(n: u64, free: u64, base_ms: u64, max_ms: u64) -> u64 {
    if n < free.max(1) {
        return 0;
    }
    let k = (n - free.max(1)).min(32) as u32;
    base_ms.saturating_mul(1u64 << k).min(max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_a_burst_then_one_per_interval() {
        // 3 per 3 s: interval 1000 ms, burst 3.
        let (mut tat, mut answers) = (None, Vec::new());
        for _ in 0..4 {
            let (b, next) = gcra(10_000, tat, 1000, 3, 1);
            answers.push(b);
            if let Some((t, _)) = next {
                tat = Some(t);
            }
        }
        assert!(answers[..3].iter().all(|b| b.granted == 1));
        assert_eq!(answers[2].remaining_or_wait, 0);
        assert_eq!(answers[3].granted, 0);
        assert_eq!(
            answers[3].remaining_or_wait, 1000,
            "the next slot frees in one interval"
        );
        let (later, _) = gcra(11_000, tat, 1000, 3, 1);
        assert_eq!(later.granted, 1, "one interval later one more fits");
    }

    #[test]
    fn gcra_grants_a_lease_up_to_what_fits() {
        // 10 per 10 s: a lease of 4, then of 8 gets the 6 left, then nothing.
        let (first, next) = gcra(0, None, 1000, 10, 4);
        assert_eq!(
            (first.granted, first.remaining_or_wait, first.reset_ms),
            (4, 6, 4000)
        );
        let tat = next.map(|(t, _)| t);
        let (second, next) = gcra(0, tat, 1000, 10, 8);
        assert_eq!((second.granted, second.remaining_or_wait), (6, 0));
        let tat = next.map(|(t, _)| t);
        let (third, none) = gcra(0, tat, 1000, 10, 8);
        assert_eq!((third.granted, third.remaining_or_wait), (0, 1000));
        assert!(none.is_none(), "a refusal stores nothing");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff_after(n, 3, 1000, 5000)).collect();
        assert_eq!(waits, [0, 0, 1000, 2000, 4000, 5000, 5000, 5000]);
    }

    #[test]
    fn the_strictest_answer_wins() {
        let ok = |r| Admission::Allowed {
            limit: 10,
            remaining: r,
            reset: Duration::ZERO,
        };
        let no = |s| Admission::Refused {
            limit: 10,
            retry_after: Duration::from_secs(s),
        };
        assert_eq!(Admission::all([ok(5), ok(2)]), Some(ok(2)));
        assert_eq!(Admission::all([ok(5), no(3), no(7)]), Some(no(7)));
        assert_eq!(Admission::all([]), None);
    }
}
