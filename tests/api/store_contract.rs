//! The store contract: every step method of `Store`, run against both backends — Redis (a
//! real `redis-server`, also pooled, Cluster and Sentinel) and the in-memory store of the
//! zero-config demo. Same behaviour, or the demo lies.

use std::sync::Arc;
use std::time::Duration;

use par_server::oauth::authorization::AuthorizationRequest;
use par_server::oauth::code::AuthorizationCode;
use par_server::oauth::interaction::Session;
use par_server::oauth::refresh::RefreshRecord;
use par_server::oauth::request_uri::Reference;
use par_server::store::{
    Admission, Backoff, Bind, CodeCheck, PlaygroundLogin, PoolOptions, Rate, Redemption, RedisOptions,
    Refresh, RefreshCheck, Store, Take, Topology, Visit,
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

/// What a token request of client `app` asserts; the records above have no PKCE challenge.
fn check(client_id: &str) -> CodeCheck<'_> {
    CodeCheck {
        client_id,
        redirect_uri: "https://a.example/cb",
        code_challenge: None,
        dpop_jkt: None,
    }
}

fn alice() -> Session {
    Session {
        sub: "alice".into(),
        auth_time: 7,
    }
}

async fn visit(s: &Store, r: &Reference, client: &str, owner: &str, lifetime: Duration) -> Visit {
    s.visit_request(r, client, owner, lifetime, true).await.unwrap()
}

fn state_of(visit: Visit) -> Option<String> {
    match visit {
        Visit::Open { request, .. } => request.state,
        other => panic!("not open: {other:?}"),
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
    let seen = visit(&f.store, &r, "app", "browser-a", MINUTE).await;
    assert_eq!(state_of(seen).as_deref(), Some("first"));
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
    let Redemption::Redeemed(redeemed) = f.store.redeem_code(code, &check("app"), MINUTE).await.unwrap()
    else {
        panic!("not redeemed")
    };
    assert_eq!(redeemed.grant_id, "g1");
    assert!(matches!(
        f.store.redeem_code(code, &check("app"), MINUTE).await.unwrap(),
        Redemption::Replayed { .. }
    ));
}

async fn entries_expire(f: Fixture) {
    let r = Reference::generate();
    f.store.push_request(&r, &request("s"), SECOND).await.unwrap();
    f.store.store_code("c2", &code_record("g"), SECOND).await.unwrap();
    tokio::time::sleep(PAST_A_SECOND).await;
    assert!(matches!(
        visit(&f.store, &r, "app", "browser-a", MINUTE).await,
        Visit::Missing
    ));
    assert!(matches!(
        f.store.redeem_code("c2", &check("app"), MINUTE).await.unwrap(),
        Redemption::Unknown
    ));
}

/// FAPI 2.0 §5.3.2.2 (note): visits never bind or consume; the first extends the life once;
/// the browser whose user signs in binds the request; the point of authorization takes it.
async fn visits_bind_and_take_follow_the_point_of_authorization(f: Fixture) {
    let s = &f.store;
    let (a, b) = (Reference::generate(), Reference::generate());
    assert!(matches!(
        visit(s, &a, "app", "browser-a", MINUTE * 10).await,
        Visit::Missing
    ));
    s.push_request(&a, &request("a"), SECOND).await.unwrap();
    s.push_request(&b, &request("b"), SECOND).await.unwrap();
    // Another client: refused, and nothing changed (life not extended).
    for r in [&a, &b] {
        assert!(matches!(
            visit(s, r, "other", "browser-a", MINUTE * 10).await,
            Visit::WrongClient
        ));
    }
    // A look (HEAD, prefetch) does not extend either.
    assert!(matches!(
        s.visit_request(&a, "app", "browser-a", MINUTE * 10, false)
            .await
            .unwrap(),
        Visit::Open { .. }
    ));
    // Any number of browsers visit b; the first visit extended its life.
    for owner in ["browser-a", "browser-b", "browser-a", "browser-c"] {
        assert_eq!(
            state_of(visit(s, &b, "app", owner, MINUTE * 10).await).as_deref(),
            Some("b")
        );
    }
    tokio::time::sleep(PAST_A_SECOND).await;
    assert!(
        matches!(visit(s, &a, "app", "browser-a", MINUTE).await, Visit::Missing),
        "neither the refused visits nor the look extended a"
    );
    // Browser b's user signs in and is asked for consent: b is bound to that browser.
    assert_eq!(
        s.bind_request(&b, "browser-b", &alice()).await.unwrap(),
        Bind::Bound
    );
    assert_eq!(
        s.bind_request(&b, "browser-b", &alice()).await.unwrap(),
        Bind::Bound
    );
    assert_eq!(
        s.bind_request(&b, "browser-a", &alice()).await.unwrap(),
        Bind::BoundElsewhere
    );
    match visit(s, &b, "app", "browser-b", MINUTE).await {
        Visit::Open { awaiting_consent, .. } => assert_eq!(awaiting_consent, Some(alice())),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        visit(s, &b, "app", "browser-a", MINUTE).await,
        Visit::BoundElsewhere
    ));
    // Only the bound browser can take it, once.
    assert_eq!(s.end_request(&b, "browser-a").await.unwrap(), Take::NotOwner);
    assert_eq!(s.end_request(&b, "browser-b").await.unwrap(), Take::Taken);
    assert_eq!(s.end_request(&b, "browser-b").await.unwrap(), Take::Missing);
    assert!(matches!(
        visit(s, &b, "app", "browser-b", MINUTE).await,
        Visit::Missing
    ));
    assert_eq!(
        s.bind_request(&b, "browser-b", &alice()).await.unwrap(),
        Bind::Missing
    );
}

/// Twenty browsers visit, then all sign in at once: exactly one takes the request, and
/// only its code is stored.
async fn concurrent_authorizations_have_one_winner(f: Fixture) {
    let r = Reference::generate();
    f.store.push_request(&r, &request("s"), MINUTE).await.unwrap();
    for i in 0..20 {
        let v = visit(&f.store, &r, "app", &format!("browser-{i}"), MINUTE).await;
        assert!(matches!(v, Visit::Open { .. }), "{v:?}");
    }
    let issues = (0..20).map(|i| {
        let (s, r) = (f.store.clone(), r.clone());
        tokio::spawn(async move {
            let code = format!("code-{i}");
            let take = s
                .issue_code(&r, &format!("browser-{i}"), &code, &code_record("g"), MINUTE)
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
        let redeemed = f.store.redeem_code(code, &check("app"), MINUTE).await.unwrap();
        assert_eq!(
            matches!(redeemed, Redemption::Redeemed(_)),
            Some(code) == taken.first().copied(),
            "{code}"
        );
    }
    // With consent, twenty sign-ins race to bind: one browser wins.
    let r = Reference::generate();
    f.store.push_request(&r, &request("s"), MINUTE).await.unwrap();
    let binds = (0..20).map(|i| {
        let (s, r) = (f.store.clone(), r.clone());
        tokio::spawn(async move {
            s.bind_request(&r, &format!("browser-{i}"), &alice())
                .await
                .unwrap()
        })
    });
    let bound = futures_util::future::join_all(binds)
        .await
        .into_iter()
        .filter(|b| *b.as_ref().unwrap() == Bind::Bound)
        .count();
    assert_eq!(bound, 1);
}

/// The redeem script checks the client and each field before consuming anything: a wrong
/// client or verifier burns nothing, and only a real second redemption is a replay.
async fn redemption_checks_before_it_consumes(f: Fixture) {
    let s = &f.store;
    assert!(matches!(
        s.redeem_code("c9", &check("app"), MINUTE).await.unwrap(),
        Redemption::Unknown
    ));
    let mut record = code_record("g-42");
    record.code_challenge = Some("challenge".into());
    s.store_code("c9", &record, MINUTE).await.unwrap();
    let with = |client_id, redirect_uri, challenge: Option<&str>| CodeCheck {
        client_id,
        redirect_uri,
        code_challenge: challenge.map(str::to_owned),
        dpop_jkt: None,
    };
    let good = with("app", "https://a.example/cb", Some("challenge"));
    let refused = [
        (
            "another client",
            with("other", "https://a.example/cb", Some("challenge")),
            None,
        ),
        (
            "redirect_uri",
            with("app", "https://a.example/cb/", Some("challenge")),
            Some("redirect_uri"),
        ),
        (
            "verifier",
            with("app", "https://a.example/cb", Some("other")),
            Some("code_challenge"),
        ),
        (
            "no verifier",
            with("app", "https://a.example/cb", None),
            Some("code_challenge"),
        ),
    ];
    for (why, attempt, field) in &refused {
        match (s.redeem_code("c9", attempt, MINUTE).await.unwrap(), field) {
            (Redemption::Unknown, None) => {}
            (Redemption::Mismatch(f), Some(expected)) if f == **expected => {}
            (other, _) => panic!("{why}: {other:?}"),
        }
    }
    // The rightful client still redeems, exactly once among twenty racers.
    let redemptions = (0..20).map(|_| {
        let s = f.store.clone();
        tokio::spawn(async move {
            let good = CodeCheck {
                client_id: "app",
                redirect_uri: "https://a.example/cb",
                code_challenge: Some("challenge".into()),
                dpop_jkt: None,
            };
            s.redeem_code("c9", &good, MINUTE).await.unwrap()
        })
    });
    let outcomes: Vec<Redemption> = futures_util::future::join_all(redemptions)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, Redemption::Redeemed(_)))
        .count();
    let replays = outcomes
        .iter()
        .filter(|o| matches!(o, Redemption::Replayed { grant_id } if grant_id == "g-42"))
        .count();
    assert_eq!((won, replays), (1, 19), "{outcomes:?}");
    // After use: failed checks are still not replays; the rightful replay is.
    for (why, attempt, _) in &refused {
        let again = s.redeem_code("c9", attempt, MINUTE).await.unwrap();
        assert!(
            !matches!(again, Redemption::Replayed { .. } | Redemption::Redeemed(_)),
            "{why}: {again:?}"
        );
    }
    assert!(matches!(
        s.redeem_code("c9", &good, MINUTE).await.unwrap(),
        Redemption::Replayed { .. }
    ));
    assert!(!s.grant_revoked("g-42").await.unwrap());
    s.revoke_grant("g-42", MINUTE).await.unwrap();
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

    assert!(s.first_use_of_assertion("app", "jti-1", MINUTE).await.unwrap());
    assert!(!s.first_use_of_assertion("app", "jti-1", MINUTE).await.unwrap());
    assert!(s.first_use_of_assertion("other", "jti-1", MINUTE).await.unwrap());
    // DPoP proofs: one use per (key, jti), separate from assertion jtis.
    assert!(s.first_use_of_dpop_proof("jkt-a", "jti-1", MINUTE).await.unwrap());
    assert!(!s.first_use_of_dpop_proof("jkt-a", "jti-1", MINUTE).await.unwrap());
    assert!(s.first_use_of_dpop_proof("jkt-b", "jti-1", MINUTE).await.unwrap());

    let login = PlaygroundLogin {
        started: 7,
        dpop_key: Some("k".into()),
    };
    s.put_playground_login("state", &login, MINUTE).await.unwrap();
    let taken = s.take_playground_login("state").await.unwrap().unwrap();
    assert_eq!(taken, login);
    assert!(s.take_playground_login("state").await.unwrap().is_none());
}

/// RFC 9449 §10: a code bound to a DPoP key is redeemed only with a proof by that key; a
/// refusal consumes nothing.
async fn a_dpop_bound_code_needs_its_key(f: Fixture) {
    let s = &f.store;
    let mut record = code_record("g-7");
    record.dpop_jkt = Some("jkt-1".into());
    s.store_code("bound", &record, MINUTE).await.unwrap();
    let with = |jkt: Option<&'static str>| CodeCheck {
        dpop_jkt: jkt,
        ..check("app")
    };
    for attempt in [None, Some("jkt-2")] {
        match s.redeem_code("bound", &with(attempt), MINUTE).await.unwrap() {
            Redemption::Mismatch(field) => assert_eq!(field, "dpop_jkt", "{attempt:?}"),
            other => panic!("{attempt:?}: {other:?}"),
        }
    }
    assert!(matches!(
        s.redeem_code("bound", &with(Some("jkt-1")), MINUTE)
            .await
            .unwrap(),
        Redemption::Redeemed(_)
    ));
    // An unbound code: a proof's key is not compared.
    s.store_code("free", &code_record("g-8"), MINUTE).await.unwrap();
    assert!(matches!(
        s.redeem_code("free", &with(Some("jkt-1")), MINUTE).await.unwrap(),
        Redemption::Redeemed(_)
    ));
}

/// Refresh tokens: rotation (one winner among racers), reuse revoking the grant, the
/// client and DPoP-key checks that change nothing, and the absolute end.
async fn refresh_tokens_rotate_once_and_reuse_revokes(f: Fixture) {
    let s = &f.store;
    let now = par_server::clock::now();
    let record = |jkt: Option<&str>, expires_at: u64| RefreshRecord {
        client_id: "app".into(),
        sub: "u1".into(),
        scope: vec!["openid".into(), "offline_access".into()],
        auth_time: 1,
        resource: vec![],
        userinfo_claims: vec![],
        authorization_details: None,
        dpop_jkt: jkt.map(str::to_owned),
        expires_at,
    };
    let check = |client_id, jkt| RefreshCheck {
        client_id,
        dpop_jkt: jkt,
        idle_lifetime: MINUTE,
        revoked_lifetime: MINUTE,
        now,
    };
    s.start_refresh("g1", "g1.t1", &record(None, now + 3600), MINUTE)
        .await
        .unwrap();
    assert!(matches!(
        s.rotate_refresh("g1", "g1.t1", "g1.x", &check("other", None))
            .await
            .unwrap(),
        Refresh::Unknown
    ));
    assert!(
        s.refresh_record("g1", "g1.t1").await.unwrap().is_some(),
        "unchanged"
    );
    assert!(s.refresh_record("g1", "g1.zz").await.unwrap().is_none());
    // Twenty racers present the current token: exactly one rotation.
    let racers = (0..20).map(|i| {
        let s = f.store.clone();
        tokio::spawn(async move {
            let c = RefreshCheck {
                client_id: "app",
                dpop_jkt: None,
                idle_lifetime: MINUTE,
                revoked_lifetime: MINUTE,
                now: par_server::clock::now(),
            };
            s.rotate_refresh("g1", "g1.t1", &format!("g1.n{i}"), &c)
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<Refresh> = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let won: Vec<usize> = (0..20)
        .filter(|i| matches!(outcomes[*i], Refresh::Rotated(_)))
        .collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    // The losers presented a retired token: the first of them revoked the grant.
    assert!(
        outcomes.iter().any(|o| matches!(o, Refresh::Reused)),
        "{outcomes:?}"
    );
    assert!(s.grant_revoked("g1").await.unwrap());
    let winner = format!("g1.n{}", won[0]);
    assert!(matches!(
        s.rotate_refresh("g1", &winner, "g1.y", &check("app", None))
            .await
            .unwrap(),
        Refresh::Unknown
    ));

    // A DPoP-bound token: the wrong key changes nothing; the right one rotates.
    s.start_refresh("g2", "g2.t1", &record(Some("k1"), now + 3600), MINUTE)
        .await
        .unwrap();
    for jkt in [None, Some("k2")] {
        assert!(matches!(
            s.rotate_refresh("g2", "g2.t1", "g2.x", &check("app", jkt))
                .await
                .unwrap(),
            Refresh::KeyMismatch
        ));
    }
    match s
        .rotate_refresh("g2", "g2.t1", "g2.t2", &check("app", Some("k1")))
        .await
        .unwrap()
    {
        Refresh::Rotated(r) => assert_eq!(r.dpop_jkt.as_deref(), Some("k1")),
        other => panic!("{other:?}"),
    }
    assert!(s.refresh_record("g2", "g2.t2").await.unwrap().is_some());

    // Past the absolute end the token is refused, whatever its idle lifetime left.
    s.start_refresh("g3", "g3.t1", &record(None, now - 1), MINUTE)
        .await
        .unwrap();
    assert!(matches!(
        s.rotate_refresh("g3", "g3.t1", "g3.x", &check("app", None))
            .await
            .unwrap(),
        Refresh::Unknown
    ));
    // Revoking a grant deletes its refresh token.
    s.revoke_grant("g2", MINUTE).await.unwrap();
    assert!(s.refresh_record("g2", "g2.t2").await.unwrap().is_none());
    assert!(matches!(
        s.rotate_refresh("g2", "g2.t2", "g2.t3", &check("app", Some("k1")))
            .await
            .unwrap(),
        Refresh::Unknown
    ));
    // The access-token deny-list.
    assert!(!s.access_token_revoked("g9", "jti-1").await.unwrap());
    s.revoke_access_token("jti-1", MINUTE).await.unwrap();
    assert!(s.access_token_revoked("g9", "jti-1").await.unwrap());
    assert!(
        s.access_token_revoked("g1", "jti-2").await.unwrap(),
        "grant g1 is revoked"
    );
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
    // Every limit of one request in one call: each bucket answered in order, an exhausted
    // one refused, one that is off allowed.
    let answers = s
        .admit_all(&[
            ("par_per_client", "app", rate),
            ("par_per_address", "127.0.0.9", rate),
            ("token_per_client", "app", off),
        ])
        .await
        .unwrap();
    assert!(
        matches!(answers[0], Admission::Refused { limit: 3, .. }),
        "{answers:?}"
    );
    assert!(
        matches!(answers[1], Admission::Allowed { remaining: 2, .. }),
        "{answers:?}"
    );
    assert!(matches!(answers[2], Admission::Allowed { .. }), "{answers:?}");

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
    refresh_tokens_rotate_once_and_reuse_revokes,
    a_dpop_bound_code_needs_its_key,
    a_push_never_overwrites,
    codes_are_single_use,
    entries_expire,
    visits_bind_and_take_follow_the_point_of_authorization,
    concurrent_authorizations_have_one_winner,
    redemption_checks_before_it_consumes,
    sessions_markers_and_replay_guards,
    rate_limits_and_password_backoff
);

/// Two replicas on one Redis counting a busy subject: together they admit exactly the
/// limit, though each spends cells it leased (`store::lease`) instead of asking Redis per
/// request — a busy subject costs Redis a small fraction of a script per request.
#[tokio::test]
async fn replicas_share_a_limit_through_leases() {
    let redis = RedisNode::start(&[]);
    let replica = || Store::redis(&RedisOptions::standalone(redis.url(), TIMEOUT), "c:").unwrap();
    let (a, b) = (replica(), replica());
    // 1,600 per 10 hours: one cell frees every 22.5 s, so the second the test takes adds
    // none (or one); leases of up to 100 cells (1/16).
    let rate = Rate {
        requests: 1600,
        per: Duration::from_secs(36_000),
    };
    let before = calls(&redis, "evalsha");
    let start = std::time::Instant::now();
    let mut admitted = 0;
    for n in 0..2400 {
        let replica = if n % 2 == 0 { &a } else { &b };
        if matches!(
            replica.admit("par_per_client", "busy-app", rate).await.unwrap(),
            Admission::Allowed { .. }
        ) {
            admitted += 1;
        }
    }
    let refilled = (start.elapsed().as_millis() / 22_500) as u32;
    assert!(
        (1600..=1600 + refilled + 1).contains(&admitted),
        "{admitted} admitted of a 1,600 limit"
    );
    let scripts = calls(&redis, "evalsha") - before;
    assert!(scripts < 200, "{scripts} scripts for 2,400 requests");
    // Over the limit, each replica answers from the refusal it remembers, not from Redis.
    let before = calls(&redis, "evalsha");
    for replica in [&a, &b].repeat(50) {
        assert!(matches!(
            replica.admit("par_per_client", "busy-app", rate).await.unwrap(),
            Admission::Refused { .. }
        ));
    }
    assert!(calls(&redis, "evalsha") - before <= 2);
}

/// Calls of `command` Redis has run (`INFO commandstats`).
fn calls(redis: &RedisNode, command: &str) -> u64 {
    let info: String = redis.cmd(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}
