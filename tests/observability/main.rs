//! Traces end to end: par-server's real `telemetry::init` exports by OTLP/HTTP to a receiver in
//! this process that decodes the protobuf with `opentelemetry-proto`; logins run against a
//! real `redis-server`. A separate test binary because the subscriber and exporter are
//! process-global; every test finds its own spans by the trace id it sent.

#[path = "../support/config_file.rs"]
mod config_file;
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../support/html.rs"]
mod html;
mod receiver;
#[path = "../support/topology.rs"]
mod topology;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use helpers::*;
use par_server::config::{LogFormat, LogSettings, TelemetrySettings};
use par_server::telemetry::TelemetryGuard;
use receiver::{Receiver, SpanView};

struct Telemetry {
    guard: TelemetryGuard,
    receiver: Receiver,
}

/// The process's telemetry, exporting to the in-test receiver (started once).
fn telemetry() -> &'static Telemetry {
    static T: OnceLock<Telemetry> = OnceLock::new();
    T.get_or_init(|| {
        let receiver = Receiver::start();
        let guard = par_server::telemetry::init(
            &LogSettings {
                format: LogFormat::Json,
                level: "warn,par_server=info".into(),
            },
            &TelemetrySettings {
                otlp_endpoint: Some(receiver.url()),
                sampling_ratio: Some(1.0),
                ..Default::default()
            },
        )
        .expect("telemetry starts");
        assert!(guard.exporting(), "the OTel layer must be installed");
        Telemetry { guard, receiver }
    })
}

/// Flushes and polls the receiver until `done` holds for the spans received (the server ends
/// a request's span around the time the client sees the response).
async fn wait_for(done: impl Fn(&[SpanView]) -> bool) -> Vec<SpanView> {
    let t = telemetry();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::task::spawn_blocking(|| telemetry().guard.flush())
            .await
            .unwrap();
        let spans = t.receiver.spans();
        if done(&spans) {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "spans never arrived; got {}",
            spans.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand_byte())).collect()
}

fn rand_byte() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}

async fn push_with_traceparent(app: &TestApp, traceparent: &str) -> String {
    let res = app
        .http
        .post(app.url("/oauth2/par"))
        .basic_auth("app", Some(SECRET))
        .header("traceparent", traceparent)
        .form(&push_params("app"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    body["request_uri"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_incoming_traceparent_is_the_parent_of_the_par_request_span() {
    telemetry();
    let app = spawn_app().await;
    let (trace, parent) = (random_hex(16), random_hex(8));
    push_with_traceparent(&app, &format!("00-{trace}-{parent}-01")).await;
    let spans = wait_for(|s| {
        s.iter()
            .any(|s| s.trace_id == trace && s.name == "POST /oauth2/par")
    })
    .await;
    let root = spans
        .iter()
        .find(|s| s.trace_id == trace && s.name == "POST /oauth2/par")
        .unwrap();
    assert_eq!(root.parent_span_id, parent, "the caller's span is the parent");
    assert_eq!(root.kind, "server");
}

/// Push on one replica, authorize on another, log in on the first: every step's span links to
/// the push's span; Redis commands are child spans; nothing secret is in any attribute.
#[tokio::test]
async fn one_login_across_two_replicas_links_every_step_to_the_push() {
    telemetry();
    let a = spawn_app().await;
    let b = a.replica(|_| {}).await;
    let browser = http_client();
    let (trace, caller) = (random_hex(16), random_hex(8));

    let request_uri = push_with_traceparent(&a, &format!("00-{trace}-{caller}-01")).await;
    let page = b.authorize(&browser, "app", &request_uri).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = form_value(&html, "csrf_token").unwrap();
    let done = a.login(&browser, &html, "alice", PASSWORD).await;
    assert_eq!(done.status(), 303);
    let code = location_params(&done)["code"].clone();
    let redeemed = b.post_token(&token_params(&code)).await;
    assert_eq!(redeemed.status(), 200);
    let tokens: serde_json::Value = redeemed.json().await.unwrap();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();

    // The steps that must link to the push, by span name. The token step adds one line here.
    let linked_steps = ["authorize", "login", "interaction.issue_code", "token.exchange"];

    let push_root = |s: &[SpanView]| {
        s.iter()
            .find(|s| s.trace_id == trace && s.name == "POST /oauth2/par")
            .cloned()
    };
    let spans = wait_for(|s| {
        let Some(root) = push_root(s) else { return false };
        let linked: Vec<_> = s.iter().filter(|x| x.links_to(&root)).collect();
        linked_steps.iter().all(|n| linked.iter().any(|x| x.name == *n))
            && ["GET /oauth2/authorize", "POST /oauth2/login"].iter().all(|n| {
                linked
                    .iter()
                    .any(|x| s.iter().any(|r| r.name == *n && x.trace_id == r.trace_id))
            })
    })
    .await;
    let root = push_root(&spans).unwrap();
    let in_trace = |t: &str| -> Vec<&SpanView> { spans.iter().filter(|s| s.trace_id == t).collect() };

    // The push: root ← par.push ← client.authenticate, and a Redis SET under par.push.
    assert_eq!(root.parent_span_id, caller);
    assert_eq!(root.attr("http.request.method"), Some("POST"));
    assert_eq!(root.attr("http.route"), Some("/oauth2/par"));
    assert_eq!(root.attr("http.response.status_code"), Some("201"));
    assert_eq!(root.attr("client.address"), Some("127.0.0.1"));
    assert_eq!(root.attr("client_id"), Some("app"));
    let flow_id = root.attr("flow_id").expect("flow_id on the push span").to_owned();
    let handler = in_trace(&trace)
        .into_iter()
        .find(|s| s.name == "par.push")
        .expect("par.push span");
    assert_eq!(handler.parent_span_id, root.span_id);
    assert_eq!(handler.attr("flow_id"), Some(flow_id.as_str()));
    let auth = in_trace(&trace)
        .into_iter()
        .find(|s| s.name == "client.authenticate")
        .unwrap();
    assert_eq!(auth.parent_span_id, handler.span_id);
    assert_eq!(auth.attr("method"), Some("client_secret_basic"));
    let set = in_trace(&trace)
        .into_iter()
        .find(|s| s.attr("db.operation.name") == Some("SET"))
        .expect("a Redis SET span in the push");
    assert_eq!(set.parent_span_id, handler.span_id);
    assert_eq!(set.attr("db.system"), Some("redis"));
    assert_eq!(set.kind, "client");

    // Each later step: its own trace (no header from the browser), linked to the push span,
    // carrying client_id and flow_id, with its Redis work as children.
    for step in linked_steps {
        let span = spans
            .iter()
            .find(|s| s.name == step && s.links_to(&root))
            .unwrap_or_else(|| panic!("{step} links to the push"));
        assert_ne!(span.trace_id, trace, "{step} runs in its own trace");
        assert_eq!(span.attr("client_id"), Some("app"), "{step}");
        assert_eq!(span.attr("flow_id"), Some(flow_id.as_str()), "{step}");
    }
    let authorize = spans
        .iter()
        .find(|s| s.name == "authorize" && s.links_to(&root))
        .unwrap();
    let authorize_root = in_trace(&authorize.trace_id)
        .into_iter()
        .find(|s| s.name == "GET /oauth2/authorize")
        .unwrap();
    assert_eq!(authorize.parent_span_id, authorize_root.span_id);
    assert_eq!(authorize_root.attr("flow_id"), Some(flow_id.as_str()));
    assert_eq!(authorize_root.attr("url.path"), Some("/oauth2/authorize"));
    let claim = in_trace(&authorize.trace_id)
        .into_iter()
        .find(|s| s.name == "interaction.visit")
        .unwrap();
    let script = in_trace(&authorize.trace_id)
        .into_iter()
        .find(|s| s.attr("db.operation.name") == Some("open"))
        .expect("the claim script's Redis span");
    assert_eq!(script.parent_span_id, claim.span_id);
    assert_eq!(script.attr("db.system"), Some("redis"));

    let login = spans
        .iter()
        .find(|s| s.name == "login" && s.links_to(&root))
        .unwrap();
    let verify = in_trace(&login.trace_id)
        .into_iter()
        .find(|s| s.name == "password.verify")
        .expect("the password check runs in a span of the login trace");
    assert_eq!(
        verify.parent_span_id, login.span_id,
        "carried into the blocking task"
    );
    let issue = spans
        .iter()
        .find(|s| s.name == "interaction.issue_code" && s.links_to(&root))
        .unwrap();
    assert_eq!(issue.trace_id, login.trace_id);
    assert!(
        in_trace(&login.trace_id)
            .iter()
            .any(|s| s.attr("db.operation.name") == Some("take")),
        "the take script runs in the login trace"
    );

    // The token step signs in spans of its own, under token.exchange.
    let exchange = spans
        .iter()
        .find(|s| s.name == "token.exchange" && s.links_to(&root))
        .unwrap();
    let signs = in_trace(&exchange.trace_id)
        .into_iter()
        .filter(|s| s.name == "token.sign")
        .count();
    assert_eq!(
        signs, 2,
        "access token and ID token are signed in token.sign spans"
    );

    // The tree as captured (docs/observability.md shows it; `--nocapture` prints it).
    for (label, t) in [
        ("push", &trace),
        ("authorize", &authorize.trace_id),
        ("login", &login.trace_id),
        ("token", &exchange.trace_id),
    ] {
        println!("trace {t} ({label})");
        print_tree(&in_trace(t), "", 1, &root);
    }

    // No secret anywhere in what was exported for this flow.
    let reference = request_uri.rsplit(':').next().unwrap().to_owned();
    let flow_traces = [
        trace.clone(),
        authorize.trace_id.clone(),
        login.trace_id.clone(),
        exchange.trace_id.clone(),
    ];
    for s in spans.iter().filter(|s| flow_traces.contains(&s.trace_id)) {
        for secret in [
            SECRET,
            PASSWORD,
            request_uri.as_str(),
            &reference,
            &code,
            &csrf,
            &access_token,
            &id_token,
        ] {
            assert!(
                !s.dump.contains(secret),
                "span {} exports a secret: {}",
                s.name,
                s.dump
            );
        }
    }
}

fn print_tree(spans: &[&SpanView], parent: &str, depth: usize, push: &SpanView) {
    for s in spans.iter().filter(|s| s.parent_span_id == parent) {
        let attrs: Vec<String> = s
            .attrs
            .iter()
            .filter(|(k, _)| !k.starts_with("otel.") && k != "busy_ns" && k != "idle_ns")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let link = if s.links_to(push) {
            "  ⇢ link to push span"
        } else {
            ""
        };
        println!(
            "{}{} [{}] {}{link}",
            "  ".repeat(depth),
            s.name,
            s.kind,
            attrs.join(" ")
        );
        print_tree(spans, &s.span_id, depth + 1, push);
    }
    if parent.is_empty() {
        // Spans whose parent is remote (the caller's span given in traceparent).
        let ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        for s in spans
            .iter()
            .filter(|s| !s.parent_span_id.is_empty() && !ids.contains(&s.parent_span_id.as_str()))
        {
            println!("  (remote parent {})", s.parent_span_id);
            let attrs: Vec<String> = s
                .attrs
                .iter()
                .filter(|(k, _)| !k.starts_with("otel."))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!("    {} [{}] {}", s.name, s.kind, attrs.join(" "));
            print_tree(spans, &s.span_id, depth + 2, push);
        }
    }
}

/// With `telemetry.sampling_ratio: 0.0` the gate decides before any span exists: a caller's
/// unsampled `traceparent` leaves no span at all (not the request's, not its Redis
/// commands'), a sampled one is still followed (parent-based) and exported in full.
#[tokio::test]
async fn an_unsampled_request_exports_nothing_and_a_sampled_parent_is_followed() {
    telemetry();
    let app = spawn_app_with(Backend::Redis, |s| s.telemetry.sampling_ratio = Some(0.0)).await;
    let unsampled = random_hex(16);
    push_with_traceparent(&app, &format!("00-{unsampled}-{}-00", random_hex(8))).await;
    let sampled = random_hex(16);
    push_with_traceparent(&app, &format!("00-{sampled}-{}-01", random_hex(8))).await;
    let spans = wait_for(|s| {
        s.iter()
            .any(|s| s.trace_id == sampled && s.name == "POST /oauth2/par")
    })
    .await;
    assert!(
        spans
            .iter()
            .any(|s| s.trace_id == sampled && s.name == "par.push"),
        "a sampled request keeps its step spans"
    );
    assert!(
        !spans.iter().any(|s| s.trace_id == unsampled),
        "no span of the unsampled request may be exported"
    );
}
