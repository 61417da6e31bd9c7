//! Authorization responses to the client's `redirect_uri` (RFC 6749 §4.1.2 and §4.1.2.1):
//! `code` or `error`, always with `state` (when sent) and `iss` (RFC 9207 §2).

use url::Url;

use super::authorization::RedirectTarget;
use super::error::OAuthError;

pub(crate) fn success(target: &RedirectTarget, code: &str, issuer: &str) -> Url {
    build(target, &[("code", code)], issuer)
}

pub(crate) fn error(target: &RedirectTarget, error: &OAuthError, issuer: &str) -> Url {
    build(
        target,
        &[("error", error.code()), ("error_description", &error.description)],
        issuer,
    )
}

/// The redirect URI (its own query kept, RFC 6749 §3.1.2) with `params`, `state` and `iss`.
fn build(target: &RedirectTarget, params: &[(&str, &str)], issuer: &str) -> Url {
    let mut url = target.redirect_uri.clone();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(state) = &target.state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", issuer);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_state_and_iss_and_keep_existing_query() {
        let t = RedirectTarget {
            redirect_uri: Url::parse("https://a.example/cb?x=1").unwrap(),
            state: Some("s&1".into()),
        };
        let ok = success(&t, "c0de", "https://as.example");
        assert_eq!(
            ok.as_str(),
            "https://a.example/cb?x=1&code=c0de&state=s%261&iss=https%3A%2F%2Fas.example"
        );
        let err = error(&t, &OAuthError::access_denied("no"), "https://as.example");
        let err = err.as_str();
        assert!(err.contains("error=access_denied") && err.contains("iss=") && err.contains("state=s%261"));
    }
}
