//! The chaos run's history and the checker that judges it.
//!
//! The workload records every request it makes as an [`Op`] (which step of which flow, when
//! it started and ended, what came back, the `request_uri` and code involved); the fault
//! injector records every [`Fault`] (what, on which node, when it began and when the system
//! was whole again). [`check`] then proves, from those records alone:
//! - no `request_uri` was authorized twice (at most one code handed out per pushed request,
//!   whether by `/authorize` with an SSO session, the login form, or a later replay of either);
//! - no code was redeemed twice (at most one `200` from `/token` per code);
//! - every failure is a clean OAuth error (the service's JSON, error page or `error=`
//!   redirect) or its `503 temporarily_unavailable`. The only exception: a request that was
//!   in flight *at* a replica killed with SIGKILL may fail at the load balancer (a dead
//!   process cannot answer); it is counted as excused, never silently;
//! - no request took longer than the bound derived from the configured timeouts;
//!
//! and summarises, per fault, the failed requests and the time until the last of them.
//! It is a pure function over the history, so its own tests below feed it hand-made
//! histories with the violations it must find.

use std::collections::BTreeMap;

use serde::Serialize;

/// One request of a flow. Replays re-send a step that already succeeded, some seconds
/// later, as an attacker or a confused browser would: they must all fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Push,
    Authorize,
    Login,
    Token,
    ReplayAuthorize,
    ReplayLogin,
    ReplayToken,
}

impl Step {
    pub fn is_replay(self) -> bool {
        matches!(
            self,
            Step::ReplayAuthorize | Step::ReplayLogin | Step::ReplayToken
        )
    }

    /// A step that hands out a code for a `request_uri` when it succeeds.
    fn authorizes(self) -> bool {
        matches!(
            self,
            Step::Authorize | Step::Login | Step::ReplayAuthorize | Step::ReplayLogin
        )
    }

    fn redeems(self) -> bool {
        matches!(self, Step::Token | Step::ReplayToken)
    }
}

/// What one request got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The step did its job: a `request_uri` (push), a login page or a code (authorize,
    /// login), tokens (token).
    Ok,
    /// The service's own OAuth error: JSON `error`, the error page's code, or a redirect to
    /// the client with `error=` (`temporarily_unavailable` is the 503).
    OAuth { status: u16, error: String },
    /// `500` from the service: never acceptable.
    ServerError,
    /// A 5xx the load balancer made itself (no OAuth body).
    Lb(u16),
    /// The connection failed or no answer came before the client's timeout.
    Transport(String),
    /// Anything else (an unexpected status or body).
    Other(String),
}

impl Answer {
    pub fn is_ok(&self) -> bool {
        matches!(self, Answer::Ok)
    }

    /// A label for tallies: `ok`, the OAuth error code, `500`, `lb 502`, `transport`, `other`.
    pub fn label(&self) -> String {
        match self {
            Answer::Ok => "ok".into(),
            Answer::OAuth { status, error } => format!("{status} {error}"),
            Answer::ServerError => "500".into(),
            Answer::Lb(s) => format!("lb {s}"),
            Answer::Transport(_) => "transport".into(),
            Answer::Other(_) => "other".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Op {
    pub flow: u64,
    pub step: Step,
    /// Milliseconds since the run started.
    pub start_ms: u64,
    pub end_ms: u64,
    pub answer: Answer,
    pub request_uri: Option<String>,
    /// The code handed out (authorize, login) or presented (token).
    pub code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `kill -9` of a par-server replica, restarted a second later.
    ReplicaKill9,
    /// SIGTERM to each par-server replica in turn, each restarted after it exited.
    RollingRestart,
    /// `CLUSTER FAILOVER` on a primary's replica (the coordinated, lossless switch).
    ClusterFailover,
    /// `kill -9` of a Redis primary; its replica is promoted; the old one rejoins.
    PrimaryKill,
    /// SIGSTOP of a Redis node (primary or replica) for 1–3 s, then SIGCONT.
    PauseNode,
    /// A Redis node stopped with SIGTERM and started again on the same port (no persistence).
    RedisRestart,
    /// A primary's replica cut off (SIGSTOP, replication link dropped) while the primary
    /// keeps taking records for 1.5 s, then the primary killed and the stale replica
    /// promoted: the failover that loses acknowledged writes (docs/redis.md, "Why no record
    /// can be redeemed twice").
    LaggingFailover,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        FaultKind::ReplicaKill9,
        FaultKind::RollingRestart,
        FaultKind::ClusterFailover,
        FaultKind::PrimaryKill,
        FaultKind::PauseNode,
        FaultKind::RedisRestart,
        FaultKind::LaggingFailover,
    ];

    /// A failover after which acknowledged writes (here: deletions) may be missing on the
    /// new primary.
    fn can_lose_writes(self) -> bool {
        matches!(
            self,
            FaultKind::PrimaryKill | FaultKind::LaggingFailover | FaultKind::PauseNode
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// Which node(s), e.g. `replica 2` or `redis :7003 (primary)`.
    pub target: String,
    pub start_ms: u64,
    /// When the topology was whole again (cluster ok, every primary with a synced replica,
    /// every replica UP at the load balancer).
    pub healed_ms: u64,
    /// From the SIGKILL of a par-server replica until the process was gone, if one was.
    pub crash_ms: Option<(u64, u64)>,
}

/// The limits the checker applies.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bounds {
    /// No request may take longer (the configured Redis timeouts per request, with margin).
    pub hang_ms: u64,
}

/// A record used twice.
#[derive(Debug, Clone, Serialize)]
pub struct Double {
    /// The `request_uri` or the code.
    pub what: String,
    /// (flow, step, start_ms, end_ms) of every successful use, in time order.
    pub uses: Vec<(u64, Step, u64, u64)>,
    /// The fault during which the first use happened, if it is one that can lose writes.
    pub explained_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FaultSummary {
    pub kind: FaultKind,
    pub target: String,
    pub start_ms: u64,
    pub heal_ms: u64,
    /// Non-replay requests that started between this fault and the next.
    pub requests: usize,
    /// Non-replay failures that ended between this fault and the next, by step and answer.
    pub failed: BTreeMap<String, usize>,
    /// From the fault to the end of the last failed request it caused (0: none failed).
    pub recovered_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub requests: usize,
    pub flows_ok: usize,
    pub flows: usize,
    pub answers: BTreeMap<String, usize>,
    pub double_authorizations: Vec<Double>,
    pub double_redemptions: Vec<Double>,
    /// Failures that are neither a clean OAuth error nor excused.
    pub unclean: Vec<Op>,
    /// LB errors / transport failures of requests in flight at a SIGKILLed replica.
    pub excused: usize,
    pub hangs: Vec<Op>,
    pub slowest_ms: u64,
    /// Non-replay failures before the first fault (reported: on an overloaded box a Redis
    /// call can pass `command_timeout_ms` without a fault, which is a clean 503).
    pub before_faults: BTreeMap<String, usize>,
    pub per_fault: Vec<FaultSummary>,
}

impl Verdict {
    /// Every double use happened across a fault that can lose acknowledged writes.
    pub fn doubles_all_explained(&self) -> bool {
        self.double_authorizations
            .iter()
            .chain(&self.double_redemptions)
            .all(|d| d.explained_by.is_some())
    }

    pub fn doubles(&self) -> usize {
        self.double_authorizations.len() + self.double_redemptions.len()
    }
}

/// Slack for comparing the workload's clock with the injector's (both `Instant`-based,
/// rounded to ms).
const SLACK_MS: u64 = 100;

pub fn check(ops: &[Op], faults: &[Fault], bounds: Bounds) -> Verdict {
    let mut faults = faults.to_vec();
    faults.sort_by_key(|f| f.start_ms);
    let explain = |first_use_end: u64| {
        faults
            .iter()
            .filter(|f| f.kind.can_lose_writes())
            .find(|f| f.start_ms.saturating_sub(SLACK_MS) <= first_use_end && first_use_end <= f.healed_ms)
            .map(|f| format!("{:?} {} at {} ms", f.kind, f.target, f.start_ms))
    };
    let doubles = |what: fn(&Op) -> Option<&String>, counts: fn(&Op) -> bool| {
        let mut uses: BTreeMap<&String, Vec<&Op>> = BTreeMap::new();
        for op in ops.iter().filter(|o| o.answer.is_ok() && counts(o)) {
            if let Some(key) = what(op) {
                uses.entry(key).or_default().push(op);
            }
        }
        uses.into_iter()
            .filter(|(_, u)| u.len() > 1)
            .map(|(key, mut u)| {
                u.sort_by_key(|o| o.end_ms);
                Double {
                    what: key.clone(),
                    explained_by: explain(u[0].end_ms),
                    uses: u.iter().map(|o| (o.flow, o.step, o.start_ms, o.end_ms)).collect(),
                }
            })
            .collect::<Vec<_>>()
    };
    // An authorization is a code handed out for a request_uri; a redemption is tokens for a code.
    let double_authorizations = doubles(
        |o| o.request_uri.as_ref(),
        |o| o.step.authorizes() && o.code.is_some(),
    );
    let double_redemptions = doubles(|o| o.code.as_ref(), |o| o.step.redeems());

    // A request HAProxy had already connected to the dying process (in flight, or still in
    // its accept queue) cannot be answered; one that came after the process was gone is
    // refused at connect and retried on another replica, so it must succeed.
    let crashes: Vec<(u64, u64)> = faults.iter().filter_map(|f| f.crash_ms).collect();
    let in_flight_at_crash = |o: &Op| {
        crashes
            .iter()
            .any(|&(from, to)| o.start_ms <= to + SLACK_MS / 5 && o.end_ms + SLACK_MS / 5 >= from)
    };
    let mut unclean = Vec::new();
    let mut excused = 0;
    let mut answers = BTreeMap::new();
    for o in ops {
        *answers.entry(o.answer.label()).or_insert(0) += 1;
        match &o.answer {
            Answer::Ok | Answer::OAuth { .. } => {}
            Answer::Lb(_) | Answer::Transport(_) if in_flight_at_crash(o) => excused += 1,
            _ => unclean.push(o.clone()),
        }
    }
    let hangs: Vec<Op> = ops
        .iter()
        .filter(|o| o.end_ms - o.start_ms > bounds.hang_ms)
        .cloned()
        .collect();

    // Flows: a flow is ok when its first token step succeeded.
    let mut flows: BTreeMap<u64, bool> = BTreeMap::new();
    for o in ops.iter().filter(|o| !o.step.is_replay()) {
        let ok = flows.entry(o.flow).or_insert(false);
        *ok |= o.step == Step::Token && o.answer.is_ok();
    }

    let failed = |o: &&Op| !o.step.is_replay() && !o.answer.is_ok();
    let tally = |ops: Vec<&Op>| {
        let mut m = BTreeMap::new();
        for o in ops {
            *m.entry(format!("{:?} {}", o.step, o.answer.label())).or_insert(0) += 1;
        }
        m
    };
    let first = faults.first().map_or(u64::MAX, |f| f.start_ms);
    let before_faults = tally(ops.iter().filter(failed).filter(|o| o.end_ms < first).collect());
    let per_fault = faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let until = faults.get(i + 1).map_or(u64::MAX, |n| n.start_ms);
            let during = |t: u64| f.start_ms <= t && t < until;
            let window: Vec<&Op> = ops
                .iter()
                .filter(|o| !o.step.is_replay() && during(o.start_ms))
                .collect();
            // A failure belongs to the fault that was the latest when it ended (a request
            // started before the next fault and failed by it is that fault's).
            let fails: Vec<&Op> = ops
                .iter()
                .filter(|o| !o.step.is_replay() && !o.answer.is_ok() && during(o.end_ms))
                .collect();
            FaultSummary {
                kind: f.kind,
                target: f.target.clone(),
                start_ms: f.start_ms,
                heal_ms: f.healed_ms - f.start_ms,
                requests: window.len(),
                recovered_ms: fails.iter().map(|o| o.end_ms - f.start_ms).max().unwrap_or(0),
                failed: tally(fails),
            }
        })
        .collect();

    Verdict {
        requests: ops.len(),
        flows_ok: flows.values().filter(|ok| **ok).count(),
        flows: flows.len(),
        answers,
        double_authorizations,
        double_redemptions,
        unclean,
        excused,
        slowest_ms: ops.iter().map(|o| o.end_ms - o.start_ms).max().unwrap_or(0),
        hangs,
        before_faults,
        per_fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(flow: u64, step: Step, at: u64, answer: Answer, uri: &str, code: Option<&str>) -> Op {
        Op {
            flow,
            step,
            start_ms: at,
            end_ms: at + 10,
            answer,
            request_uri: Some(uri.into()),
            code: code.map(Into::into),
        }
    }

    fn fault(kind: FaultKind, start_ms: u64, healed_ms: u64, crash_ms: Option<(u64, u64)>) -> Fault {
        Fault {
            kind,
            target: "t".into(),
            start_ms,
            healed_ms,
            crash_ms,
        }
    }

    const B: Bounds = Bounds { hang_ms: 1000 };

    fn clean_flow(flow: u64, at: u64) -> Vec<Op> {
        let (uri, code) = (format!("u{flow}"), format!("c{flow}"));
        vec![
            op(flow, Step::Push, at, Answer::Ok, &uri, None),
            op(flow, Step::Authorize, at + 20, Answer::Ok, &uri, Some(&code)),
            op(flow, Step::Token, at + 40, Answer::Ok, &uri, Some(&code)),
            op(
                flow,
                Step::ReplayToken,
                at + 5000,
                Answer::OAuth {
                    status: 400,
                    error: "invalid_grant".into(),
                },
                &uri,
                Some(&code),
            ),
        ]
    }

    #[test]
    fn a_clean_history_passes() {
        let ops: Vec<Op> = (0..5).flat_map(|f| clean_flow(f, f * 100)).collect();
        let v = check(&ops, &[], B);
        assert_eq!((v.flows, v.flows_ok, v.doubles()), (5, 5, 0));
        assert!(v.unclean.is_empty() && v.hangs.is_empty() && v.before_faults.is_empty());
    }

    #[test]
    fn a_replayed_code_that_succeeds_is_a_double_redemption() {
        let mut ops = clean_flow(1, 0);
        ops[3].answer = Answer::Ok;
        let v = check(&ops, &[], B);
        assert_eq!(v.double_redemptions.len(), 1);
        assert_eq!(v.double_redemptions[0].what, "c1");
        assert!(v.double_authorizations.is_empty());
        assert!(!v.doubles_all_explained(), "no fault, so nothing explains it");
    }

    #[test]
    fn a_second_code_for_one_request_uri_is_a_double_authorization() {
        let mut ops = clean_flow(1, 0);
        ops.push(op(1, Step::ReplayLogin, 3000, Answer::Ok, "u1", Some("c1-again")));
        let v = check(&ops, &[fault(FaultKind::LaggingFailover, 10, 9000, None)], B);
        assert_eq!(v.double_authorizations.len(), 1);
        assert_eq!(v.double_authorizations[0].uses.len(), 2);
        assert!(
            v.doubles_all_explained(),
            "the first use fell inside a failover that can lose writes"
        );
        let v = check(&ops, &[fault(FaultKind::ClusterFailover, 10, 9000, None)], B);
        assert!(!v.doubles_all_explained(), "a coordinated failover loses nothing");
    }

    #[test]
    fn a_500_is_unclean_and_a_lb_error_only_excused_at_a_crash() {
        let mut ops = clean_flow(1, 0);
        ops[1].answer = Answer::ServerError;
        ops.push(op(2, Step::Push, 1000, Answer::Lb(502), "u2", None));
        ops.push(op(3, Step::Push, 2000, Answer::Lb(502), "u3", None));
        let crash = fault(FaultKind::ReplicaKill9, 1005, 1500, Some((1005, 1040)));
        let v = check(&ops, &[crash], B);
        assert_eq!(v.excused, 1, "flow 2 was in flight at the kill");
        let unclean: Vec<u64> = v.unclean.iter().map(|o| o.flow).collect();
        assert_eq!(unclean, [1, 3]);
    }

    #[test]
    fn a_slow_answer_is_a_hang() {
        let mut ops = clean_flow(1, 0);
        ops[2].end_ms = ops[2].start_ms + 1001;
        assert_eq!(check(&ops, &[], B).hangs.len(), 1);
    }

    #[test]
    fn failures_are_attributed_to_the_fault_before_them() {
        let unavailable = Answer::OAuth {
            status: 503,
            error: "temporarily_unavailable".into(),
        };
        let mut ops = clean_flow(1, 0);
        ops.push(op(2, Step::Push, 1200, unavailable.clone(), "u2", None));
        ops.push(op(3, Step::Push, 1700, unavailable, "u3", None));
        ops.extend(clean_flow(4, 2100));
        let faults = [
            fault(FaultKind::PrimaryKill, 1000, 1900, None),
            fault(FaultKind::PauseNode, 2000, 2500, None),
        ];
        let v = check(&ops, &faults, B);
        assert_eq!(v.per_fault[0].failed["Push 503 temporarily_unavailable"], 2);
        assert_eq!(v.per_fault[0].recovered_ms, 710);
        assert_eq!(v.per_fault[1].recovered_ms, 0);
        assert_eq!(v.per_fault[1].requests, 3);
    }
}
