//! Store records as versioned JSON: `{"v":1,…}` followed by the record's own fields, so that
//! replicas of two releases can tell each other's records apart during a rolling upgrade.
//! The Lua scripts read top-level fields of these objects (`client_id`, `grant_id`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::StoreError;

/// The version this release writes and reads.
const V1: &[u8] = br#"{"v":1"#;

/// `{"v":1,<the record's fields>}` in one pass: the record is serialised after the version
/// field and its opening brace becomes the separating comma.
pub(super) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(V1);
    let start = out.len();
    serde_json::to_writer(&mut out, record)
        .map_err(|e| StoreError::Backend(format!("cannot encode a store record: {e}")))?;
    match &out[start..] {
        b"{}" => {
            out.truncate(start);
            out.push(b'}');
        }
        [b'{', ..] => out[start] = b',',
        _ => return Err(StoreError::Backend("a store record must be a JSON object".into())),
    }
    Ok(out)
}

/// The record in `bytes`, if it is of this release's version. `what` names it in errors.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    if !bytes.starts_with(V1) || !matches!(bytes.get(V1.len()), Some(b',' | b'}')) {
        return Err(StoreError::Backend(format!("{what}: unknown record version")));
    }
    serde_json::from_slice(bytes).map_err(|e| StoreError::Backend(format!("unreadable {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct R {
        client_id: String,
        n: u32,
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Empty {}

    #[test]
    fn records_carry_their_version_first_and_round_trip() {
        let r = R {
            client_id: "app".into(),
            n: 7,
        };
        let bytes = encode(&r).unwrap();
        assert_eq!(bytes, br#"{"v":1,"client_id":"app","n":7}"#);
        assert_eq!(decode::<R>(&bytes, "r").unwrap(), r);
        assert_eq!(encode(&Empty {}).unwrap(), br#"{"v":1}"#);
        assert_eq!(decode::<Empty>(br#"{"v":1}"#, "e").unwrap(), Empty {});
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        for bad in [
            &br#"{"v":2,"client_id":"app","n":7}"#[..],
            br#"{"v":10,"client_id":"app","n":7}"#,
            br#"{"client_id":"app","n":7}"#,
            br#"{"v":1,"client_id":"#,
            b"",
        ] {
            assert!(decode::<R>(bad, "r").is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
