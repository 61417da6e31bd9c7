//! The zero-config demo: with no configuration at all, `par-server` starts on loopback with
//! the in-memory store, one confidential demo client and one demo user whose credentials are
//! generated now and printed once.

use super::settings::{ApplicationType, ClientSettings, Settings, Source, UserSettings};
use crate::crypto::random_token;
use crate::secret::Secret;

pub(crate) const DEMO_CLIENT_ID: &str = "demo-app";
pub(crate) const DEMO_USER: &str = "alice";

/// The generated credentials, for the start-up banner.
pub struct DemoCredentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub username: String,
    pub password: Secret,
}

/// True when the deployment gave no clients and no file: run the demo.
pub fn wanted(settings: &Settings, source: &Source) -> bool {
    *source == Source::Defaults && settings.clients.is_empty()
}

/// Adds the demo client and user, and turns the playground on.
pub fn apply(settings: &mut Settings) -> anyhow::Result<DemoCredentials> {
    let client_secret = random_token(24);
    let password = random_token(12);
    settings.clients.push(ClientSettings {
        client_name: Some("Demo app".into()),
        client_secret: Some(Secret::new(client_secret.clone())),
        // The demo listens on loopback on a port chosen at start (the playground calls back
        // there): registered as native, its loopback redirect URIs may use any port (RFC 8252
        // §7.3).
        application_type: ApplicationType::Native,
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
        ..ClientSettings::new(
            DEMO_CLIENT_ID,
            vec![
                "http://127.0.0.1/playground/callback".into(),
                "http://127.0.0.1:9000/callback".into(),
            ],
        )
    });
    settings.users.push(UserSettings {
        username: DEMO_USER.into(),
        password_hash: Secret::new(crate::password::hash(&password)?),
        sub: None,
        email: Some("alice@example.com".into()),
        email_verified: true,
        name: Some("Alice Example".into()),
        given_name: Some("Alice".into()),
        family_name: Some("Example".into()),
    });
    settings.playground.enabled = true;
    settings.playground.client_id = Some(DEMO_CLIENT_ID.into());
    Ok(DemoCredentials {
        client_id: DEMO_CLIENT_ID.into(),
        client_secret: Secret::new(client_secret),
        username: DEMO_USER.into(),
        password: Secret::new(password),
    })
}
