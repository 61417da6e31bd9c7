//! Request parameters as a flat list, parsed from `application/x-www-form-urlencoded`
//! (a form body or a query string).
//!
//! RFC 6749 §3.1/§3.2: parameters MUST NOT be included more than once, and a parameter sent
//! without a value is treated as omitted. RFC 8707 `resource` is the exception that may repeat.

use super::error::OAuthError;

/// Parameters that may legitimately appear more than once (RFC 8707 §2).
const MULTI_VALUED: &[&str] = &["resource"];
/// Upper bounds that keep hostile input cheap to reject.
const MAX_PARAMS: usize = 64;
const MAX_VALUE_LEN: usize = 8 * 1024;

#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses and checks an urlencoded string: no duplicated single-valued parameter, bounded
    /// count and length. Empty values are dropped (RFC 6749 §3.1).
    pub fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(input) {
            if value.is_empty() {
                continue;
            }
            if pairs.len() >= MAX_PARAMS {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            if value.len() > MAX_VALUE_LEN || name.len() > 256 {
                return Err(OAuthError::invalid_request(format!(
                    "parameter '{}' is too long",
                    truncate(&name)
                )));
            }
            if !MULTI_VALUED.contains(&name.as_ref()) && pairs.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter '{}' is included more than once",
                    truncate(&name)
                )));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(crate) fn require(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
    }

    /// Builds a parameter list from pairs (a request object's claims; unit tests).
    pub(crate) fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            pairs: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }
}

/// Keeps attacker-chosen names short in error messages.
fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicated_parameter_is_rejected() {
        let err = Params::parse(b"scope=a&scope=b").unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert!(err.description.contains("scope"));
    }

    #[test]
    fn resource_may_repeat() {
        let p = Params::parse(b"resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb").unwrap();
        assert_eq!(p.get_all("resource"), vec!["https://a", "https://b"]);
    }

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::parse(b"state=&scope=openid").unwrap();
        assert!(!p.contains("state"));
        assert_eq!(p.get("scope"), Some("openid"));
    }

    #[test]
    fn too_many_parameters_are_rejected() {
        let body: Vec<String> = (0..100).map(|i| format!("p{i}=x")).collect();
        assert!(Params::parse(body.join("&").as_bytes()).is_err());
    }
}
