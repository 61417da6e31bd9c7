//! `AppState`: everything a handler needs, built once per process from validated settings
//! and shared by all workers. It holds no per-flow state: that lives in the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::{Profile, Settings, ValidSettings};
use crate::oauth::client::ClientRegistry;
use crate::oauth::discovery::{self, Capabilities, Endpoints};
use crate::oauth::dpop::DpopRules;
use crate::oauth::request_object;
use crate::signing::SigningKeys;
use crate::store::Store;
use crate::users::UserDirectory;

/// PAR timers and prefixes.
#[derive(Debug, Clone)]
pub(crate) struct ParPolicy {
    /// Redemption window = `expires_in`.
    pub lifetime: Duration,
    /// Life of a claimed request while the user logs in.
    pub interaction_lifetime: Duration,
    pub prefix: String,
    pub accepted_prefixes: Vec<String>,
    /// What signed request objects must satisfy (JAR).
    pub request_objects: request_object::Policy,
}

/// Lifetimes of what the login and token steps issue.
#[derive(Debug, Clone)]
pub struct Lifetimes {
    pub code: Duration,
    pub access_token: Duration,
    pub id_token: Duration,
    /// SSO session; zero disables SSO.
    pub session: Duration,
    /// A refresh token unused this long expires.
    pub refresh_idle: Duration,
    /// The end of a grant's refresh tokens, from the code's redemption.
    pub refresh_absolute: Duration,
    /// A new refresh token on every use (`tokens.refresh_token_rotation`).
    pub refresh_rotation: bool,
}

/// The built-in demo client, when enabled.
#[derive(Debug, Clone)]
pub(crate) struct Playground {
    pub client_id: String,
    pub client_secret: crate::secret::Secret,
    /// `{issuer}/playground/callback`.
    pub redirect_uri: String,
    /// This replica's own OAuth endpoints (`http://127.0.0.1:<port>/oauth2`): the playground
    /// calls PAR, token and userinfo on the process that serves it.
    pub local_base: String,
}

/// Request bodies: how much, and how long to wait for all of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    pub max: usize,
    pub deadline: Duration,
}

pub struct AppState {
    pub(crate) endpoints: Endpoints,
    pub(crate) assertion_audiences: Vec<String>,
    pub(crate) clients: ClientRegistry,
    pub(crate) users: UserDirectory,
    pub store: Store,
    /// The server's signing keys (one active, all published at `/jwks`).
    pub signing_keys: SigningKeys,
    pub(crate) par: ParPolicy,
    pub lifetimes: Lifetimes,
    /// Request bodies: size cap and deadline (`http.body_limit`, `http.body_timeout_secs`).
    pub(crate) body: BodyLimits,
    /// Admission to password checks (`limits.password_queue`).
    pub(crate) passwords: crate::password::PasswordQueue,
    /// Rate limits and the password back-off (`limits.*`).
    pub(crate) limits: crate::limits::Limits,
    /// Cookies carry `Secure`: false only when the issuer is plain http on loopback.
    pub(crate) secure_cookies: bool,
    /// URL path of the OAuth endpoints (`http.base_path`).
    pub(crate) base_path: String,
    pub(crate) playground: Option<Playground>,
    /// The serialized discovery document.
    pub(crate) metadata: String,
    /// DPoP proof policy and nonce keys (RFC 9449).
    pub(crate) dpop: DpopRules,
    /// The accepted proof algorithms, space-separated, for `DPoP` challenges.
    pub(crate) dpop_algs: String,
    draining: Arc<AtomicBool>,
}

impl AppState {
    /// From the validated configuration; `issuer` is the one in force, `local` the address
    /// this process listens on.
    pub fn build(valid: ValidSettings, issuer: &str, local: std::net::SocketAddr) -> anyhow::Result<Self> {
        let ValidSettings {
            settings,
            clients,
            users,
            signing_keys,
            redis,
            dpop,
            limits,
            ..
        } = valid;
        let fapi2 = settings.profile == Profile::Fapi2;
        let settings = &settings;
        let store = match &redis {
            Some(options) => Store::redis(options, &settings.redis.key_prefix)?,
            None => Store::memory(&settings.redis.key_prefix),
        }
        .limit_record_size(settings.par.max_record_bytes);
        let signing_keys = match signing_keys {
            Some(keys) => keys,
            None => SigningKeys::generate()?,
        };
        let endpoints = Endpoints::new(issuer, &settings.http.base_path);
        let mut scopes: Vec<String> = Vec::new();
        for c in &settings.clients {
            for s in &c.scopes {
                if !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
        }
        let capabilities = Capabilities {
            require_par: clients.all_require_par(),
            require_signed_request_objects: clients.all_require_signed_request_objects(),
            authorization_details_types: clients.authorization_details_types(),
            fapi2,
            auth_methods: clients.methods_in_use(),
            scopes,
            signing_algs: signing_keys.signing_algs(),
            dpop_algs: dpop.policy.alg_names(),
            refresh_tokens: clients.any(|c| c.grant_types.iter().any(|g| g == "refresh_token")),
        };
        let metadata = discovery::metadata(&endpoints, &capabilities).to_string();
        let playground = playground(settings, &clients, issuer, local)?;
        Ok(Self {
            assertion_audiences: endpoints.assertion_audiences(),
            endpoints,
            clients,
            users,
            store,
            signing_keys,
            par: ParPolicy {
                lifetime: Duration::from_secs(settings.par.request_uri_lifetime),
                interaction_lifetime: Duration::from_secs(settings.par.interaction_lifetime),
                prefix: settings.par.request_uri_prefix.clone(),
                accepted_prefixes: settings.accepted_prefixes(),
                request_objects: request_object::Policy {
                    max_lifetime_secs: settings.par.request_object_max_lifetime,
                    require_typ: settings.par.request_object_require_typ,
                    // FAPI 2.0 Message Signing §5.3.1: nbf is required.
                    require_nbf: fapi2,
                },
            },
            lifetimes: Lifetimes {
                code: Duration::from_secs(settings.tokens.code_lifetime),
                access_token: Duration::from_secs(settings.tokens.access_token_lifetime),
                id_token: Duration::from_secs(settings.tokens.id_token_lifetime),
                session: Duration::from_secs(settings.session.lifetime),
                refresh_idle: Duration::from_secs(settings.tokens.refresh_token_idle_lifetime),
                refresh_absolute: Duration::from_secs(settings.tokens.refresh_token_absolute_lifetime),
                refresh_rotation: settings.tokens.refresh_token_rotation,
            },
            body: BodyLimits {
                max: settings.http.body_limit,
                deadline: Duration::from_secs(settings.http.body_timeout_secs),
            },
            passwords: crate::password::PasswordQueue::new(limits.password_queue),
            limits,
            secure_cookies: !issuer.starts_with("http://"),
            base_path: settings.http.base_path.clone(),
            playground,
            metadata,
            dpop_algs: dpop.policy.alg_names().join(" "),
            dpop,
            draining: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Shutdown has begun: `/readyz` answers 503 so load balancers drain this replica.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn drain_flag(&self) -> Arc<AtomicBool> {
        self.draining.clone()
    }
}

/// The playground's settings, checked against the client registry.
fn playground(
    settings: &Settings,
    clients: &ClientRegistry,
    issuer: &str,
    local: std::net::SocketAddr,
) -> anyhow::Result<Option<Playground>> {
    if !settings.playground.enabled {
        return Ok(None);
    }
    let client_id =
        settings.playground.client_id.clone().ok_or_else(|| {
            anyhow::anyhow!("playground.client_id is required when the playground is enabled")
        })?;
    let client = clients
        .get(&client_id)
        .ok_or_else(|| anyhow::anyhow!("playground.client_id: no client '{client_id}'"))?;
    let crate::oauth::client::Credential::Secret(secret) = &client.credential else {
        anyhow::bail!("playground.client_id: the playground needs a client with a client_secret");
    };
    let secret = secret.clone();
    let redirect_uri = format!("{}/playground/callback", issuer.trim_end_matches('/'));
    if !client.redirect_uri_allowed(&redirect_uri) {
        anyhow::bail!(
            "playground.client_id: client '{client_id}' must register the redirect URI {redirect_uri}"
        );
    }
    let host = match local.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_owned(),
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    Ok(Some(Playground {
        client_id,
        client_secret: secret,
        redirect_uri,
        local_base: format!("http://{host}:{}{}", local.port(), settings.http.base_path),
    }))
}
