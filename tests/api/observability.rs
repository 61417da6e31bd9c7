//! Metrics and logs: `/metrics` parses as Prometheus text and its counters move as a login
//! runs; the real binary's JSON logs of a full login carry trace ids and no secret, while its
//! OTLP collector is unreachable. (Span export is tested in `tests/observability/`.)

use par_server::config::ClientSettings;
use par_server::secret::Secret;
use prometheus_parse::{Scrape, Value};

use crate::config_file::{ClientEntry, ConfigFile, cheap_password_hash};
use crate::helpers::*;
use crate::topology::{KillOnDrop, free_port};

/// The app's `/metrics`, parsed.
pub(crate) async fn scrape(app: &TestApp) -> Scrape {
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

/// Value of the sample `name` whose labels include all of `labels` (0 when absent). For a
/// histogram, its total count.
pub(crate) fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(b) => b.iter().map(|h| h.count).fold(0.0, f64::max),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_count_a_login_its_reuse_and_a_cross_client_attempt() {
    // A client of this test's own, so its labelled counters move only with this test.
    let me = format!("m-{}", uuid::Uuid::new_v4().simple());
    let id = me.clone();
    let app = spawn_app_with(Backend::Redis, move |s| {
        s.clients.push(ClientSettings {
            client_secret: Some(Secret::new(SECRET)),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            ..ClientSettings::new(id, vec![REDIRECT.into()])
        })
    })
    .await;
    let c = me.as_str();
    let before = scrape(&app).await;

    let push = |params| {
        app.http
            .post(app.url("/oauth2/par"))
            .basic_auth(c, Some(SECRET))
            .form(&params)
            .send()
    };
    let res = push(push_params(c)).await.unwrap();
    assert_eq!(res.status(), 201);
    let uri = res.json::<serde_json::Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let browser = http_client();
    let page = app.authorize(&browser, c, &uri).await.text().await.unwrap();
    let bad = app.login(&browser, &page, "alice", "wrong password").await;
    assert_eq!(bad.status(), 200);
    let ok = app.login(&browser, &page, "alice", PASSWORD).await;
    assert_eq!(ok.status(), 303);
    // Reuse: the same request_uri again, after it was used.
    let again = app.authorize(&http_client(), c, &uri).await;
    assert_eq!(again.status(), 400);
    // Cross-client: another client's request_uri presented with this client's id.
    let theirs = app.push_valid().await;
    let cross = app.authorize(&http_client(), c, &theirs).await;
    assert_eq!(cross.status(), 400);
    // A failed client authentication.
    let denied = app
        .http
        .post(app.url("/oauth2/par"))
        .basic_auth(c, Some("not the secret"))
        .form(&push_params(c))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);

    let after = scrape(&app).await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    let mine = |extra: &[(&'static str, &'static str)]| {
        let mut l: Vec<(&str, &str)> = vec![("client_id", c)];
        l.extend_from_slice(extra);
        l
    };
    assert_eq!(delta("par_pushes_total", &mine(&[])), 1.0);
    // The page load and each login POST visit the request: the failed and the successful one.
    assert_eq!(delta("par_visits_total", &mine(&[("outcome", "open")])), 3.0);
    assert_eq!(delta("par_visits_total", &mine(&[("outcome", "missing")])), 1.0);
    assert_eq!(
        delta("par_visits_total", &mine(&[("outcome", "wrong_client")])),
        1.0
    );
    assert_eq!(delta("par_takes_total", &mine(&[("outcome", "taken")])), 1.0);
    assert_eq!(delta("par_codes_issued_total", &mine(&[])), 1.0);
    assert_eq!(delta("par_logins_total", &mine(&[("outcome", "ok")])), 1.0);
    assert_eq!(
        delta("par_logins_total", &mine(&[("outcome", "bad_credentials")])),
        1.0
    );
    // Unlabelled by client, shared with concurrent tests: at least this test's share.
    assert!(
        delta(
            "par_client_auth_failures_total",
            &[("method", "client_secret_basic")]
        ) >= 1.0
    );
    let http = |route, status| {
        delta(
            "http_server_requests_total",
            &[("method", "POST"), ("route", route), ("status", status)],
        )
    };
    assert!(http("/oauth2/par", "201") >= 2.0);
    assert!(http("/oauth2/login", "303") >= 1.0);
    assert!(
        delta(
            "http_server_request_duration_seconds",
            &[("route", "/oauth2/authorize"), ("status", "400")]
        ) >= 2.0
    );
    assert!(delta("par_redis_command_duration_seconds", &[("command", "SET")]) >= 1.0);
    assert!(delta("par_redis_command_duration_seconds", &[("command", "open")]) >= 4.0);
    // Bounded labels: no request_uri, path or user name ever becomes a label value.
    for s in &after.samples {
        for v in s.labels.values() {
            assert!(
                !v.contains("urn:") && !v.contains("alice") && !v.contains('?'),
                "{s:?}"
            );
        }
    }
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .filter_map(|kv| kv.split_once('=').map(|(_, v)| v.to_owned()))
        .filter(|v| v.len() >= 16)
        .collect()
}

/// The real binary, JSON logs at debug for par-server, an OTLP endpoint nobody listens on.
#[tokio::test]
async fn json_logs_of_a_full_login_carry_trace_ids_and_no_secret() {
    let redis = RedisNode::start(&[]);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile {
        log_format: Some("json"),
        log_level: Some("info,par_server=debug".into()),
        otlp_endpoint: Some(format!("http://127.0.0.1:{}", free_port())),
        drain_delay_secs: Some(0),
        clients: vec![ClientEntry::new("app", SECRET)],
        ..ConfigFile::new(port, &redis)
    };
    let (server, log_path) = config.spawn(dir.path(), "par");
    let server = KillOnDrop(server);
    let base = config.base_url();
    wait_ready(&format!("{base}/readyz")).await;
    let http = http_client();

    let push = http
        .post(format!("{base}/oauth2/par"))
        .basic_auth("app", Some(SECRET))
        .form(&push_params("app"))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 201, "an unreachable collector fails no request");
    let request_uri = push.json::<serde_json::Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let browser = http_client();
    let page = browser
        .get(format!("{base}/oauth2/authorize"))
        .query(&[("client_id", "app"), ("request_uri", request_uri.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let mut cookies = set_cookies(&page);
    let html = page.text().await.unwrap();
    let csrf = form_value(&html, "csrf_token").unwrap();
    let form = |password: &str| {
        vec![
            ("client_id", "app".to_owned()),
            ("request_uri", request_uri.clone()),
            ("csrf_token", csrf.clone()),
            ("username", "alice".to_owned()),
            ("password", password.to_owned()),
        ]
    };
    let wrong_password = "Tr0ub4dor&3-not-alice";
    let failed = browser
        .post(format!("{base}/oauth2/login"))
        .form(&form(wrong_password))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 200);
    let done = browser
        .post(format!("{base}/oauth2/login"))
        .form(&form(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    cookies.extend(set_cookies(&done));
    let code = location_params(&done)["code"].clone();
    // Stopped as an operator stops it: lines are written by a non-blocking writer, and a
    // normal shutdown writes every queued line (a SIGKILL would lose the last ones).
    stop_as_an_operator_does(server);

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    // The log is not empty and says what it should: one line per request with latency and
    // trace ids, and the flow's ids.
    let requests: Vec<_> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert!(requests.len() >= 5, "{logs}");
    for r in &requests {
        assert!(r["latency_ms"].is_f64(), "{r}");
        assert_eq!(r["trace_id"].as_str().map(str::len), Some(32), "{r}");
        assert_eq!(r["span_id"].as_str().map(str::len), Some(16), "{r}");
    }
    let par = requests
        .iter()
        .find(|r| r["span"]["http.route"] == "/oauth2/par")
        .expect("the push's request line");
    assert_eq!(par["status"], 201);
    assert_eq!(par["client_id"], "app");
    assert!(par["flow_id"].is_string(), "{par}");
    assert!(lines.iter().any(|l| l["message"] == "login failed"));

    let reference = request_uri.rsplit(':').next().unwrap().to_owned();
    let basic = base64_basic("app", SECRET);
    let mut secrets = vec![
        SECRET.to_owned(),
        PASSWORD.to_owned(),
        wrong_password.to_owned(),
        request_uri.clone(),
        reference,
        code,
        csrf,
        basic,
        cheap_password_hash(),
    ];
    assert!(cookies.len() >= 2, "browser and SSO cookies: {cookies:?}");
    secrets.extend(cookies);
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "the logs contain a secret ({s}):\n{logs}"
        );
    }
}

/// The default format (`pretty`) at the default level, written to a file as under compose or
/// Kubernetes: a push's request line names its client and flow once each (a step span that is
/// not built must not make the root span record them again), and carries no colour codes.
#[tokio::test]
async fn pretty_request_lines_name_the_flow_once_and_carry_no_colour_codes() {
    let redis = RedisNode::start(&[]);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile {
        log_format: Some("pretty"),
        log_level: Some("info".into()),
        drain_delay_secs: Some(0),
        clients: vec![ClientEntry::new("app", SECRET)],
        ..ConfigFile::new(port, &redis)
    };
    let (server, log_path) = config.spawn(dir.path(), "par");
    let server = KillOnDrop(server);
    let base = config.base_url();
    wait_ready(&format!("{base}/readyz")).await;
    let push = http_client()
        .post(format!("{base}/oauth2/par"))
        .basic_auth("app", Some(SECRET))
        .form(&push_params("app"))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 201);
    stop_as_an_operator_does(server);

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(!logs.contains('\u{1b}'), "colour codes in a log file:\n{logs}");
    let line = logs
        .lines()
        .find(|l| l.contains(" request ") && l.contains("http.route=\"/oauth2/par\""))
        .unwrap_or_else(|| panic!("no request line for the push:\n{logs}"));
    assert_eq!(line.matches("client_id=\"app\"").count(), 1, "{line}");
    assert_eq!(line.matches("flow_id=").count(), 1, "{line}");
    assert!(line.contains("status=201"), "{line}");
}

/// SIGTERM, then waits: a normal shutdown writes every log line still queued by the
/// non-blocking writer (a SIGKILL would lose the last ones).
fn stop_as_an_operator_does(mut server: KillOnDrop) {
    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(terminated, "kill -TERM");
    let status = server.0.wait().unwrap();
    assert!(status.success(), "par-server did not exit cleanly: {status:?}");
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// `http.admin_bind`: `/metrics` and copies of the probes on the admin listener, and
/// `/metrics` no longer on the public one (it names clients and login outcomes).
#[tokio::test]
async fn metrics_move_to_the_admin_listener() {
    let admin = format!("127.0.0.1:{}", free_port());
    let bind = admin.clone();
    let app = spawn_app_with(Backend::Memory, move |s| s.http.admin_bind = Some(bind)).await;
    let get = |url: String| {
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(app.url("/metrics")).await, 404, "not on the public port");
    assert_eq!(get(app.url("/readyz")).await, 200, "the public probes stay");
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(
            get(format!("http://{admin}{path}")).await,
            200,
            "{path} on the admin port"
        );
    }
    assert_eq!(
        get(format!("http://{admin}/oauth2/par")).await,
        404,
        "nothing else there"
    );
}
