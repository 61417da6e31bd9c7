//! The user directory (built from the `users` section at start) and the OIDC claims each
//! scope releases (OIDC Core §5.4).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub sub: String,
    pub password_hash: Secret,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

impl User {
    /// Claims released for `scopes`: `openid` → `sub`; `email` → `email`, `email_verified`;
    /// `profile` → `name`, `given_name`, `family_name`, `preferred_username`.
    pub(crate) fn claims_for(&self, scopes: &[String]) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::String(self.sub.clone()));
        let has = |s: &str| scopes.iter().any(|x| x == s);
        if has("email")
            && let Some(email) = &self.email
        {
            claims.insert("email".into(), Value::String(email.clone()));
            claims.insert("email_verified".into(), Value::Bool(self.email_verified));
        }
        if has("profile") {
            for (k, v) in [
                ("name", &self.name),
                ("given_name", &self.given_name),
                ("family_name", &self.family_name),
            ] {
                if let Some(v) = v {
                    claims.insert(k.into(), Value::String(v.clone()));
                }
            }
            claims.insert("preferred_username".into(), Value::String(self.username.clone()));
        }
        claims
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct UserDirectory {
    by_username: HashMap<String, Arc<User>>,
    by_sub: HashMap<String, Arc<User>>,
}

impl UserDirectory {
    pub fn new(users: Vec<User>) -> Self {
        let mut dir = Self::default();
        for user in users {
            let user = Arc::new(user);
            dir.by_sub.insert(user.sub.clone(), user.clone());
            dir.by_username.insert(user.username.clone(), user);
        }
        dir
    }

    pub(crate) fn by_username(&self, username: &str) -> Option<&Arc<User>> {
        self.by_username.get(username)
    }

    pub(crate) fn by_sub(&self, sub: &str) -> Option<&Arc<User>> {
        self.by_sub.get(sub)
    }
}
