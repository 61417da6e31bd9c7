//! The store contract: every step method of `Store`, run against both backends — Redis (a
//! real `redis-server`, also pooled, Cluster and Sentinel) and the in-memory store of the
//! zero-config demo. Same behaviour, or the demo lies.

use std::sync::Arc;
use std::time::Duration;

use par_server::oauth::authorization::AuthorizationRequest;
use par_server::oauth::code::AuthorizationCode;
use par_server::oauth::interaction::Session;
use par_server::oauth::request_uri::Reference;
use par_server::store::{
    Admission, Backoff, Claim, PlaygroundLogin, PoolOptions, Rate, RedisOptions, Store, Take, Topology,
};

use crate::topology::{RedisCluster, RedisNode, SentinelGroup};

struct Fixture {
    store: Arc<Store>,
    /// Processes kept alive for the test (killed on drop).
    _guard: Option<Box<dyn std::any::Any + Send>>,
}

const TIMEOUT: Duration = Duration::from_secs(2);

fn redis_fixture() -> Fixture {
    let redis = RedisNode::start(&[]);
    let store = Store::redis(&RedisOptions::standalone(redis.url(), TIMEOUT), "c:").unwrap();
    Fixture {
        store: Arc::new(store),
        _guard: Some(Box::new(redis)),
    }
}

fn pooled_redis_fixture() -> Fixture {
    let redis = RedisNode::start(&[]);
    let store = Store::redis(
        &RedisOptions {
            pool: Some(PoolOptions {
                size: 4,
                wait_timeout: TIMEOUT,
                create_timeout: TIMEOUT,
                recycle_timeout: TIMEOUT,
            }),
            ..RedisOptions::standalone(redis.url(), TIMEOUT)
        },
        "c:",
    )
    .unwrap();
    Fixture {
        store: Arc::new(store),
        _guard: Some(Box::new(redis)),
    }
}

/// Redis Cluster of three primaries: the scripts' keys share a hash tag, so each script
/// runs in one slot (a CROSSSLOT error would fail these tests).
fn cluster_fixture() -> Fixture {
    let cluster = RedisCluster::start(3, 0);
    let store = Store::redis(
        &RedisOptions {
            topology: Topology::Cluster {
                nodes: cluster.seeds(),
            },
            ..RedisOptions::standalone("", TIMEOUT)
        },
        "c:",
    )
    .unwrap();
    Fixture {
        store: Arc::new(store),
        _guard: Some(Box::new(cluster)),
    }
}

/// Sentinel (primary + replica + three sentinels), with every take acknowledged by the
/// replica (`redis.wait_replicas = 1`).
fn sentinel_fixture() -> Fixture {
    let group = SentinelGroup::start();
    let store = Store::redis(
        &RedisOptions {
            topology: Topology::Sentinel {
                nodes: group.sentinel_urls(),
                master: group.master.clone(),
                username: None,
                password: None,
            },
            wait_replicas: 1,
            ..RedisOptions::standalone("", TIMEOUT)
        },
        "c:",
    )
    .unwrap();
    Fixture {
        store: Arc::new(store),
        _guard: Some(Box::new(group)),
    }
}

fn memory_fixture() -> Fixture {
    Fixture {
        store: Arc::new(Store::memory("c:")),
        _guard: None,
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const SECOND: Duration = Duration::from_secs(1);
/// Long enough for a one-second lifetime to run out.
const PAST_A_SECOND: Duration = Duration::from_millis(1200);

fn request(state: &str) -> AuthorizationRequest {
    serde_json::from_value(serde_json::json!({
        "client_id": "app",
        "redirect_uri": "https://a.example/cb",
        "scope": ["openid"],
        "state": state,
    }))
    .unwrap()
}

fn code_record(grant_id: &str) -> AuthorizationCode {
    serde_json::from_value(serde_json::json!({
        "client_id": "app",
        "redirect_uri": "https://a.example/cb",
        "scope": ["openid"],
        "sub": "u1",
        "auth_time": 1,
        "grant_id": grant_id,
    }))
    .unwrap()
}

fn state_of(claim: Claim) -> Option<String> {
    match claim {
        Claim::Claimed(r) | Claim::Resumed(r) => r.state,
        other => panic!("not claimed: {other:?}"),
    }
}

async fn a_push_never_overwrites(f: Fixture) {
    let r = Reference::generate();
    f.store.push_request(&r, &request("first"), MINUTE).await.unwrap();
    assert!(
        f.store
            .push_request(&r, &request("second"), MINUTE)
            .await
            .is_err()
    );
    let claim = f
        .store
        .claim_request(&r, "app", "browser-a", MINUTE)
        .await
        .unwrap();
    assert_eq!(state_of(claim).as_deref(), Some("first"));
}

async fn codes_are_single_use(f: Fixture) {
    let code = "c1";
    f.store
        .store_code(code, &code_record("g1"), MINUTE)
        .await
        .unwrap();
    assert!(
        f.store
            .store_code(code, &code_record("g2"), MINUTE)
            .await
            .is_err(),
        "a code is never overwritten"
    );
    let redeemed = f.store.redeem_code(code, MINUTE).await.unwrap().unwrap();
    assert_eq!(redeemed.grant_id, "g1");
    assert!(f.store.redeem_code(code, MINUTE).await.unwrap().is_none());
}

async fn entries_expire(f: Fixture) {
    let r = Reference::generate();
    f.store.push_request(&r, &request("s"), SECOND).await.unwrap();
    f.store.store_code("c2", &code_record("g"), SECOND).await.unwrap();
    tokio::time::sleep(PAST_A_SECOND).await;
    assert!(matches!(
        f.store
            .claim_request(&r, "app", "browser-a", MINUTE)
            .await
            .unwrap(),
        Claim::Missing
    ));
    assert!(f.store.redeem_code("c2", MINUTE).await.unwrap().is_none());
}

async fn claim_follows_the_reload_semantics(f: Fixture) {
    let s = &f.store;
    let (a, b) = (Reference::generate(), Reference::generate());
    assert!(matches!(
        s.claim_request(&a, "app", "browser-a", MINUTE * 10)
            .await
            .unwrap(),
        Claim::Missing
    ));
    s.push_request(&a, &request("a"), SECOND).await.unwrap();
    s.push_request(&b, &request("b"), SECOND).await.unwrap();
    // Another client: refused, and nothing changed (no claim, life not extended).
    for r in [&a, &b] {
        assert!(matches!(
            s.claim_request(r, "other", "browser-a", MINUTE * 10)
                .await
                .unwrap(),
            Claim::WrongClient
        ));
    }
    // The first browser claims b; its life is now the interaction lifetime.
    assert!(matches!(
        s.claim_request(&b, "app", "browser-a", MINUTE * 10)
            .await
            .unwrap(),
        Claim::Claimed(_)
    ));
    tokio::time::sleep(PAST_A_SECOND).await;
    assert!(
        matches!(
            s.claim_request(&a, "app", "browser-a", MINUTE).await.unwrap(),
            Claim::Missing
        ),
        "the refused claim did not extend a"
    );
    // A reload by the same browser continues; another browser is refused.
    let resumed = s
        .claim_request(&b, "app", "browser-a", MINUTE * 10)
        .await
        .unwrap();
    assert!(matches!(resumed, Claim::Resumed(_)));
    assert_eq!(state_of(resumed).as_deref(), Some("b"));
    assert!(matches!(
        s.claim_request(&b, "app", "browser-b", MINUTE * 10)
            .await
            .unwrap(),
        Claim::ClaimedByOther
    ));
    // Only the owner can take it, once.
    assert_eq!(s.end_request(&b, "browser-b").await.unwrap(), Take::NotOwner);
    assert_eq!(s.end_request(&b, "browser-a").await.unwrap(), Take::Taken);
    assert_eq!(s.end_request(&b, "browser-a").await.unwrap(), Take::Missing);
    assert!(matches!(
        s.claim_request(&b, "app", "browser-a", MINUTE).await.unwrap(),
        Claim::Missing
    ));
}

async fn concurrent_claims_and_code_issuance_have_one_winner(f: Fixture) {
    let r = Reference::generate();
    f.store.push_request(&r, &request("s"), MINUTE).await.unwrap();
    let claims = (0..20).map(|i| {
        let (s, r) = (f.store.clone(), r.clone());
        tokio::spawn(async move {
            s.claim_request(&r, "app", &format!("browser-{i}"), MINUTE)
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<Claim> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners: Vec<usize> = (0..outcomes.len())
        .filter(|i| matches!(outcomes[*i], Claim::Claimed(_)))
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    // The owner's double submit: twenty code issuances race; one takes the request, and
    // only its code is stored.
    let owner = format!("browser-{}", winners[0]);
    let issues = (0..20).map(|i| {
        let (s, r, owner) = (f.store.clone(), r.clone(), owner.clone());
        tokio::spawn(async move {
            let code = format!("code-{i}");
            let take = s
                .issue_code(&r, &owner, &code, &code_record("g"), MINUTE)
                .await
                .unwrap();
            (code, take)
        })
    });
    let results: Vec<(String, Take)> = futures_util::future::join_all(issues)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let taken: Vec<&String> = results
        .iter()
        .filter(|(_, t)| *t == Take::Taken)
        .map(|(c, _)| c)
        .collect();
    assert_eq!(taken.len(), 1, "{results:?}");
    for (code, _) in &results {
        let redeemable = f.store.redeem_code(code, MINUTE).await.unwrap().is_some();
        assert_eq!(redeemable, Some(code) == taken.first().copied(), "{code}");
    }
}

async fn redeem_takes_once_and_leaves_the_grant_marker(f: Fixture) {
    let s = &f.store;
    assert!(s.redeem_code("c9", MINUTE).await.unwrap().is_none());
    assert_eq!(
        s.revoke_replayed_grant("c9", MINUTE).await.unwrap(),
        None,
        "no marker for an unknown code"
    );
    s.store_code("c9", &code_record("g-42"), MINUTE).await.unwrap();
    let redemptions = (0..20).map(|_| {
        let s = f.store.clone();
        tokio::spawn(async move { s.redeem_code("c9", MINUTE).await.unwrap() })
    });
    let won: Vec<AuthorizationCode> = futures_util::future::join_all(redemptions)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(won.len(), 1, "exactly one redemption");
    assert!(!s.grant_revoked("g-42").await.unwrap());
    assert_eq!(
        s.revoke_replayed_grant("c9", MINUTE).await.unwrap().as_deref(),
        Some("g-42")
    );
    assert!(s.grant_revoked("g-42").await.unwrap());
    assert!(!s.grant_revoked("g-other").await.unwrap());
}

async fn sessions_markers_and_replay_guards(f: Fixture) {
    let s = &f.store;
    let alice = Session {
        sub: "alice".into(),
        auth_time: 7,
    };
    assert_eq!(s.sso_session("cookie").await.unwrap(), None);
    s.start_sso_session("cookie", &alice, MINUTE).await.unwrap();
    assert_eq!(s.sso_session("cookie").await.unwrap(), Some(alice.clone()));

    let r = Reference::generate();
    assert_eq!(s.pending_consent(&r).await.unwrap(), None);
    s.await_consent(&r, &alice, MINUTE).await.unwrap();
    assert_eq!(s.pending_consent(&r).await.unwrap(), Some(alice));
    s.clear_pending_consent(&r).await.unwrap();
    assert_eq!(s.pending_consent(&r).await.unwrap(), None);

    assert!(s.first_use_of_assertion("app", "jti-1", MINUTE).await.unwrap());
    assert!(!s.first_use_of_assertion("app", "jti-1", MINUTE).await.unwrap());
    assert!(s.first_use_of_assertion("other", "jti-1", MINUTE).await.unwrap());

    let login = PlaygroundLogin {
        verifier: "v".into(),
        request_uri: "urn:x".into(),
    };
    s.put_playground_login("state", &login, MINUTE).await.unwrap();
    let taken = s.take_playground_login("state").await.unwrap().unwrap();
    assert_eq!(
        (taken.verifier.as_str(), taken.request_uri.as_str()),
        ("v", "urn:x")
    );
    assert!(s.take_playground_login("state").await.unwrap().is_none());
}

/// GCRA: a burst of `requests`, then refused with the wait until the next slot; subjects and
/// scopes count apart; a rate of 0 is off. The password back-off: `free` failures cost
/// nothing, then a wait; a success starts over.
async fn rate_limits_and_password_backoff(f: Fixture) {
    let s = &f.store;
    let rate = Rate {
        requests: 3,
        per: MINUTE,
    };
    let mut remaining = Vec::new();
    for _ in 0..3 {
        match s.admit("par_per_client", "app", rate).await.unwrap() {
            Admission::Allowed {
                remaining: r, limit, ..
            } => {
                assert_eq!(limit, 3);
                remaining.push(r);
            }
            refused => panic!("refused within the burst: {refused:?}"),
        }
    }
    assert_eq!(remaining, [2, 1, 0]);
    match s.admit("par_per_client", "app", rate).await.unwrap() {
        Admission::Refused { retry_after, limit } => {
            assert_eq!(limit, 3);
            // One slot frees every 20 s.
            assert!(
                retry_after > Duration::from_secs(15) && retry_after <= Duration::from_secs(20),
                "{retry_after:?}"
            );
        }
        allowed => panic!("over the limit but {allowed:?}"),
    }
    assert!(matches!(
        s.admit("par_per_client", "other", rate).await.unwrap(),
        Admission::Allowed { remaining: 2, .. }
    ));
    assert!(matches!(
        s.admit("token_per_client", "app", rate).await.unwrap(),
        Admission::Allowed { remaining: 2, .. }
    ));
    let off = Rate {
        requests: 0,
        per: MINUTE,
    };
    assert!(matches!(
        s.admit("par_per_client", "app", off).await.unwrap(),
        Admission::Allowed { .. }
    ));

    let policy = Backoff {
        free: 2,
        base: MINUTE,
        max: 2 * MINUTE,
        forget: 2 * MINUTE,
    };
    for user in ["alice", "nobody"] {
        assert_eq!(s.password_wait("pw", user, policy).await.unwrap(), None);
        s.password_failed("pw", user, policy).await.unwrap();
        assert_eq!(
            s.password_wait("pw", user, policy).await.unwrap(),
            None,
            "one failure is free"
        );
        s.password_failed("pw", user, policy).await.unwrap();
        let wait = s
            .password_wait("pw", user, policy)
            .await
            .unwrap()
            .expect("a back-off after two");
        assert!(wait > Duration::from_secs(50) && wait <= MINUTE, "{wait:?}");
    }
    s.password_succeeded("pw", "alice").await.unwrap();
    assert_eq!(s.password_wait("pw", "alice", policy).await.unwrap(), None);
    let off = Backoff { free: 0, ..policy };
    assert_eq!(s.password_wait("pw", "nobody", off).await.unwrap(), None);
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
    a_push_never_overwrites,
    codes_are_single_use,
    entries_expire,
    claim_follows_the_reload_semantics,
    concurrent_claims_and_code_issuance_have_one_winner,
    redeem_takes_once_and_leaves_the_grant_marker,
    sessions_markers_and_replay_guards,
    rate_limits_and_password_backoff
);
