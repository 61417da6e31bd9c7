//! The `keys` section: the server's signing keys, loaded once at start (PKCS#8 PEM inline
//! or from a file) into [`SigningKeys`], each failure naming the entry.

use std::collections::HashSet;

use super::error::ConfigError;
use super::settings::KeySettings;
use crate::signing::{SUPPORTED_ALGS, SigningKey, SigningKeys, parse_alg};

/// Loads `keys: [...]`. Every error names the entry (`keys[1].pem_file: …`). `Ok(None)`
/// when no key is configured.
pub(super) fn signing_keys(settings: &[KeySettings]) -> Result<Option<SigningKeys>, ConfigError> {
    if settings.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::with_capacity(settings.len());
    let mut active = None;
    let mut kids = HashSet::new();
    for (i, k) in settings.iter().enumerate() {
        let name = |field: &str| format!("keys[{i}].{field}");
        let alg = parse_alg(&k.alg).ok_or_else(|| {
            ConfigError::new(
                name("alg"),
                format!(
                    "'{}' is not supported; use one of {}",
                    k.alg,
                    SUPPORTED_ALGS.join(", ")
                ),
            )
        })?;
        let pem = match (&k.pem, &k.pem_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(name("pem"), "set pem or pem_file, not both"));
            }
            (None, None) => return Err(ConfigError::new(name("pem"), "set pem or pem_file")),
            (Some(pem), None) => pem.expose().as_bytes().to_vec(),
            (None, Some(path)) => std::fs::read(path)
                .map_err(|e| ConfigError::new(name("pem_file"), format!("{}: {e}", path.display())))?,
        };
        let field = if k.pem.is_some() { "pem" } else { "pem_file" };
        let key =
            SigningKey::from_pem(&pem, alg, k.kid.clone()).map_err(|r| ConfigError::new(name(field), r))?;
        if !kids.insert(key.kid.clone()) {
            return Err(ConfigError::new(
                name("kid"),
                format!("duplicate kid '{}'", key.kid),
            ));
        }
        if k.active {
            if active.is_some() {
                return Err(ConfigError::new(name("active"), "exactly one key may be active"));
            }
            active = Some(i);
        }
        keys.push(key);
    }
    let active = match (active, keys.len()) {
        (Some(i), _) => i,
        (None, 1) => 0,
        (None, _) => {
            return Err(ConfigError::new(
                "keys",
                "with several keys, mark exactly one `active: true` (it signs; the others only verify)",
            ));
        }
    };
    Ok(Some(SigningKeys::new(keys, active)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn key(name: &str, alg: &str) -> KeySettings {
        KeySettings {
            kid: None,
            alg: alg.into(),
            pem: Some(Secret::new(fixture(name))),
            pem_file: None,
            active: false,
        }
    }

    #[test]
    fn the_active_key_signs_and_every_key_is_published() {
        let keys = signing_keys(&[
            key("signing-es256.pem", "ES256"),
            KeySettings {
                active: true,
                ..key("signing-rsa2048.pem", "PS256")
            },
        ])
        .unwrap()
        .unwrap();
        assert_eq!(keys.signing_algs(), vec!["PS256".to_owned()]);
        assert_eq!(keys.jwks().keys.len(), 2);
        assert!(signing_keys(&[]).unwrap().is_none());
    }

    #[test]
    fn bad_keys_are_refused_with_the_entry_named() {
        let cases: Vec<(Vec<KeySettings>, &str)> = vec![
            (vec![key("signing-rsa1024.pem", "PS256")], "keys[0].pem"),
            (vec![key("signing-es256.pem", "PS256")], "keys[0].pem"),
            (vec![key("signing-p384.pem", "ES256")], "keys[0].pem"),
            (vec![key("signing-es256.pem", "HS256")], "keys[0].alg"),
            (vec![key("signing-es256.pem", "none")], "keys[0].alg"),
            (
                vec![KeySettings {
                    pem: Some(Secret::new(
                        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                    )),
                    ..key("signing-es256.pem", "ES256")
                }],
                "keys[0].pem",
            ),
            (
                vec![
                    key("signing-es256.pem", "ES256"),
                    KeySettings {
                        pem: None,
                        pem_file: Some("/nonexistent/key.pem".into()),
                        ..key("signing-es256.pem", "ES256")
                    },
                ],
                "keys[1].pem_file",
            ),
            (
                vec![
                    KeySettings {
                        active: true,
                        ..key("signing-es256.pem", "ES256")
                    },
                    KeySettings {
                        active: true,
                        ..key("signing-es256-next.pem", "ES256")
                    },
                ],
                "keys[1].active",
            ),
            (
                vec![
                    key("signing-es256.pem", "ES256"),
                    key("signing-es256-next.pem", "ES256"),
                ],
                "keys",
            ),
            (
                vec![
                    KeySettings {
                        active: true,
                        ..key("signing-es256.pem", "ES256")
                    },
                    key("signing-es256.pem", "ES256"),
                ],
                "keys[1].kid",
            ),
        ];
        for (settings, name) in cases {
            let err = signing_keys(&settings).unwrap_err();
            assert_eq!(err.key, name, "{err}");
        }
    }
}
