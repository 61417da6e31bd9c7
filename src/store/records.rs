//! Store records as versioned JSON: `{"v":1,…}` followed by the record's own fields, so that
//! replicas of two releases can tell each other's records apart during a rolling upgrade.
//! The Lua scripts read top-level fields of small records (the code's `client_id`, …); a
//! large record a script must check on every visit (the pushed request) is *tagged*: its
//! first line is the value compared (`client_id`), so the script never decodes it.

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

/// `<tag>\n{"v":1,…}`: a record whose first line a script compares cheaply.
pub(super) fn encode_tagged<T: Serialize>(tag: &str, record: &T) -> Result<Vec<u8>, StoreError> {
    let body = encode(record)?;
    let mut out = Vec::with_capacity(tag.len() + 1 + body.len());
    out.extend_from_slice(tag.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&body);
    Ok(out)
}

/// The record in a tagged value whose tag is `tag` (the caller knows it: the script compared it).
pub(super) fn decode_tagged<T: DeserializeOwned>(
    bytes: &[u8],
    tag: &str,
    what: &str,
) -> Result<T, StoreError> {
    match bytes
        .strip_prefix(tag.as_bytes())
        .and_then(|b| b.strip_prefix(b"\n"))
    {
        Some(body) => decode(body, what),
        None => Err(StoreError::Backend(format!("{what}: tag does not match"))),
    }
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

    #[test]
    fn tagged_records_carry_their_tag_on_the_first_line() {
        let r = R {
            client_id: "app\nwith a newline".into(),
            n: 7,
        };
        let bytes = encode_tagged(&r.client_id, &r).unwrap();
        assert!(bytes.starts_with(b"app\nwith a newline\n{\"v\":1,"));
        assert_eq!(decode_tagged::<R>(&bytes, &r.client_id, "r").unwrap(), r);
        assert!(decode_tagged::<R>(&bytes, "app", "r").is_err());
    }
}
