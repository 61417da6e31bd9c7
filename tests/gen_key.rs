//! `par-server gen-key`, the real binary, as the compose keygen service and the Kubernetes dev
//! Job run it: a key written once with mode 0600, kept on every later run, loadable by the
//! server's own configuration check and by OpenSSL.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_par-server");

fn gen_key(file: &Path) -> Output {
    let out = Command::new(BIN).arg("gen-key").arg(file).output().unwrap();
    assert!(
        out.status.success(),
        "gen-key {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn gen_key_writes_once_then_keeps_and_the_server_loads_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys/signing-key.pem");

    let first = String::from_utf8(gen_key(&key).stdout).unwrap();
    assert!(first.starts_with("wrote "), "{first}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key is readable by its owner only");
    let pem = std::fs::read(&key).unwrap();

    let second = String::from_utf8(gen_key(&key).stdout).unwrap();
    assert!(second.starts_with("kept "), "{second}");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        pem,
        "a second run never replaces the key"
    );

    // The server accepts it where a deployment names it: keys[].pem_file, ES256.
    let config = dir.path().join("par.yaml");
    std::fs::write(
        &config,
        format!(
            "issuer: http://127.0.0.1:8080\nredis: {{ url: \"redis://127.0.0.1:6379\" }}\nkeys:\n  - kid: k1\n    alg: ES256\n    pem_file: \"{}\"\nclients:\n  - client_id: app\n    client_secret: app-secret\n    redirect_uris: [\"http://127.0.0.1:9000/callback\"]\n",
            key.display()
        ),
    )
    .unwrap();
    let check = Command::new(BIN)
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "check-config: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    // And it is a standard PKCS#8 P-256 key, not only one our own parser reads.
    let openssl = Command::new("openssl")
        .args(["pkey", "-noout", "-text", "-in"])
        .arg(&key)
        .output()
        .expect("openssl must be installed (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&openssl.stdout);
    assert!(
        openssl.status.success(),
        "{}",
        String::from_utf8_lossy(&openssl.stderr)
    );
    assert!(text.contains("prime256v1"), "{text}");
}

#[test]
fn gen_key_refuses_a_directory_in_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).arg("gen-key").arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a file"), "{err}");
}
