//! `Application`: binds the listener (port 0 in tests), builds the shared state, and holds
//! the one route table of the service.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, guard, web};
use tracing_actix_web::TracingLogger;

use crate::config::ValidSettings;
use crate::playground;
use crate::routes::{
    assets, authorize, consent, discovery, health, jwks, login, methods, metrics, par, revoke, token,
    userinfo,
};
use crate::state::AppState;
use crate::telemetry::{RootSpan, SamplingGate};

pub struct Application {
    address: SocketAddr,
    server: Server,
    /// The admin listener (`http.admin_bind`): metrics and probes.
    admin: Option<(SocketAddr, Server)>,
    state: web::Data<AppState>,
    drain_delay: Duration,
}

impl Application {
    /// Binds `http.bind` and builds the shared state from the validated configuration.
    pub async fn build(valid: ValidSettings) -> anyhow::Result<Self> {
        let http = valid.settings.http.clone();
        let listener = TcpListener::bind(&http.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", http.bind))?;
        let address = listener.local_addr()?;
        let issuer = valid.settings.issuer_or(address);
        crate::telemetry::metrics::install();
        let redis_configured = valid.settings.redis.is_configured();
        let allow_evicting = valid.settings.redis.allow_evicting_policy;
        let sampling_ratio = valid.settings.telemetry.sampling_ratio;
        let state = web::Data::new(AppState::build(valid, &issuer, address)?);
        if redis_configured {
            check_eviction_policy(&state.store, allow_evicting).await?;
        }
        let base = http.base_path.clone();
        let app_state = state.clone();
        let metrics_here = http.admin_bind.is_none();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::<RootSpan>::new())
                // Outermost: decides sampling before the root span exists.
                .wrap(SamplingGate::new(sampling_ratio))
                .app_data(app_state.clone())
                .configure(|cfg| routes_table(cfg, &base, metrics_here))
        })
        .shutdown_timeout(http.shutdown_grace_secs)
        .client_request_timeout(Duration::from_secs(http.header_timeout_secs))
        // A client that closes its side has gone: drop its request (and any password check
        // it queued, src/password.rs) instead of finishing work nobody will read.
        .h1_allow_half_closed(false)
        // Signals are ours (crate::shutdown): drain before the listener closes.
        .disable_signals();
        let workers = match http.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        // actix counts connections per worker.
        server = server
            .workers(workers)
            .max_connections(http.max_connections.div_ceil(workers).max(1));
        let server = server.listen(listener)?.run();
        let admin = match &http.admin_bind {
            Some(bind) => Some(admin_server(bind, state.clone())?),
            None => None,
        };
        Ok(Self {
            address,
            server,
            admin,
            state,
            drain_delay: Duration::from_secs(http.drain_delay_secs),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The admin listener's address, when `http.admin_bind` is set.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(a, _)| *a)
    }

    pub fn issuer(&self) -> &str {
        &self.state.endpoints.issuer
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.admin {
            Some((_, admin)) => {
                let (main, admin) = tokio::join!(self.server, admin);
                main.and(admin)
            }
            None => self.server.await,
        }
    }

    /// Serves until SIGTERM/SIGINT, then drains and stops gracefully (`crate::shutdown`).
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        self.run_until(crate::shutdown::signal()).await
    }

    /// Serves until `trigger` completes, then drains and stops gracefully: `/readyz`
    /// reports draining for `http.drain_delay_secs`, then in-flight requests get
    /// `http.shutdown_grace_secs`.
    pub(crate) async fn run_until(
        self,
        trigger: impl Future<Output = &'static str> + 'static,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        let watcher = actix_web::rt::spawn(crate::shutdown::drain_then_stop(
            trigger,
            handle,
            self.state.drain_flag(),
            self.drain_delay,
        ));
        let result = self.server.await;
        watcher.abort();
        // The admin listener outlives the public one's drain (probes keep answering), then
        // stops with it.
        if let Some((_, admin)) = self.admin {
            admin.handle().stop(true).await;
            let _ = admin.await;
        }
        result
    }
}

/// Refuses to start on a Redis whose `maxmemory-policy` may evict keys: every key here has a
/// TTL, so `volatile-*` policies evict as surely as `allkeys-*`, and an evicted used-marker
/// or `jti` lets a code or an assertion be used twice. `noeviction` makes a full Redis
/// refuse writes instead (503 until keys expire). With `redis.allow_evicting_policy` only a
/// warning. Where `CONFIG` is not allowed, or Redis does not answer yet, a warning says what
/// to check (docs/redis.md, "Memory").
async fn check_eviction_policy(store: &crate::store::Store, allow: bool) -> anyhow::Result<()> {
    match store.eviction_policy().await {
        Ok(Some(policy)) if policy == "noeviction" => Ok(()),
        Ok(Some(policy)) if allow => {
            tracing::warn!(
                %policy,
                "redis maxmemory-policy may evict keys: single-use markers can be evicted and a code or assertion reused (redis.allow_evicting_policy is set)"
            );
            Ok(())
        }
        Ok(Some(policy)) => anyhow::bail!(
            "redis maxmemory-policy is {policy}: it may evict single-use markers, letting a code or an assertion be used twice; set it to noeviction (docs/redis.md), or redis.allow_evicting_policy: true to start anyway"
        ),
        Ok(None) => {
            tracing::warn!(
                "could not read redis maxmemory-policy (CONFIG not allowed): make sure it is noeviction (docs/redis.md)"
            );
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "redis did not answer at start: maxmemory-policy not checked; it must be noeviction (docs/redis.md)");
            Ok(())
        }
    }
}

/// The admin listener: `/metrics` and copies of the probes, one worker, for the scraper
/// and the orchestrator only (docs/operations.md, "Admin listener").
fn admin_server(bind: &str, state: web::Data<AppState>) -> anyhow::Result<(SocketAddr, Server)> {
    let listener = TcpListener::bind(bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind} (http.admin_bind): {e}"))?;
    let address = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/healthz", web::get().to(health::live))
            .route("/readyz", web::get().to(health::ready))
            .route("/metrics", web::get().to(metrics::metrics))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok((address, server))
}

/// The route table: every endpoint of the service, in one place. `/metrics` is here unless
/// the admin listener serves it (`http.admin_bind`).
fn routes_table(cfg: &mut web::ServiceConfig, base: &str, metrics_here: bool) {
    let post_only = |path: String, handler| {
        web::resource(path)
            .route(handler)
            .default_service(web::to(methods::post_only))
    };
    // RFC 9110 §9.3.2: HEAD wherever GET is served and safe to repeat without effect
    // (actix sends the headers only); not on the playground's callback, which redeems a
    // code, nor on userinfo, an API.
    let get = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
    cfg.service(post_only(format!("{base}/par"), web::post().to(par::push)))
        .service(
            web::resource(format!("{base}/authorize"))
                .route(get().to(authorize::authorize))
                .route(web::post().to(authorize::authorize))
                .default_service(web::to(methods::get_or_post)),
        )
        .service(post_only(format!("{base}/login"), web::post().to(login::login)))
        .service(post_only(
            format!("{base}/consent"),
            web::post().to(consent::consent),
        ))
        .service(post_only(
            format!("{base}/token"),
            web::post().to(token::exchange),
        ))
        .service(post_only(
            format!("{base}/revoke"),
            web::post().to(revoke::revoke),
        ))
        .route(&format!("{base}/jwks"), get().to(jwks::jwks))
        .service(
            web::resource(format!("{base}/userinfo"))
                .route(web::get().to(userinfo::userinfo))
                .route(web::post().to(userinfo::userinfo))
                .default_service(web::to(methods::get_or_post)),
        )
        .route(&format!("{base}/assets/style.css"), get().to(assets::stylesheet))
        .route("/.well-known/openid-configuration", get().to(discovery::metadata))
        .route(
            "/.well-known/oauth-authorization-server",
            get().to(discovery::metadata),
        )
        .route("/playground", get().to(playground::index))
        .service(post_only(
            "/playground/start".into(),
            web::post().to(playground::start),
        ))
        .route("/playground/callback", web::get().to(playground::callback))
        .route("/healthz", get().to(health::live))
        .route("/readyz", get().to(health::ready));
    if metrics_here {
        cfg.route("/metrics", get().to(metrics::metrics));
    }
}
