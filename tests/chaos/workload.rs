//! The chaos run's workload: browsers logging in through the load balancer, every request
//! recorded as an [`Op`] of the history.
//!
//! Half the users keep one browser and its SSO session (after their first password login,
//! `/authorize` answers with the code at once; if the session was lost they log in again);
//! the other half use a fresh browser and the password form for every login. Each user
//! pauses 30–300 ms between steps, as a person would, so that logins are spread over the
//! faults instead of finishing between them. Every successful login is replayed twice, 4 s
//! and 9 s later (the same browser re-sends its last authorization step, then the code is
//! presented again): the requests that would succeed if a failover brought a taken record
//! back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Rng;
use crate::harness::{CHALLENGE, CLIENT, PASSWORD, REDIRECT, SECRET, VERIFIER};
use crate::history::{Answer, Op, Step};
use crate::html::form_value;

/// The history being written: requests in the order they finished.
pub struct Recorder {
    t0: Instant,
    ops: Mutex<Vec<Op>>,
    next_flow: AtomicU64,
}

impl Recorder {
    pub fn new(t0: Instant) -> Self {
        Self {
            t0,
            ops: Mutex::new(Vec::new()),
            next_flow: AtomicU64::new(0),
        }
    }

    pub fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t0).as_millis() as u64
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }
}

/// A browser: its own cookie jar, no redirects followed, idle connections dropped well
/// before HAProxy's `timeout http-keep-alive` (5 s) so no request races a closing socket.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

struct Reply {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Reply {
    fn location_param(&self, name: &str) -> Option<String> {
        let url = url::Url::parse(self.location.as_deref()?).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A redirect to the client carrying a code.
    fn code(&self) -> Option<String> {
        let to_client = self.location.as_deref().is_some_and(|l| l.starts_with(REDIRECT));
        (matches!(self.status, 302 | 303) && to_client)
            .then(|| self.location_param("code"))
            .flatten()
    }

    /// What a reply that is not the step's success means.
    fn failure(&self) -> Answer {
        let oauth = self
            .location_param("error")
            .or_else(|| between(&self.body, "\"error\":\"", "\""))
            .or_else(|| between(&self.body, "<code>", "</code>"));
        match (self.status, oauth) {
            (500, _) => Answer::ServerError,
            (status, Some(error)) => Answer::OAuth { status, error },
            (s @ 502..=504, None) => Answer::Lb(s),
            (s, None) => Answer::Other(format!("{s}: {}", &self.body[..self.body.len().min(120)])),
        }
    }
}

fn between(s: &str, open: &str, close: &str) -> Option<String> {
    let at = s.find(open)? + open.len();
    let len = s[at..].find(close)?;
    Some(s[at..at + len].to_owned())
}

async fn send(req: reqwest::RequestBuilder) -> Result<Reply, Answer> {
    let res = req.send().await.map_err(|e| Answer::Transport(e.to_string()))?;
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    let body = res.text().await.map_err(|e| Answer::Transport(e.to_string()))?;
    Ok(Reply {
        status,
        location,
        body,
    })
}

/// What a successful step yields.
enum Got {
    RequestUri(String),
    /// The login form's fields (authorize without a session).
    Page(Vec<(&'static str, String)>),
    Code(String),
    Tokens,
}

/// One flow's browser and what it has so far.
struct Flow {
    id: u64,
    browser: reqwest::Client,
    request_uri: Option<String>,
    code: Option<String>,
    form: Vec<(&'static str, String)>,
}

struct Ctx {
    lb: String,
    rec: Arc<Recorder>,
}

impl Ctx {
    /// Sends one step of `flow`, records it, and returns what it yielded.
    async fn step(&self, flow: &Flow, step: Step) -> Option<Got> {
        let base = &self.lb;
        let state = format!("f{}", flow.id);
        let req = match step {
            Step::Push => flow
                .browser
                .post(format!("{base}/oauth2/par"))
                .basic_auth(CLIENT, Some(SECRET))
                .form(&[
                    ("client_id", CLIENT),
                    ("response_type", "code"),
                    ("scope", "openid email profile"),
                    ("redirect_uri", REDIRECT),
                    ("state", state.as_str()),
                    ("code_challenge", CHALLENGE),
                    ("code_challenge_method", "S256"),
                ]),
            Step::Authorize | Step::ReplayAuthorize => {
                flow.browser.get(format!("{base}/oauth2/authorize")).query(&[
                    ("client_id", CLIENT),
                    ("request_uri", flow.request_uri.as_deref()?),
                ])
            }
            Step::Login | Step::ReplayLogin => {
                flow.browser.post(format!("{base}/oauth2/login")).form(&flow.form)
            }
            Step::Token | Step::ReplayToken => flow
                .browser
                .post(format!("{base}/oauth2/token"))
                .basic_auth(CLIENT, Some(SECRET))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", flow.code.as_deref()?),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ]),
        };
        let start = Instant::now();
        let reply = send(req).await;
        let end = Instant::now();
        let (answer, got) = match reply {
            Err(a) => (a, None),
            Ok(r) => match (step, r.status) {
                (Step::Push, 201) => match between(&r.body, "\"request_uri\":\"", "\"") {
                    Some(u) => (Answer::Ok, Some(Got::RequestUri(u))),
                    None => (Answer::Other("201 without request_uri".into()), None),
                },
                (Step::Authorize | Step::ReplayAuthorize, 200) if r.body.contains("csrf_token") => {
                    let mut form: Vec<(&'static str, String)> = ["client_id", "request_uri", "csrf_token"]
                        .into_iter()
                        .map(|n| (n, form_value(&r.body, n).unwrap_or_default()))
                        .collect();
                    form.push(("username", "alice".into()));
                    form.push(("password", PASSWORD.into()));
                    (Answer::Ok, Some(Got::Page(form)))
                }
                (Step::Token | Step::ReplayToken, 200) if r.body.contains("access_token") => {
                    (Answer::Ok, Some(Got::Tokens))
                }
                (Step::Authorize | Step::ReplayAuthorize | Step::Login | Step::ReplayLogin, _) => {
                    match r.code() {
                        Some(c) => (Answer::Ok, Some(Got::Code(c))),
                        None => (r.failure(), None),
                    }
                }
                _ => (r.failure(), None),
            },
        };
        let code = match &got {
            Some(Got::Code(c)) => Some(c.clone()),
            _ if matches!(step, Step::Token | Step::ReplayToken) => flow.code.clone(),
            _ => None,
        };
        let request_uri = match &got {
            Some(Got::RequestUri(u)) => Some(u.clone()),
            _ => flow.request_uri.clone(),
        };
        self.rec.ops.lock().unwrap().push(Op {
            flow: flow.id,
            step,
            start_ms: self.rec.ms(start),
            end_ms: self.rec.ms(end),
            answer,
            request_uri,
            code,
        });
        got
    }

    /// push → authorize → (login form →) token. `true` if the tokens came back.
    async fn login(&self, flow: &mut Flow, rng: &mut Rng) -> bool {
        let Some(Got::RequestUri(u)) = self.step(flow, Step::Push).await else {
            return false;
        };
        flow.request_uri = Some(u);
        think(rng).await;
        match self.step(flow, Step::Authorize).await {
            Some(Got::Code(c)) => flow.code = Some(c),
            Some(Got::Page(form)) => {
                flow.form = form;
                think(rng).await;
                let Some(Got::Code(c)) = self.step(flow, Step::Login).await else {
                    return false;
                };
                flow.code = Some(c);
            }
            _ => return false,
        }
        think(rng).await;
        matches!(self.step(flow, Step::Token).await, Some(Got::Tokens))
    }

    /// The same browser re-sends its last authorization step, then the code again.
    async fn replay(&self, flow: &Flow) {
        let again = if flow.form.is_empty() {
            Step::ReplayAuthorize
        } else {
            Step::ReplayLogin
        };
        self.step(flow, again).await;
        self.step(flow, Step::ReplayToken).await;
    }
}

async fn think(rng: &mut Rng) {
    tokio::time::sleep(Duration::from_millis(rng.range(30, 300))).await;
}

/// Replays of a login, this long after it succeeded.
pub const REPLAY_AFTER: [Duration; 2] = [Duration::from_secs(4), Duration::from_secs(9)];

/// The running workload.
pub struct Workload {
    stop: Arc<AtomicBool>,
    users: Vec<tokio::task::JoinHandle<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Workload {
    /// `users` users (even ids SSO, odd ids password) through `lb` until [`Workload::finish`]
    /// or `max_time`, whichever comes first.
    pub fn start(lb: &str, rec: Arc<Recorder>, users: usize, seed: u64, max_time: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + max_time;
        let ctx = Arc::new(Ctx {
            lb: lb.to_owned(),
            rec,
        });
        let users = (0..users)
            .map(|u| {
                let (ctx, stop) = (ctx.clone(), stop.clone());
                let mut rng = Rng::new(seed ^ (u as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                tokio::spawn(async move {
                    let sso = u % 2 == 0;
                    let sso_browser = browser();
                    let mut replays = Vec::new();
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let mut flow = Flow {
                            id: ctx.rec.next_flow.fetch_add(1, Ordering::Relaxed),
                            browser: if sso { sso_browser.clone() } else { browser() },
                            request_uri: None,
                            code: None,
                            form: Vec::new(),
                        };
                        if ctx.login(&mut flow, &mut rng).await {
                            let ctx = ctx.clone();
                            replays.push(tokio::spawn(async move {
                                let mut waited = Duration::ZERO;
                                for after in REPLAY_AFTER {
                                    tokio::time::sleep(after - waited).await;
                                    waited = after;
                                    ctx.replay(&flow).await;
                                }
                            }));
                        }
                        think(&mut rng).await;
                    }
                    replays
                })
            })
            .collect();
        Self { stop, users }
    }

    /// Stops starting logins, then waits for the running ones and every scheduled replay
    /// (bounded: the last replay is `REPLAY_AFTER[1]` after the last login, and every
    /// request has the client's 10 s timeout).
    pub async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for u in self.users {
            for r in u.await.unwrap_or_default() {
                let _ = r.await;
            }
        }
    }
}
