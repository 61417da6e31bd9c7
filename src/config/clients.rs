//! The `clients` section: each registered client checked and turned into an
//! [`oauth::client::Client`](crate::oauth::client::Client), once, at start.

use std::collections::HashSet;

use jsonwebtoken::jwk::JwkSet;

use super::error::{ConfigError, fail};
use super::net::is_loopback_host;
use super::settings::{ApplicationType, ClientSettings, ParSettings};
use crate::oauth::client::{AuthMethod, Client, ClientRegistry, Credential};

/// The client registry; `par` holds the global defaults of each client's own PAR and
/// request object requirements, `nonce_required` the global `dpop.require_nonce`, the default
/// of each client's `require_dpop_nonce`.
pub(super) fn client_registry(
    clients: &[ClientSettings],
    par: &ParSettings,
    nonce_required: bool,
) -> Result<ClientRegistry, ConfigError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(clients.len());
    for (i, c) in clients.iter().enumerate() {
        if !seen.insert(c.client_id.as_str()) {
            return fail(
                format!("clients[{i}].client_id"),
                format!("duplicate client_id '{}'", c.client_id),
            );
        }
        out.push(client_from(i, c, par, nonce_required)?);
    }
    Ok(ClientRegistry::new(out))
}

fn client_from(
    i: usize,
    c: &ClientSettings,
    par: &ParSettings,
    nonce_required: bool,
) -> Result<Client, ConfigError> {
    let key = |field: &str| format!("clients[{i}].{field}");
    if c.client_id.is_empty() || c.client_id.len() > 256 || c.client_id.chars().any(char::is_control) {
        return fail(key("client_id"), "must be 1-256 printable characters");
    }
    let jwks = match (&c.jwks, &c.jwks_file) {
        (Some(_), Some(_)) => return fail(key("jwks"), "set jwks or jwks_file, not both"),
        (Some(v), None) => Some(v.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .or_else(|e| fail(key("jwks_file"), format!("{}: {e}", path.display())))?;
            Some(serde_json::from_str(&text).or_else(|e| fail(key("jwks_file"), e.to_string()))?)
        }
        (None, None) => None,
    };
    let method = c
        .token_endpoint_auth_method
        .unwrap_or(match (&c.client_secret, &jwks) {
            (Some(_), _) => AuthMethod::ClientSecretBasic,
            (None, Some(_)) => AuthMethod::PrivateKeyJwt,
            (None, None) => AuthMethod::None,
        });
    let credential = match method {
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
            let secret = c.client_secret.clone().ok_or_else(|| {
                ConfigError::new(key("client_secret"), format!("required for {}", method.as_str()))
            })?;
            if secret.expose().len() < 8 {
                return fail(key("client_secret"), "must be at least 8 characters");
            }
            if jwks.is_some() {
                return fail(key("jwks"), format!("not used with {}", method.as_str()));
            }
            Credential::Secret(secret)
        }
        AuthMethod::PrivateKeyJwt => {
            let value = jwks.ok_or_else(|| ConfigError::new(key("jwks"), "required for private_key_jwt"))?;
            let set: JwkSet = serde_json::from_value(value)
                .or_else(|e| fail(key("jwks"), format!("not a JWK Set: {e}")))?;
            if set.keys.is_empty() {
                return fail(key("jwks"), "must contain at least one key");
            }
            for (k, jwk) in set.keys.iter().enumerate() {
                if jsonwebtoken::DecodingKey::from_jwk(jwk).is_err() {
                    return fail(format!("clients[{i}].jwks.keys[{k}]"), "unusable key");
                }
            }
            if c.client_secret.is_some() {
                return fail(key("client_secret"), "not used with private_key_jwt");
            }
            Credential::Jwks(Box::new(set))
        }
        AuthMethod::None => {
            if c.client_secret.is_some() || jwks.is_some() {
                return fail(
                    key("token_endpoint_auth_method"),
                    "a public client (none) has no secret or keys",
                );
            }
            Credential::None
        }
    };
    if c.redirect_uris.is_empty() {
        return fail(key("redirect_uris"), "at least one redirect URI is required");
    }
    for (j, uri) in c.redirect_uris.iter().enumerate() {
        validate_redirect_uri(uri)
            .map_err(|reason| ConfigError::new(format!("clients[{i}].redirect_uris[{j}]"), reason))?;
    }
    for (j, r) in c.resources.iter().enumerate() {
        // RFC 8707 §2: an absolute URI without a fragment.
        if !url::Url::parse(r).is_ok_and(|u| u.fragment().is_none()) {
            return Err(ConfigError::new(
                format!("clients[{i}].resources[{j}]"),
                format!("'{r}' must be an absolute URI without a fragment"),
            ));
        }
    }
    if c.scopes.is_empty() {
        return fail(key("scopes"), "at least one scope is required");
    }
    for (j, g) in c.grant_types.iter().enumerate() {
        if !["authorization_code", "refresh_token"].contains(&g.as_str()) {
            return fail(
                format!("clients[{i}].grant_types[{j}]"),
                format!("'{g}' is not supported; use authorization_code and/or refresh_token"),
            );
        }
    }
    if !c.grant_types.iter().any(|g| g == "authorization_code") {
        return fail(key("grant_types"), "must contain authorization_code");
    }
    if method == AuthMethod::None && !c.require_pkce {
        return fail(key("require_pkce"), "public clients must use PKCE");
    }
    Ok(Client {
        id: c.client_id.clone(),
        name: c.client_name.clone().unwrap_or_else(|| c.client_id.clone()),
        auth_method: method,
        credential,
        redirect_uris: c.redirect_uris.clone(),
        scopes: c.scopes.clone(),
        require_par: c.require_pushed_authorization_requests.unwrap_or(par.required),
        require_pkce: c.require_pkce,
        require_signed_request_object: c
            .require_signed_request_object
            .unwrap_or(par.require_signed_request_object),
        consent: c.consent,
        native: c.application_type == ApplicationType::Native,
        resources: c.resources.clone(),
        authorization_details_types: c.authorization_details_types.clone(),
        dpop_bound_access_tokens: c.dpop_bound_access_tokens,
        require_dpop_nonce: c.require_dpop_nonce.unwrap_or(nonce_required),
        grant_types: c.grant_types.clone(),
    })
}

/// RFC 6749 §3.1.2: absolute, no fragment. RFC 9700 §2.6 / FAPI 2.0: `https`, or `http` only
/// on loopback (RFC 8252 §7.3); private-use schemes (RFC 8252 §7.1) must contain a dot.
fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|_| format!("'{uri}' is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!("'{uri}' must not contain a fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(()),
        "http" => Err(format!("'{uri}': http is only allowed for loopback hosts")),
        s if s.contains('.') => Ok(()),
        _ => Err(format!(
            "'{uri}': scheme must be https, loopback http, or a reverse-DNS private-use scheme"
        )),
    }
}
