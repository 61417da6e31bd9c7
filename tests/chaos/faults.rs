//! The chaos run's fault injector: picks faults at random (seeded) intervals, injects each
//! into the real processes (par-server replicas behind HAProxy, a Redis Cluster of three
//! primaries with one replica each), waits until the topology is whole again, and records
//! each as a [`Fault`] of the history.
//!
//! Blocking code: it runs on its own thread while the workload runs on the Tokio runtime.
//! Every wait is bounded; a topology that does not heal within a minute fails the run (an
//! infrastructure failure, reported with the seed to replay it).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::Rng;
use crate::harness::{Stack, http_get};
use crate::history::{Fault, FaultKind};
use crate::topology::{RedisCluster, RedisNode, poll};

/// How long a fault may take to heal before the run fails.
const HEAL_WITHIN: Duration = Duration::from_secs(60);

/// `ROLE` of a node, with socket timeouts (a paused node must not hang the injector).
#[derive(Debug, PartialEq, Eq)]
enum Role {
    /// A primary and the ports of the replicas it lists.
    Primary(Vec<u16>),
    /// A replica: its primary's port and whether the link is `connected`.
    Replica(u16, bool),
}

fn connection(node: &RedisNode) -> Option<redis::Connection> {
    let c = node.connection()?;
    c.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    c.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
    Some(c)
}

fn role(node: &RedisNode) -> Option<Role> {
    use redis::Value;
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    };
    let reply: Vec<Value> = redis::cmd("ROLE").query(&mut connection(node)?).ok()?;
    match text(reply.first()?)?.as_str() {
        "master" => {
            let Value::Array(replicas) = reply.get(2)? else {
                return None;
            };
            let ports = replicas
                .iter()
                .filter_map(|r| match r {
                    Value::Array(f) => text(f.get(1)?)?.parse().ok(),
                    _ => None,
                })
                .collect();
            Some(Role::Primary(ports))
        }
        "slave" => Some(Role::Replica(
            text(reply.get(2)?)?.parse().ok()?,
            text(reply.get(3)?)? == "connected",
        )),
        _ => None,
    }
}

/// `INFO replication`, or "" if the node does not answer in time (never panics).
pub fn replication(node: &RedisNode) -> String {
    connection(node)
        .and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c).ok())
        .unwrap_or_default()
}

fn cluster_ok(node: &RedisNode) -> bool {
    connection(node).is_some_and(|mut c| {
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query::<String>(&mut c)
            .is_ok_and(|i| i.contains("cluster_state:ok"))
    })
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}

pub struct Injector {
    pub cluster: RedisCluster,
    pub stack: Stack,
    pub rng: Rng,
    pub t0: Instant,
}

impl Injector {
    fn ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn index_of(&self, port: u16) -> Option<usize> {
        self.cluster.nodes.iter().position(|n| n.port == port)
    }

    /// (primary, its replica) as node indexes, one pair chosen at random.
    fn pair(&mut self) -> (usize, usize) {
        let pairs: Vec<(usize, usize)> = self
            .cluster
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match role(n)? {
                Role::Primary(replicas) => Some((i, self.index_of(*replicas.first()?)?)),
                Role::Replica(..) => None,
            })
            .collect();
        assert!(!pairs.is_empty(), "no primary with a replica");
        pairs[self.rng.below(pairs.len())]
    }

    fn describe(&self, i: usize) -> String {
        let what = match role(&self.cluster.nodes[i]) {
            Some(Role::Primary(_)) => "primary",
            Some(Role::Replica(..)) => "replica",
            None => "?",
        };
        format!("redis :{} ({what})", self.cluster.nodes[i].port)
    }

    /// Three primaries, each with a connected replica; every node says `cluster_state:ok`;
    /// every par-server replica ready and UP at HAProxy.
    pub fn healthy(&mut self) -> bool {
        let nodes = &mut self.cluster.nodes;
        if !nodes.iter_mut().all(|n| n.is_running()) {
            return false;
        }
        let roles: Vec<Option<Role>> = nodes.iter().map(role).collect();
        let primaries: Vec<u16> = nodes
            .iter()
            .zip(&roles)
            .filter(|(_, r)| matches!(r, Some(Role::Primary(_))))
            .map(|(n, _)| n.port)
            .collect();
        let replicas_ok = roles.iter().all(|r| match r {
            Some(Role::Primary(reps)) => !reps.is_empty(),
            Some(Role::Replica(p, connected)) => *connected && primaries.contains(p),
            None => false,
        });
        primaries.len() == 3
            && replicas_ok
            && nodes.iter().all(cluster_ok)
            && self
                .stack
                .replicas
                .iter()
                .all(|r| http_get(r.port, "/readyz").is_some_and(|(s, _)| s == 200))
            && {
                let s = self.stack.lb.servers();
                let checked: Vec<_> = s.iter().filter(|(n, _)| !n.ends_with("-backup")).collect();
                !checked.is_empty() && checked.iter().all(|(_, st)| st == "UP")
            }
    }

    /// Waits (bounded) until [`Injector::healthy`]; panics naming `what` otherwise.
    pub fn heal(&mut self, what: &str) {
        let deadline = Instant::now() + HEAL_WITHIN;
        while !self.healthy() {
            assert!(
                Instant::now() < deadline,
                "{what}: the topology did not heal within {HEAL_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_primary(&self, i: usize, what: &str) {
        assert!(
            poll(Duration::from_secs(30), || matches!(
                role(&self.cluster.nodes[i]),
                Some(Role::Primary(_))
            )),
            "{what}: node :{} was not promoted",
            self.cluster.nodes[i].port
        );
    }

    /// Injects one fault, waits until healed, and returns its record.
    pub fn inject(&mut self, kind: FaultKind) -> Fault {
        let start_ms = self.ms();
        let mut crash_ms = None;
        let target = match kind {
            FaultKind::ReplicaKill9 => {
                let i = self.rng.below(self.stack.replicas.len());
                let killed = self.ms();
                self.stack.replicas[i].kill9();
                crash_ms = Some((killed, self.ms()));
                std::thread::sleep(Duration::from_secs(1));
                self.stack.replicas[i].restart();
                format!("par-server replica {i}")
            }
            FaultKind::RollingRestart => {
                for i in 0..self.stack.replicas.len() {
                    let r = &mut self.stack.replicas[i];
                    r.signal("TERM");
                    let status = r.wait_exit(Duration::from_secs(15));
                    assert!(
                        status.is_some_and(|s| s.success()),
                        "replica {i} did not exit 0 after SIGTERM: {status:?}\n{}",
                        r.log_tail()
                    );
                    r.restart();
                    self.heal("rolling restart");
                }
                "every par-server replica, one at a time".into()
            }
            FaultKind::ClusterFailover => {
                let (p, r) = self.pair();
                let target = format!("{} → {}", self.describe(p), self.describe(r));
                let _: String = self.cluster.nodes[r].cmd(&["CLUSTER", "FAILOVER"]);
                self.wait_primary(r, "CLUSTER FAILOVER");
                target
            }
            FaultKind::PrimaryKill => {
                let (p, r) = self.pair();
                let target = self.describe(p);
                self.cluster.nodes[p].stop();
                self.wait_primary(r, "primary kill");
                self.cluster.nodes[p].restart();
                target
            }
            FaultKind::PauseNode => {
                let i = self.rng.below(self.cluster.nodes.len());
                let target = self.describe(i);
                let pid = self.cluster.nodes[i].pid().expect("running");
                let pause = self.rng.range(1000, 3000);
                signal(pid, "STOP");
                std::thread::sleep(Duration::from_millis(pause));
                signal(pid, "CONT");
                format!("{target}, {pause} ms")
            }
            FaultKind::RedisRestart => {
                let i = self.rng.below(self.cluster.nodes.len());
                let target = self.describe(i);
                let node = &mut self.cluster.nodes[i];
                signal(node.pid().expect("running"), "TERM");
                assert!(
                    poll(Duration::from_secs(15), || !node.is_running()),
                    "redis :{} did not stop on SIGTERM",
                    node.port
                );
                node.restart();
                target
            }
            FaultKind::LaggingFailover => {
                let (p, r) = self.pair();
                let target = format!("{} after 1.5 s cut off from its replica", self.describe(p));
                let pid = self.cluster.nodes[r].pid().expect("running");
                // Paused, the replica cannot reconnect; dropping the link discards what the
                // primary had not yet written to the socket (a paused process would still
                // read whatever reached its socket buffer, so a pause alone loses nothing).
                signal(pid, "STOP");
                let _: i64 = self.cluster.nodes[p].cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
                std::thread::sleep(Duration::from_millis(1500));
                self.cluster.nodes[p].stop();
                signal(pid, "CONT");
                self.wait_primary(r, "lagging failover");
                self.cluster.nodes[p].restart();
                target
            }
        };
        self.heal(&format!("{kind:?} {target}"));
        Fault {
            kind,
            target,
            start_ms,
            healed_ms: self.ms(),
            crash_ms,
        }
    }

    /// Faults until `until` (ms since the start) and every kind at least once: first every
    /// kind in a seeded random order, then kinds at random; 1–3 s of quiet before each.
    pub fn run(&mut self, until: u64) -> Vec<Fault> {
        let mut order = FaultKind::ALL.to_vec();
        for i in (1..order.len()).rev() {
            order.swap(i, self.rng.below(i + 1));
        }
        let mut faults = Vec::new();
        loop {
            let gap = self.rng.range(1000, 3000);
            std::thread::sleep(Duration::from_millis(gap));
            if self.ms() >= until && order.is_empty() {
                return faults;
            }
            let kind = order
                .pop()
                .unwrap_or_else(|| FaultKind::ALL[self.rng.below(FaultKind::ALL.len())]);
            let f = self.inject(kind);
            println!(
                "  fault {:>6} ms  {:?} {} (healed in {} ms)",
                f.start_ms,
                f.kind,
                f.target,
                f.healed_ms - f.start_ms
            );
            faults.push(f);
        }
    }
}
