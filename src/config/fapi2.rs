//! The FAPI 2.0 Security Profile (and the request-object part of FAPI 2.0 Message Signing)
//! as rules over a configuration: [`assess`] lists each requirement, whether this
//! configuration meets it and how (setting and value). `profile: fapi2` refuses to start
//! on the first requirement not met, naming its key; `par-server check-config --report FILE`
//! writes the whole list as a table an auditor can read (docs/fapi2.md).
//!
//! Requirements the code meets whatever the configuration (`iss` in every authorization
//! response, 303 redirects, …) are listed too, with where the code enforces them, so the
//! report is complete.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};

use super::settings::{Profile, Settings};
use crate::oauth::client::{AuthMethod, Client, ClientRegistry, Credential};
use crate::oauth::client_auth::{CLOCK_SKEW_SECS, FAPI2_ALGS as ALGS, alg_name};
use crate::signing::{MIN_RSA_BITS, SigningKeys, modulus_bits};

/// One requirement of the profile and how this configuration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Where the requirement is written (FAPI 2.0 Security Profile or Message Signing).
    pub clause: &'static str,
    pub text: &'static str,
    pub met: bool,
    /// The setting(s) and value(s) that meet it, or what breaks it.
    pub how: String,
    /// The configuration key to change when it is not met.
    pub key: String,
}

fn row(
    clause: &'static str,
    text: &'static str,
    failure: Option<(String, String)>,
    how_met: impl Into<String>,
) -> Requirement {
    match failure {
        None => Requirement {
            clause,
            text,
            met: true,
            how: how_met.into(),
            key: String::new(),
        },
        Some((key, how)) => Requirement {
            clause,
            text,
            met: false,
            how,
            key,
        },
    }
}

/// The first client (by configuration index) for which `broken` says what is wrong.
fn first_client(
    settings: &Settings,
    clients: &ClientRegistry,
    broken: impl Fn(&Client) -> Option<(&'static str, String)>,
) -> Option<(String, String)> {
    settings.clients.iter().enumerate().find_map(|(i, c)| {
        let client = clients.get(&c.client_id)?;
        broken(client).map(|(key, why)| {
            (
                format!("clients[{i}].{key}"),
                format!("client '{}': {why}", client.id),
            )
        })
    })
}

fn client_keys(client: &Client) -> &[Jwk] {
    match &client.credential {
        Credential::Jwks(set) => &set.keys,
        _ => &[],
    }
}

/// Why a client key is not FAPI-grade: no `alg`, another algorithm, or RSA under 2048 bits.
fn weak_key(jwk: &Jwk) -> Option<String> {
    let alg = jwk.common.key_algorithm.as_ref().map(alg_name);
    match alg.as_deref() {
        None => return Some("every key must declare its alg (PS256, ES256 or EdDSA)".into()),
        Some(a) if !ALGS.contains(&a) => return Some(format!("key alg {a} is not PS256, ES256 or EdDSA")),
        _ => {}
    }
    if let AlgorithmParameters::RSA(rsa) = &jwk.algorithm {
        let bits = modulus_bits(&rsa.n);
        if bits < MIN_RSA_BITS {
            return Some(format!("RSA key of {bits} bits (at least {MIN_RSA_BITS})"));
        }
    }
    None
}

/// Every requirement, in the order of the report.
pub(crate) fn assess(
    settings: &Settings,
    clients: &ClientRegistry,
    keys: Option<&SigningKeys>,
) -> Vec<Requirement> {
    let issuer = settings.issuer.as_deref().unwrap_or("");
    let loopback_http = issuer.starts_with("http://127.0.0.1") || issuer.starts_with("http://[::1]");
    let signing_alg = keys.map(|k| k.active().alg_name()).unwrap_or("none configured");
    vec![
        row(
            "Security Profile §5.2",
            "The issuer and every endpoint are served over https",
            (!issuer.starts_with("https://") && !loopback_http)
                .then(|| ("issuer".into(), format!("issuer is '{issuer}'"))),
            if loopback_http {
                format!("issuer {issuer}: loopback only (tests); TLS is terminated in front in production")
            } else {
                format!("issuer {issuer}")
            },
        ),
        row(
            "Security Profile §5.3.2.2",
            "Pushed authorization requests are required for every client",
            first_client(settings, clients, |c| {
                (!c.require_par).then_some(("require_pushed_authorization_requests", "may skip PAR".into()))
            }),
            "par.required and every client's require_pushed_authorization_requests are true; metadata require_pushed_authorization_requests: true",
        ),
        row(
            "Security Profile §5.3.2.1",
            "Only confidential clients, authenticated with private_key_jwt (mTLS is not offered)",
            first_client(settings, clients, |c| {
                (c.auth_method != AuthMethod::PrivateKeyJwt).then(|| {
                    (
                        "token_endpoint_auth_method",
                        format!("uses {}", c.auth_method.as_str()),
                    )
                })
            }),
            "every client: token_endpoint_auth_method private_key_jwt",
        ),
        row(
            "Security Profile §5.3.2.1",
            "Sender-constrained access tokens (DPoP; mTLS is not offered)",
            first_client(settings, clients, |c| {
                (!c.dpop_bound_access_tokens)
                    .then_some(("dpop_bound_access_tokens", "may receive bearer tokens".into()))
            }),
            "every client: dpop_bound_access_tokens true (a token request without a DPoP proof is refused; tokens carry cnf.jkt)",
        ),
        row(
            "Security Profile §5.3.2.1",
            "Refresh tokens are not rotated (a retry with the previous one must succeed)",
            settings.tokens.refresh_token_rotation.then(|| {
                (
                    "tokens.refresh_token_rotation".into(),
                    "refresh tokens rotate on every use".into(),
                )
            }),
            "tokens.refresh_token_rotation: false",
        ),
        row(
            "Security Profile §5.3.2.2",
            "PKCE with S256 for every authorization request",
            first_client(settings, clients, |c| {
                (!c.require_pkce).then_some(("require_pkce", "PKCE is optional".into()))
            }),
            "every client: require_pkce true; S256 is the only method accepted (plain never)",
        ),
        row(
            "Security Profile §5.4",
            "Only PS256, ES256 or EdDSA for our tokens",
            (!ALGS.contains(&signing_alg))
                .then(|| ("keys".into(), format!("the active signing key is {signing_alg}"))),
            format!("keys[]: the active key signs with {signing_alg}"),
        ),
        row(
            "Security Profile §5.4",
            "DPoP proofs are PS256, ES256 or EdDSA",
            settings
                .dpop
                .signing_algs
                .iter()
                .find(|a| !ALGS.contains(&a.as_str()))
                .map(|a| ("dpop.signing_algs".into(), format!("{a} is accepted"))),
            format!("dpop.signing_algs: {}", settings.dpop.signing_algs.join(", ")),
        ),
        row(
            "Security Profile §5.4",
            "Client keys (assertions, request objects) are PS256, ES256 or EdDSA, RSA at least 2048 bits",
            first_client(settings, clients, |c| {
                client_keys(c).iter().find_map(weak_key).map(|w| ("jwks", w))
            }),
            "every client key declares alg PS256, ES256 or EdDSA, which is enforced on each signature (RFC 7517 §4.4); RSA keys of 2048 bits or more",
        ),
        row(
            "Security Profile §5.3.2.1",
            "Authorization codes live at most 60 seconds",
            (settings.tokens.code_lifetime > 60).then(|| {
                (
                    "tokens.code_lifetime".into(),
                    format!("{} s", settings.tokens.code_lifetime),
                )
            }),
            format!("tokens.code_lifetime: {} s", settings.tokens.code_lifetime),
        ),
        row(
            "Security Profile §5.3.2.2",
            "request_uri expires_in below 600 seconds",
            (settings.par.request_uri_lifetime >= 600).then(|| {
                (
                    "par.request_uri_lifetime".into(),
                    format!("{} s", settings.par.request_uri_lifetime),
                )
            }),
            format!(
                "par.request_uri_lifetime: {} s",
                settings.par.request_uri_lifetime
            ),
        ),
        row(
            "par-server profile rule (with §5.3.2.1 sender-constrained tokens)",
            "Access tokens are short-lived (expires_in below 600 seconds)",
            (settings.tokens.access_token_lifetime >= 600).then(|| {
                (
                    "tokens.access_token_lifetime".into(),
                    format!("{} s", settings.tokens.access_token_lifetime),
                )
            }),
            format!(
                "tokens.access_token_lifetime: {} s",
                settings.tokens.access_token_lifetime
            ),
        ),
        row(
            "Message Signing §5.3.1 (request objects)",
            "Every authorization request is a signed request object",
            first_client(settings, clients, |c| {
                (!c.require_signed_request_object).then_some((
                    "require_signed_request_object",
                    "may send plain parameters".into(),
                ))
            }),
            "par.require_signed_request_object and every client's require_signed_request_object are true",
        ),
        row(
            "Message Signing §5.3.1 (request objects)",
            "Request objects carry exp and nbf, at most 60 minutes apart",
            (settings.par.request_object_max_lifetime > 3600).then(|| {
                (
                    "par.request_object_max_lifetime".into(),
                    format!("{} s", settings.par.request_object_max_lifetime),
                )
            }),
            format!(
                "par.request_object_max_lifetime: {} s; with the profile on, nbf is required",
                settings.par.request_object_max_lifetime
            ),
        ),
        row(
            "Security Profile §5.3.2.2 / RFC 9207",
            "The iss parameter in every authorization response",
            None,
            "always (oauth::response); metadata authorization_response_iss_parameter_supported: true",
        ),
        row(
            "Security Profile §5.3.2.2",
            "Only the authorization code flow; 303 redirects after a POST",
            None,
            "always: response_type code only (oauth::authorization); 303 See Other (browser::see_other)",
        ),
        row(
            "Security Profile §5.3.2.1",
            "Clock skew: iat and nbf accepted up to 10 seconds in the future, not beyond 60",
            None,
            format!("always: {CLOCK_SKEW_SECS} s (oauth::client_auth::CLOCK_SKEW_SECS)"),
        ),
        row(
            "Security Profile §5.4",
            "Server-issued credentials carry at least 128 bits of entropy",
            None,
            "always: request_uri references and authorization codes are 256 random bits (oauth::request_uri, oauth::code)",
        ),
        row(
            "Security Profile §5.3.2.1",
            "The resource owner password credentials grant is refused",
            None,
            "always: only authorization_code is accepted at /token (unsupported_grant_type otherwise)",
        ),
        row(
            "Security Profile §5.3.2.2 (notes)",
            "A request_uri is used once, enforced at the point of authorization",
            None,
            "always: visits never consume; code issuance takes the request atomically (store::Store::issue_code)",
        ),
    ]
}

/// The profile's verdict at start: the first requirement not met, as (key, message).
pub(crate) fn first_unmet(settings: &Settings, reqs: &[Requirement]) -> Option<(String, String)> {
    if settings.profile != Profile::Fapi2 {
        return None;
    }
    reqs.iter().find(|r| !r.met).map(|r| {
        (
            r.key.clone(),
            format!("profile fapi2: {} ({}; {})", r.text, r.how, r.clause),
        )
    })
}

/// The report as a Markdown table.
pub fn report(settings: &Settings, reqs: &[Requirement]) -> String {
    let met = reqs.iter().filter(|r| r.met).count();
    let mut out = format!(
        "# FAPI 2.0 conformance of this configuration\n\nprofile: {}; {met} of {} requirements met.\n\n| requirement | where | met | how |\n|---|---|---|---|\n",
        match settings.profile {
            Profile::Fapi2 => "fapi2 (enforced at start)",
            Profile::None => "none (not enforced)",
        },
        reqs.len()
    );
    for r in reqs {
        let how = if r.met {
            r.how.clone()
        } else {
            format!("{} — change `{}`", r.how, r.key)
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.text,
            r.clause,
            if r.met { "yes" } else { "**no**" },
            how.replace('|', "\\|")
        ));
    }
    out
}
