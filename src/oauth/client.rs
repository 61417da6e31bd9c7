//! Registered clients (pure data) and the rules that depend only on a client's registration:
//! redirect-URI matching and allowed scopes.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;

use crate::secret::Secret;

/// How a client authenticates at the PAR and token endpoints (RFC 7591 §2
/// `token_endpoint_auth_method`). Exactly one per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }

    pub(crate) const ALL: [AuthMethod; 4] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::None,
    ];
}

/// The credential a client is registered with.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    Secret(Secret),
    Jwks(Box<JwkSet>),
    None,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub auth_method: AuthMethod,
    pub(crate) credential: Credential,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    /// PAR required for this client (RFC 9126 §6 `require_pushed_authorization_requests`).
    pub require_par: bool,
    pub require_pkce: bool,
    /// Show a consent screen after login.
    pub consent: bool,
    /// The authorization request must come as a signed request object (RFC 9101 §10.5).
    pub require_signed_request_object: bool,
    /// A native application (OIDC Registration `application_type: native`): its loopback
    /// redirect URIs may use any port (RFC 8252 §7.3).
    pub native: bool,
    /// Resource indicators this client may ask for (RFC 8707 §2); empty: none.
    pub resources: Vec<String>,
    /// Authorization details types this client may ask for (RFC 9396 §5); empty: none.
    pub authorization_details_types: Vec<String>,
    /// RFC 9449 §5.2 `dpop_bound_access_tokens`: every token request must carry a proof.
    pub dpop_bound_access_tokens: bool,
    /// Proofs from this client must carry a server nonce (RFC 9449 §8).
    pub require_dpop_nonce: bool,
    /// RFC 7591 §2 `grant_types`: `authorization_code`, and `refresh_token` for clients that
    /// get refresh tokens.
    pub grant_types: Vec<String>,
}

impl Client {
    /// RFC 9700 §2.1 / RFC 6749 §3.1.2.3: exact string match. Only for a native client may
    /// the port of a loopback `http` redirect URI vary (RFC 8252 §7.3), with or without an
    /// explicit port (`:80` included) on either side.
    pub(crate) fn redirect_uri_allowed(&self, candidate: &str) -> bool {
        self.redirect_uris.iter().any(|registered| {
            registered == candidate || (self.native && loopback_equal_except_port(registered, candidate))
        })
    }

    /// RFC 8707 §2: a resource this client is registered for.
    pub(crate) fn resource_allowed(&self, resource: &str) -> bool {
        self.resources.iter().any(|r| r == resource)
    }

    pub(crate) fn scope_allowed(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

fn loopback_equal_except_port(registered: &str, candidate: &str) -> bool {
    let (Ok(mut r), Ok(mut c)) = (url::Url::parse(registered), url::Url::parse(candidate)) else {
        return false;
    };
    let loopback =
        |u: &url::Url| u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1") | Some("[::1]"));
    if !loopback(&r) || !loopback(&c) {
        return false;
    }
    // The parsed form normalises, so also require the candidate to be written exactly as
    // the registered one apart from the port.
    let _ = r.set_port(None);
    let _ = c.set_port(None);
    r == c && strip_port(registered) == strip_port(candidate)
}

/// `uri` with any port written in its authority removed, including a default one (`:80`,
/// which a parsed URL forgets).
fn strip_port(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = match authority.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':') =>
        {
            host
        }
        _ => authority,
    };
    format!("{scheme}://{host}{path}")
}

/// The clients known to this server, by `client_id`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientRegistry {
    clients: HashMap<String, Arc<Client>>,
}

impl ClientRegistry {
    pub fn new(clients: impl IntoIterator<Item = Client>) -> Self {
        Self {
            clients: clients.into_iter().map(|c| (c.id.clone(), Arc::new(c))).collect(),
        }
    }

    pub fn get(&self, client_id: &str) -> Option<&Arc<Client>> {
        self.clients.get(client_id)
    }

    /// Whether any registered client satisfies `f`.
    pub(crate) fn any(&self, f: impl Fn(&Client) -> bool) -> bool {
        self.clients.values().any(|c| f(c))
    }

    /// Whether every registered client must send signed request objects (RFC 9101 §10.5).
    pub(crate) fn all_require_signed_request_objects(&self) -> bool {
        self.clients.values().all(|c| c.require_signed_request_object)
    }

    /// Every authorization details type some client may use (RFC 9396 §10 metadata).
    pub(crate) fn authorization_details_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self
            .clients
            .values()
            .flat_map(|c| c.authorization_details_types.iter().cloned())
            .collect();
        types.sort();
        types.dedup();
        types
    }

    /// Whether every registered client must use PAR (RFC 9126 §5 metadata).
    pub(crate) fn all_require_par(&self) -> bool {
        self.clients.values().all(|c| c.require_par)
    }

    pub(crate) fn methods_in_use(&self) -> Vec<AuthMethod> {
        AuthMethod::ALL
            .into_iter()
            .filter(|m| self.clients.values().any(|c| c.auth_method == *m))
            .collect()
    }
}

#[cfg(test)]
pub(crate) fn test_client(id: &str) -> Client {
    Client {
        id: id.into(),
        name: id.into(),
        auth_method: AuthMethod::ClientSecretBasic,
        credential: Credential::Secret(Secret::new("s3cret")),
        redirect_uris: vec!["https://app.example/cb".into(), "http://127.0.0.1/cb".into()],
        scopes: vec!["openid".into(), "email".into()],
        require_par: true,
        require_pkce: true,
        consent: false,
        native: false,
        resources: vec![],
        require_signed_request_object: false,
        authorization_details_types: vec![],
        dpop_bound_access_tokens: false,
        require_dpop_nonce: false,
        grant_types: vec!["authorization_code".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly() {
        let c = test_client("a");
        assert!(c.redirect_uri_allowed("https://app.example/cb"));
        for bad in [
            "https://app.example/cb/",
            "https://APP.example/cb",
            "https://app.example/cb?x=1",
            "https://app.example/cb/../cb",
            "https://app.example/cb#f",
            "https://app.example:443/cb",
        ] {
            assert!(!c.redirect_uri_allowed(bad), "{bad} must not match");
        }
    }

    /// RFC 8252 §7.3: for native apps only, any port, written or not (`:80` too).
    #[test]
    fn loopback_port_may_vary_for_native_clients_only() {
        let web = test_client("a");
        assert!(web.redirect_uri_allowed("http://127.0.0.1/cb"));
        for other in ["http://127.0.0.1:53123/cb", "http://127.0.0.1:80/cb"] {
            assert!(!web.redirect_uri_allowed(other), "{other}");
        }
        let native = Client {
            native: true,
            redirect_uris: vec!["http://127.0.0.1/cb".into(), "http://[::1]:8080/cb".into()],
            ..test_client("n")
        };
        for ok in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:53123/cb",
            "http://127.0.0.1:80/cb",
            "http://[::1]/cb",
            "http://[::1]:80/cb",
            "http://[::1]:9/cb",
        ] {
            assert!(native.redirect_uri_allowed(ok), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:53123/cb2",
            "http://localhost:53123/cb",
            "http://127.0.0.1:x/cb",
            "https://127.0.0.1:53123/cb",
        ] {
            assert!(!native.redirect_uri_allowed(bad), "{bad}");
        }
    }
}
