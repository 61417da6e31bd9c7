//! The user directory (built from the `users` section at start) and the OIDC claims each
//! scope releases (OIDC Core §5.4).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::oauth::claims::released;

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
    /// Claims released for `scopes` (OIDC Core §5.4: `openid` → `sub`; `email` → `email`,
    /// `email_verified`; `profile` → `name`, `given_name`, `family_name`,
    /// `preferred_username`) and the single claims `requested` by name (§5.5), where the
    /// user has them (`oauth::claims`).
    pub(crate) fn claims_for(&self, scopes: &[String], requested: &[String]) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::String(self.sub.clone()));
        let email = self.email.as_ref().map(|e| Value::String(e.clone()));
        let verified = self.email.as_ref().map(|_| Value::Bool(self.email_verified));
        let text = |v: &Option<String>| v.as_ref().map(|v| Value::String(v.clone()));
        for (name, value) in [
            ("email", email),
            ("email_verified", verified),
            ("name", text(&self.name)),
            ("given_name", text(&self.given_name)),
            ("family_name", text(&self.family_name)),
            ("preferred_username", Some(Value::String(self.username.clone()))),
        ] {
            if let Some(value) = value
                && released(name, scopes, requested)
            {
                claims.insert(name.into(), value);
            }
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
