//! Which user claims are released, and where (OIDC Core §5.4 scopes, §5.5 the `claims`
//! request parameter). A claim belongs to one scope; a client may ask for single claims with
//! `claims` (`{"id_token": {...}, "userinfo": {...}}`), and gets those whose scope it is
//! registered for. Values come from the user directory (`crate::users`); a claim the user
//! does not have is left out (they are all voluntary here: OIDC Core §5.5.1, an essential
//! claim that cannot be provided does not fail the request).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::Client;

/// The scope that releases a claim, for the claims this server knows.
pub(crate) fn scope_of(claim: &str) -> Option<&'static str> {
    match claim {
        "email" | "email_verified" => Some("email"),
        "name" | "given_name" | "family_name" | "preferred_username" => Some("profile"),
        _ => None,
    }
}

/// Claims asked for by name with the `claims` parameter, kept to those the client may have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedClaims {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub userinfo: Vec<String>,
}

impl RequestedClaims {
    /// From the `claims` parameter (a JSON object, validated at the request), keeping the
    /// claims of scopes `client` is registered for; unknown claims are ignored (§5.5).
    pub(crate) fn from_parameter(raw: Option<&str>, client: &Client) -> Self {
        let Some(Value::Object(request)) = raw.and_then(|r| serde_json::from_str(r).ok()) else {
            return Self::default();
        };
        let names = |member: &str| -> Vec<String> {
            let Some(Value::Object(claims)) = request.get(member) else {
                return Vec::new();
            };
            claims
                .keys()
                .filter(|c| scope_of(c).is_some_and(|s| client.scope_allowed(s)))
                .cloned()
                .collect()
        };
        Self {
            id_token: names("id_token"),
            userinfo: names("userinfo"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.id_token.is_empty() && self.userinfo.is_empty()
    }
}

/// Whether `claim` is released, given the granted `scopes` and the claims asked for by name.
pub(crate) fn released(claim: &str, scopes: &[String], requested: &[String]) -> bool {
    scope_of(claim).is_some_and(|s| scopes.iter().any(|x| x == s)) || requested.iter().any(|r| r == claim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client::test_client;

    #[test]
    fn requested_claims_are_kept_to_the_clients_scopes() {
        let mut client = test_client("a");
        client.scopes = ["openid", "email"].map(String::from).to_vec();
        let raw = r#"{"id_token": {"email": {"essential": true}, "name": null, "acr": null},
                      "userinfo": {"email_verified": null}}"#;
        let r = RequestedClaims::from_parameter(Some(raw), &client);
        assert_eq!(
            r.id_token,
            vec!["email"],
            "profile is not the client's; acr unknown"
        );
        assert_eq!(r.userinfo, vec!["email_verified"]);
        assert!(RequestedClaims::from_parameter(Some("[]"), &client).is_empty());
        assert!(released("email", &[], &r.id_token));
        assert!(!released("name", &["openid".into()], &r.id_token));
        assert!(released("name", &["profile".into()], &[]));
    }
}
