//! The README walk-through in a real headless browser: start the zero-config demo binary,
//! open `/playground`, press "Log in with PAR", sign in as the printed demo user, and see the
//! tokens. Drives Debian's `chromium` through `chromedriver` (WebDriver) with fantoccini;
//! `scripts/test.sh` installs both when missing.

use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};

#[path = "support/demo.rs"]
mod demo;
#[path = "support/topology.rs"]
mod topology;
use demo::start_demo;
use topology::{KillOnDrop, free_port, poll};

/// Debian's chromium, the browser chromedriver drives.
const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test]
async fn the_playground_walk_through_works_in_a_real_browser() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: chromium must be installed (scripts/test.sh installs it)"
    );
    let demo = start_demo(env!("CARGO_BIN_EXE_par-server"));
    let (app_port, password) = (demo.port, demo.password.clone());
    let driver_port = free_port();
    let _driver = KillOnDrop(
        Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (scripts/test.sh installs chromium-driver)"),
    );
    let listening = || std::net::TcpStream::connect(("127.0.0.1", driver_port)).is_ok();
    assert!(
        poll(Duration::from_secs(20), listening),
        "chromedriver never listened"
    );
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1000,1400",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    let browser = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("chromedriver session");

    let result = async {
        browser
            .goto(&format!("http://127.0.0.1:{app_port}/playground"))
            .await?;
        browser.find(Locator::Id("login-with-par")).await?.click().await?;
        // The login page of /oauth2/authorize, reached with the pushed request_uri.
        let username = browser.wait().for_element(Locator::Id("username")).await?;
        assert!(browser.current_url().await?.as_str().contains("request_uri=urn"));
        username.send_keys("alice").await?;
        browser
            .find(Locator::Id("password"))
            .await?
            .send_keys(&password)
            .await?;
        browser
            .find(Locator::Css("button[type=submit]"))
            .await?
            .click()
            .await?;
        // Back on the playground, which redeemed the code. `textContent` does not depend on
        // layout or visibility, unlike WebDriver's element text.
        browser.wait().for_element(Locator::Id("id-token")).await?;
        let mut text = Vec::new();
        for id in ["id-token", "access-token", "userinfo", "request-uri"] {
            text.push(
                browser
                    .find(Locator::Id(id))
                    .await?
                    .prop("textContent")
                    .await?
                    .unwrap_or_default(),
            );
        }
        let source = browser.source().await?;
        let [id_token, access_token, userinfo, request_uri] = <[String; 4]>::try_from(text).unwrap();
        if let Ok(dir) = std::env::var("PLAYGROUND_SCREENSHOT") {
            std::fs::write(dir, browser.screenshot().await?).ok();
        }
        Ok::<_, fantoccini::error::CmdError>((id_token, access_token, userinfo, request_uri, source))
    }
    .await;
    browser.close().await.ok();
    let (id_token, access_token, userinfo, request_uri, source) = result.expect("the walk-through completes");
    let id: serde_json::Value = serde_json::from_str(&id_token)
        .unwrap_or_else(|e| panic!("ID token claims are not JSON ({e}); page: {source}"));
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["aud"], "demo-app");
    assert_eq!(id["iss"], format!("http://127.0.0.1:{app_port}"));
    assert!(id["nonce"].is_string());
    let at: serde_json::Value = serde_json::from_str(&access_token).unwrap();
    assert_eq!(at["client_id"], "demo-app");
    let info: serde_json::Value = serde_json::from_str(&userinfo).unwrap();
    assert_eq!(info["email"], "alice@example.com");
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
}
