//! The store contract, run against both backends: Redis (a real `redis-server`) and the
//! in-memory store of the zero-config demo, and Redis Cluster and Sentinel topologies. Same
//! behaviour, or the demo lies.

use std::sync::Arc;
use std::time::Duration;

use par_server::store::redis::{PoolOptions, RedisOptions, RedisStore, Topology};
use par_server::store::{ClaimOutcome, Keys, Store, TakeOutcome};

use crate::helpers::TestRedis;
use crate::topology::{RedisCluster, SentinelGroup};

struct Fixture {
    store: Arc<Store>,
    keys: Keys,
    /// Processes kept alive for the test (killed on drop).
    _guard: Option<Box<dyn std::any::Any + Send>>,
}

const TIMEOUT: Duration = Duration::from_secs(2);

fn redis_fixture() -> Fixture {
    let redis = TestRedis::start();
    let store = RedisStore::connect(&RedisOptions::standalone(redis.url(), TIMEOUT)).unwrap();
    Fixture {
        store: Arc::new(Store::Redis(store)),
        keys: Keys::new("c:"),
        _guard: Some(Box::new(redis)),
    }
}

fn pooled_redis_fixture() -> Fixture {
    let redis = TestRedis::start();
    let store = RedisStore::connect(&RedisOptions {
        pool: Some(PoolOptions {
            size: 4,
            wait_timeout: TIMEOUT,
            create_timeout: TIMEOUT,
            recycle_timeout: TIMEOUT,
        }),
        ..RedisOptions::standalone(redis.url(), TIMEOUT)
    })
    .unwrap();
    Fixture {
        store: Arc::new(Store::Redis(store)),
        keys: Keys::new("c:"),
        _guard: Some(Box::new(redis)),
    }
}

/// Redis Cluster of three primaries: the scripts' keys share a hash tag, so each script
/// runs in one slot (a CROSSSLOT error would fail these tests).
fn cluster_fixture() -> Fixture {
    let cluster = RedisCluster::start(3, 0);
    let store = RedisStore::connect(&RedisOptions {
        topology: Topology::Cluster {
            nodes: cluster.seeds(),
        },
        ..RedisOptions::standalone("", TIMEOUT)
    })
    .unwrap();
    Fixture {
        store: Arc::new(Store::Redis(store)),
        keys: Keys::new("c:"),
        _guard: Some(Box::new(cluster)),
    }
}

/// Sentinel (primary + replica + three sentinels), with every take acknowledged by the
/// replica (`redis.wait_replicas = 1`).
fn sentinel_fixture() -> Fixture {
    let group = SentinelGroup::start();
    let store = RedisStore::connect(&RedisOptions {
        topology: Topology::Sentinel {
            nodes: group.sentinel_urls(),
            master: group.master.clone(),
            username: None,
            password: None,
        },
        wait_replicas: 1,
        ..RedisOptions::standalone("", TIMEOUT)
    })
    .unwrap();
    Fixture {
        store: Arc::new(Store::Redis(store)),
        keys: Keys::new("c:"),
        _guard: Some(Box::new(group)),
    }
}

fn memory_fixture() -> Fixture {
    Fixture {
        store: Arc::new(Store::memory()),
        keys: Keys::new("c:"),
        _guard: None,
    }
}

const RECORD: &[u8] = br#"{"v":1,"client_id":"app","redirect_uri":"https://a.example/cb"}"#;
const MINUTE: Duration = Duration::from_secs(60);

async fn put_new_never_overwrites(f: Fixture) {
    let k = f.keys.par("d1");
    assert!(f.store.put_new(&k, b"first", MINUTE).await.unwrap());
    assert!(!f.store.put_new(&k, b"second", MINUTE).await.unwrap());
    assert_eq!(f.store.get(&k).await.unwrap().as_deref(), Some(&b"first"[..]));
}

async fn take_is_single_use(f: Fixture) {
    let k = f.keys.code("c1");
    f.store.put(&k, b"v", MINUTE).await.unwrap();
    assert_eq!(f.store.take(&k).await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(f.store.take(&k).await.unwrap(), None);
    assert_eq!(f.store.get(&k).await.unwrap(), None);
}

async fn entries_expire(f: Fixture) {
    let k = f.keys.code("c2");
    f.store.put(&k, b"v", Duration::from_secs(1)).await.unwrap();
    let ttl = f.store.ttl(&k).await.unwrap().unwrap();
    assert!(ttl <= Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(f.store.get(&k).await.unwrap(), None);
    assert_eq!(f.store.take(&k).await.unwrap(), None);
}

async fn claim_follows_the_reload_semantics(f: Fixture) {
    let (rec, claim) = (f.keys.par("d2"), f.keys.par_claim("d2"));
    assert_eq!(
        f.store
            .claim(&rec, &claim, "app", "browser-a", MINUTE * 10)
            .await
            .unwrap(),
        ClaimOutcome::Missing
    );
    f.store.put_new(&rec, RECORD, MINUTE).await.unwrap();
    // Another client: refused, and nothing changed (no claim, TTL not extended).
    assert_eq!(
        f.store
            .claim(&rec, &claim, "other", "browser-a", MINUTE * 10)
            .await
            .unwrap(),
        ClaimOutcome::WrongClient
    );
    assert!(f.store.ttl(&rec).await.unwrap().unwrap() <= MINUTE);
    assert_eq!(f.store.get(&claim).await.unwrap(), None);
    // First browser claims; the record now lives for the interaction lifetime.
    assert_eq!(
        f.store
            .claim(&rec, &claim, "app", "browser-a", MINUTE * 10)
            .await
            .unwrap(),
        ClaimOutcome::Claimed(RECORD.to_vec())
    );
    assert!(f.store.ttl(&rec).await.unwrap().unwrap() > MINUTE * 9);
    // A reload by the same browser continues; another browser is refused.
    assert_eq!(
        f.store
            .claim(&rec, &claim, "app", "browser-a", MINUTE * 10)
            .await
            .unwrap(),
        ClaimOutcome::Resumed(RECORD.to_vec())
    );
    assert_eq!(
        f.store
            .claim(&rec, &claim, "app", "browser-b", MINUTE * 10)
            .await
            .unwrap(),
        ClaimOutcome::ClaimedByOther
    );
    // Only the owner can take it, once.
    assert_eq!(
        f.store.take_claimed(&rec, &claim, "browser-b").await.unwrap(),
        TakeOutcome::NotOwner
    );
    assert_eq!(
        f.store.take_claimed(&rec, &claim, "browser-a").await.unwrap(),
        TakeOutcome::Taken(RECORD.to_vec())
    );
    assert_eq!(
        f.store.take_claimed(&rec, &claim, "browser-a").await.unwrap(),
        TakeOutcome::Missing
    );
    assert_eq!(
        f.store
            .claim(&rec, &claim, "app", "browser-a", MINUTE)
            .await
            .unwrap(),
        ClaimOutcome::Missing
    );
}

async fn concurrent_claims_and_takes_have_one_winner(f: Fixture) {
    let (rec, claim) = (f.keys.par("d3"), f.keys.par_claim("d3"));
    f.store.put_new(&rec, RECORD, MINUTE).await.unwrap();
    let claims = (0..20).map(|i| {
        let (s, rec, claim) = (f.store.clone(), rec.clone(), claim.clone());
        tokio::spawn(async move {
            s.claim(&rec, &claim, "app", &format!("browser-{i}"), MINUTE)
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<ClaimOutcome> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners = outcomes
        .iter()
        .filter(|o| matches!(o, ClaimOutcome::Claimed(_)))
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    let owner = format!(
        "browser-{}",
        outcomes
            .iter()
            .position(|o| matches!(o, ClaimOutcome::Claimed(_)))
            .unwrap()
    );
    let takes = (0..20).map(|_| {
        let (s, rec, claim, owner) = (f.store.clone(), rec.clone(), claim.clone(), owner.clone());
        tokio::spawn(async move { s.take_claimed(&rec, &claim, &owner).await.unwrap() })
    });
    let taken = futures_util::future::join_all(takes)
        .await
        .into_iter()
        .filter(|r| matches!(r.as_ref().unwrap(), TakeOutcome::Taken(_)))
        .count();
    assert_eq!(taken, 1);
}

async fn redeem_takes_once_and_leaves_the_grant_marker(f: Fixture) {
    let (code, used) = (f.keys.code("c9"), f.keys.code_used("c9"));
    assert_eq!(f.store.redeem(&code, &used, MINUTE).await.unwrap(), None);
    assert_eq!(
        f.store.get(&used).await.unwrap(),
        None,
        "no marker for an unknown code"
    );
    let record = br#"{"v":1,"client_id":"app","grant_id":"g-42"}"#;
    f.store.put_new(&code, record, MINUTE).await.unwrap();
    let redemptions = (0..20).map(|_| {
        let (s, code, used) = (f.store.clone(), code.clone(), used.clone());
        tokio::spawn(async move { s.redeem(&code, &used, MINUTE).await.unwrap() })
    });
    let won: Vec<Vec<u8>> = futures_util::future::join_all(redemptions)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(won, vec![record.to_vec()], "exactly one redemption");
    assert_eq!(f.store.get(&used).await.unwrap().as_deref(), Some(&b"g-42"[..]));
    assert_eq!(f.store.get(&code).await.unwrap(), None);
}

macro_rules! contract {
    ($($name:ident),*) => {
        mod redis_backend {
            $( #[tokio::test] async fn $name() { super::$name(super::redis_fixture()).await } )*
        }
        mod redis_pool_backend {
            $( #[tokio::test] async fn $name() { super::$name(super::pooled_redis_fixture()).await } )*
        }
        mod redis_cluster_backend {
            $( #[tokio::test] async fn $name() { super::$name(super::cluster_fixture()).await } )*
        }
        mod redis_sentinel_backend {
            $( #[tokio::test] async fn $name() { super::$name(super::sentinel_fixture()).await } )*
        }
        mod memory_backend {
            $( #[tokio::test] async fn $name() { super::$name(super::memory_fixture()).await } )*
        }
    };
}

contract!(
    put_new_never_overwrites,
    take_is_single_use,
    entries_expire,
    claim_follows_the_reload_semantics,
    concurrent_claims_and_takes_have_one_winner,
    redeem_takes_once_and_leaves_the_grant_marker
);
