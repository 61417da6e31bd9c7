//! Rich authorization requests (RFC 9396): `authorization_details`, a JSON array of objects
//! each with a `type` the client is registered for (`clients[].authorization_details_types`).
//! Validated at the request, shown on the consent page, returned in the token response and
//! carried in the access token (§7, §9). Pure.

use serde_json::Value;

use super::client::Client;
use super::error::OAuthError;

fn invalid(why: &str) -> OAuthError {
    OAuthError::invalid_authorization_details(why.to_owned())
}

/// Checks `raw` (RFC 9396 §2): a non-empty JSON array of objects, each with a string `type`
/// the client may use. Returns the array re-serialised (compact) for storage.
pub(crate) fn parse(raw: &str, client: &Client) -> Result<String, OAuthError> {
    let Ok(Value::Array(details)) = serde_json::from_str::<Value>(raw) else {
        return Err(invalid("authorization_details must be a JSON array"));
    };
    if details.is_empty() {
        return Err(invalid("authorization_details must not be empty"));
    }
    for detail in &details {
        let Some(kind) = detail
            .as_object()
            .and_then(|o| o.get("type"))
            .and_then(Value::as_str)
        else {
            return Err(invalid(
                "each authorization detail must be an object with a string type",
            ));
        };
        // RFC 9396 §5: unknown or unauthorized types are refused.
        if !client.authorization_details_types.iter().any(|t| t == kind) {
            return Err(invalid(
                "an authorization detail type is not allowed for this client",
            ));
        }
    }
    Ok(Value::Array(details).to_string())
}

/// One authorization detail for people to read: its type and its other fields, values as
/// text (strings as they are, anything else as compact JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Readable {
    pub kind: String,
    pub fields: Vec<(String, String)>,
}

/// The stored array, for the consent page.
pub(crate) fn readable(stored: &str) -> Vec<Readable> {
    let Ok(Value::Array(details)) = serde_json::from_str::<Value>(stored) else {
        return Vec::new();
    };
    details
        .iter()
        .filter_map(Value::as_object)
        .map(|o| Readable {
            kind: o
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            fields: o
                .iter()
                .filter(|(k, _)| k.as_str() != "type")
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect(),
        })
        .collect()
}

/// The stored array as JSON, for the token response and the access token.
pub(crate) fn json(stored: &str) -> Option<Value> {
    serde_json::from_str(stored).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client::test_client;

    #[test]
    fn details_are_arrays_of_typed_objects_of_the_clients_types() {
        let mut c = test_client("a");
        c.authorization_details_types = vec!["payment_initiation".into()];
        let ok = r#"[{"type":"payment_initiation","instructedAmount":{"currency":"EUR","amount":"123.50"},"creditorName":"Merchant A"}]"#;
        let stored = parse(ok, &c).unwrap();
        let shown = readable(&stored);
        assert_eq!(shown[0].kind, "payment_initiation");
        assert!(
            shown[0]
                .fields
                .contains(&("creditorName".into(), "Merchant A".into()))
        );
        assert!(
            shown[0]
                .fields
                .iter()
                .any(|(k, v)| k == "instructedAmount" && v.contains("123.50"))
        );
        for bad in [
            "{}",
            "[]",
            "[1]",
            r#"[{"no_type":1}]"#,
            r#"[{"type":7}]"#,
            r#"[{"type":"account_information"}]"#,
            "not json",
        ] {
            assert_eq!(
                parse(bad, &c).unwrap_err().code(),
                "invalid_authorization_details",
                "{bad}"
            );
        }
    }
}
