//! The README walk-through in a real headless browser: start the zero-config demo binary,
//! open `/playground`, press "Log in with PAR", sign in as the printed demo user, and see the
//! tokens. Drives Debian's `chromium` through `chromedriver` (WebDriver) with fantoccini;
//! `scripts/test.sh` installs both when missing.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the demo and returns it with the printed user's password.
fn start_demo(port: u16) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_par-server"))
        .env("PAR__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env_remove("PAR_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let demo = Killed(child);
    let mut lines = BufReader::new(stdout).lines();
    let password = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.trim()
                .strip_prefix("user")
                .map(|r| r.trim().split(" / ").nth(1).unwrap().to_owned())
        })
        .expect("the banner prints the demo user");
    // Keep reading: the demo prints more after this line, and a closed pipe makes its
    // `println!` panic (the process then dies before the browser connects).
    std::thread::spawn(move || lines.for_each(drop));
    wait_for_port(port);
    (demo, password)
}

#[tokio::test]
async fn the_playground_walk_through_works_in_a_real_browser() {
    let app_port = free_port();
    let (_demo, password) = start_demo(app_port);
    let driver_port = free_port();
    let _driver = Killed(
        Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (scripts/test.sh installs chromium-driver)"),
    );
    wait_for_port(driver_port);
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
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
        // Back on the playground, which redeemed the code.
        let id_token = browser
            .wait()
            .for_element(Locator::Id("id-token"))
            .await?
            .text()
            .await?;
        let access_token = browser.find(Locator::Id("access-token")).await?.text().await?;
        let userinfo = browser.find(Locator::Id("userinfo")).await?.text().await?;
        let request_uri = browser.find(Locator::Id("request-uri")).await?.text().await?;
        if let Ok(dir) = std::env::var("PLAYGROUND_SCREENSHOT") {
            std::fs::write(dir, browser.screenshot().await?).ok();
        }
        Ok::<_, fantoccini::error::CmdError>((id_token, access_token, userinfo, request_uri))
    }
    .await;
    browser.close().await.ok();
    let (id_token, access_token, userinfo, request_uri) = result.expect("the walk-through completes");
    let id: serde_json::Value = serde_json::from_str(&id_token).expect("ID token claims are JSON");
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
