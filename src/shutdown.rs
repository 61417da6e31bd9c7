//! Graceful shutdown (docs/operations.md, "Shutdown"): on SIGTERM or
//! SIGINT the replica first reports not-ready (`/readyz` → 503) and keeps serving for
//! `http.drain_delay_secs`, so load balancers take it out of rotation; then it stops
//! accepting and gives in-flight requests `http.shutdown_grace_secs` to finish
//! (`ServerHandle::stop(true)`); the caller then flushes telemetry and exits 0.
//!
//! actix' own signal handling is disabled (`HttpServer::disable_signals`): it would close
//! the listener at once, before the load balancer has noticed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::ServerHandle;

/// Waits for SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// Drains and stops `server` once `trigger` completes: not-ready first, then after
/// `drain_delay` a graceful stop. A second signal during the delay cuts it short.
pub(crate) async fn drain_then_stop(
    trigger: impl Future<Output = &'static str>,
    server: ServerHandle,
    draining: Arc<AtomicBool>,
    drain_delay: Duration,
) {
    let which = trigger.await;
    draining.store(true, Ordering::Relaxed);
    tracing::info!(
        signal = which,
        drain_delay_secs = drain_delay.as_secs(),
        "shutdown: /readyz now reports draining"
    );
    tokio::select! {
        _ = tokio::time::sleep(drain_delay) => {}
        s = signal() => tracing::warn!(signal = s, "second signal: skipping the rest of the drain delay"),
    }
    tracing::info!("shutdown: closing the listener; waiting for in-flight requests");
    server.stop(true).await;
}
