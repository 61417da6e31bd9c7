#![allow(dead_code)] // shared by every test target; each uses a part
//! Real Redis for every test target: standalone servers, a Redis Cluster built with
//! `redis-cli --cluster create`, and a Sentinel group (primary, replica, three sentinels).
//! Every process runs on a free loopback port from the OS, in its own temp dir, and is
//! killed when its guard drops (also when a test panics). No mocks.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when the guard drops, also when a test panics.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` every 50 ms until it is true or `within` passes; returns whether it became true.
pub fn poll(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One `redis-server` (or sentinel) process, killed on drop.
pub struct RedisNode {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    pub dir: tempfile::TempDir,
    /// A sentinel: started with a config file and `--sentinel`.
    sentinel: Option<String>,
}

impl RedisNode {
    /// A data node with these extra `redis-server` arguments.
    pub fn start(extra: &[&str]) -> Self {
        let mut n = Self {
            child: None,
            port: free_port(),
            args: extra.iter().map(|s| s.to_string()).collect(),
            dir: tempfile::tempdir().unwrap(),
            sentinel: None,
        };
        n.restart();
        n
    }

    /// A sentinel monitoring `master` at `primary_port`.
    pub fn start_sentinel(master: &str, primary_port: u16, quorum: u32) -> Self {
        let conf = format!(
            "port {{PORT}}\nbind 127.0.0.1\nsentinel resolve-hostnames no\n\
             sentinel monitor {master} 127.0.0.1 {primary_port} {quorum}\n\
             sentinel down-after-milliseconds {master} 1000\n\
             sentinel failover-timeout {master} 4000\n\
             sentinel parallel-syncs {master} 1\n"
        );
        let mut n = Self {
            child: None,
            port: free_port(),
            args: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            sentinel: Some(conf),
        };
        n.restart();
        n
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// (Re)starts on the same port and waits until it answers PING.
    pub fn restart(&mut self) {
        self.stop();
        let mut cmd = Command::new("redis-server");
        if let Some(conf) = &self.sentinel {
            let path = self.dir.path().join("sentinel.conf");
            // A sentinel rewrites its config; keep what it learned across restarts.
            if !path.exists() {
                std::fs::write(&path, conf.replace("{PORT}", &self.port.to_string())).unwrap();
            }
            cmd.arg(&path).arg("--sentinel");
        } else {
            cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(self.dir.path())
                .args(&self.args);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        assert!(
            poll(Duration::from_secs(10), || self.ping()),
            "redis on port {} did not start",
            self.port
        );
    }

    /// SIGKILL: no shutdown, no goodbye to clients (a crash).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server answers `PING` on its plain port (a `-NOAUTH` answer counts: it is up,
    /// just protected). Raw RESP, so no client handshake can get in the way.
    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) =
            std::net::TcpStream::connect_timeout(&self.addr().parse().unwrap(), Duration::from_millis(300))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 64];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| n > 0 && (buf[0] == b'+' || buf[0] == b'-'))
            && !buf.starts_with(b"-LOADING")
    }

    pub fn connection(&self) -> Option<redis::Connection> {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .ok()
    }

    /// Runs one command; panics on failure (test set-up only).
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut c = self.connection().expect("connect");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut c)
            .unwrap_or_else(|e| panic!("{args:?} on {}: {e}", self.port))
    }

    /// Every key of a flow currently stored: the rate-limit buckets and password back-offs
    /// (`rl:{…}`, `pw:{…}`, src/store/limits.rs) that every request leaves, and `/readyz`'s
    /// write probe (`health:{probe}`), are not listed.
    pub fn keys(&self) -> Vec<String> {
        let all: Vec<String> = self.cmd(&["KEYS", "*"]);
        all.into_iter()
            .filter(|k| !["rl:{", "pw:{", "health:{"].iter().any(|p| k.contains(p)))
            .collect()
    }

    pub fn info(&self, section: &str) -> String {
        self.cmd(&["INFO", section])
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster: `masters` primaries, each with `replicas` replicas.
pub struct RedisCluster {
    pub nodes: Vec<RedisNode>,
}

impl RedisCluster {
    pub fn start(masters: usize, replicas: usize) -> Self {
        let nodes: Vec<RedisNode> = (0..masters * (1 + replicas))
            .map(|_| {
                let bus = free_port().to_string();
                RedisNode::start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(n.addr());
        }
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed (scripts/test.sh installs redis-tools)");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let c = Self { nodes };
        assert!(
            poll(Duration::from_secs(20), || c.is_ok()),
            "cluster did not reach cluster_state:ok"
        );
        c
    }

    /// Every node says `cluster_state:ok` and the replicas are attached.
    pub fn is_ok(&self) -> bool {
        self.nodes.iter().all(|n| {
            n.connection().is_some_and(|mut c| {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut c)
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            })
        })
    }

    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().take(3).map(RedisNode::url).collect()
    }

    /// Node id of a node (`CLUSTER MYID`).
    pub fn id(node: &RedisNode) -> String {
        node.cmd(&["CLUSTER", "MYID"])
    }

    /// Indexes of the nodes that are primaries now.
    pub fn primaries(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.connection().is_some() && n.info("replication").contains("role:master"))
            .map(|(i, _)| i)
            .collect()
    }

    /// Number of keys matching `pattern` over all primaries.
    pub fn count_keys(&self, pattern: &str) -> usize {
        self.primaries()
            .into_iter()
            .map(|i| {
                let keys: Vec<String> = self.nodes[i].cmd(&["KEYS", pattern]);
                keys.len()
            })
            .sum()
    }
}

/// A Sentinel group: one primary, one replica, three sentinels (quorum 2).
pub struct SentinelGroup {
    pub data: Vec<RedisNode>,
    pub sentinels: Vec<RedisNode>,
    pub master: String,
}

impl SentinelGroup {
    pub fn start() -> Self {
        let master = "parmaster".to_owned();
        let primary = RedisNode::start(&[]);
        let replica_of = primary.port.to_string();
        let replica = RedisNode::start(&["--replicaof", "127.0.0.1", &replica_of]);
        assert!(
            poll(Duration::from_secs(10), || replica
                .info("replication")
                .contains("master_link_status:up")),
            "replica did not sync"
        );
        let sentinels = (0..3)
            .map(|_| RedisNode::start_sentinel(&master, primary.port, 2))
            .collect();
        let g = Self {
            data: vec![primary, replica],
            sentinels,
            master,
        };
        // Sentinels must know the replica and each other before a failover can happen.
        assert!(
            poll(Duration::from_secs(20), || g.sentinels.iter().all(|s| {
                let r: Result<Vec<redis::Value>, _> = s.connection().map_or(
                    Err(redis::RedisError::from((redis::ErrorKind::Io, "down"))),
                    |mut c| {
                        redis::cmd("SENTINEL")
                            .arg("REPLICAS")
                            .arg(&g.master)
                            .query(&mut c)
                    },
                );
                let peers: Result<Vec<redis::Value>, _> = s.connection().map_or(
                    Err(redis::RedisError::from((redis::ErrorKind::Io, "down"))),
                    |mut c| {
                        redis::cmd("SENTINEL")
                            .arg("SENTINELS")
                            .arg(&g.master)
                            .query(&mut c)
                    },
                );
                r.is_ok_and(|r| !r.is_empty()) && peers.is_ok_and(|p| p.len() == 2)
            })),
            "sentinels did not discover the replica and each other"
        );
        g
    }

    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisNode::url).collect()
    }

    /// The primary's port as the sentinels report it.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let mut c = s.connection()?;
            let addr: Vec<String> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&self.master)
                .query(&mut c)
                .ok()?;
            addr.get(1)?.parse().ok()
        })
    }

    /// Index in `data` of the node on `port`.
    pub fn index_of(&self, port: u16) -> usize {
        self.data.iter().position(|n| n.port == port).unwrap()
    }
}
