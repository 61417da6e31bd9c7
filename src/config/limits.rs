//! `limits.*` and `clients[].limits`: checked and turned into the [`Limits`] in force;
//! an unset key keeps the default of [`Limits::default`].

use std::time::Duration;

use super::error::{ConfigError, fail};
use super::settings::{BackoffSettings, ClientSettings, LimitSettings, RateSettings};
use crate::limits::{Cidr, ClientRates, Limits};
use crate::store::{Backoff, Rate};

pub(super) fn limits(
    settings: &LimitSettings,
    clients: &[ClientSettings],
    request_uri_lifetime: Duration,
) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    // "Outstanding" = pushed within one redemption window: a GCRA of that period.
    limits.outstanding_per_client.per = request_uri_lifetime;
    limits.outstanding_per_public_address.per = request_uri_lifetime;
    if let Some(n) = settings.outstanding_per_client {
        limits.outstanding_per_client.requests = n;
    }
    if let Some(n) = settings.outstanding_per_public_address {
        limits.outstanding_per_public_address.requests = n;
    }
    if settings.password_queue > 100_000 {
        return fail("limits.password_queue", "must be at most 100000 (0 = 32 per CPU)");
    }
    limits.password_queue = settings.password_queue;
    for (i, p) in settings.trusted_proxies.iter().enumerate() {
        let cidr = Cidr::parse(p).ok_or_else(|| {
            ConfigError::new(
                format!("limits.trusted_proxies[{i}]"),
                "must be an IP address or a CIDR range such as 10.0.0.0/8",
            )
        })?;
        limits.trusted_proxies.push(cidr);
    }
    let rates = [
        (
            "par_per_client",
            settings.par_per_client,
            &mut limits.par_per_client,
        ),
        (
            "token_per_client",
            settings.token_per_client,
            &mut limits.token_per_client,
        ),
        (
            "par_per_address",
            settings.par_per_address,
            &mut limits.par_per_address,
        ),
        (
            "authorize_per_address",
            settings.authorize_per_address,
            &mut limits.authorize_per_address,
        ),
        (
            "login_per_address",
            settings.login_per_address,
            &mut limits.login_per_address,
        ),
        (
            "token_per_address",
            settings.token_per_address,
            &mut limits.token_per_address,
        ),
    ];
    for (name, set, slot) in rates {
        if let Some(r) = set {
            *slot = rate(&format!("limits.{name}"), r)?;
        }
    }
    for (name, set, slot) in [
        (
            "password_per_user",
            settings.password_per_user,
            &mut limits.password_per_user,
        ),
        (
            "password_per_user_address",
            settings.password_per_user_address,
            &mut limits.password_per_user_address,
        ),
    ] {
        if let Some(b) = set {
            *slot = backoff(&format!("limits.{name}"), b)?;
        }
    }
    for (i, c) in clients.iter().enumerate() {
        let own = ClientRates {
            par: c
                .limits
                .par
                .map(|r| rate(&format!("clients[{i}].limits.par"), r))
                .transpose()?,
            token: c
                .limits
                .token
                .map(|r| rate(&format!("clients[{i}].limits.token"), r))
                .transpose()?,
        };
        if own.par.is_some() || own.token.is_some() {
            limits.clients.insert(c.client_id.clone(), own);
        }
    }
    Ok(limits)
}

fn rate(key: &str, r: RateSettings) -> Result<Rate, ConfigError> {
    if r.requests > 0 && !(1..=86_400).contains(&r.per_secs) {
        return fail(format!("{key}.per_secs"), "must be between 1 and 86400");
    }
    Ok(Rate {
        requests: r.requests,
        per: Duration::from_secs(r.per_secs),
    })
}

fn backoff(key: &str, b: BackoffSettings) -> Result<Backoff, ConfigError> {
    if b.free > 0 && (b.base_ms == 0 || b.max_secs == 0 || b.base_ms > b.max_secs * 1000) {
        return fail(key, "needs base_ms > 0 and max_secs ≥ base_ms / 1000");
    }
    if b.max_secs > 86_400 || b.forget_secs > 86_400 {
        return fail(key, "max_secs and forget_secs must be at most 86400");
    }
    Ok(Backoff {
        free: b.free,
        base: Duration::from_millis(b.base_ms),
        max: Duration::from_secs(b.max_secs),
        forget: Duration::from_secs(b.forget_secs),
    })
}
