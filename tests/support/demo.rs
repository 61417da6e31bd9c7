#![allow(dead_code)] // shared by the api and browser test targets
//! The zero-config demo as a process: started on a free port, its banner read for the
//! printed credentials, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::topology::{KillOnDrop, free_port, poll};

pub struct Demo {
    _process: KillOnDrop,
    pub port: u16,
    pub client_secret: String,
    pub password: String,
}

/// Starts `par-server` with no configuration and waits until it listens.
pub fn start_demo(bin: &str) -> Demo {
    let port = free_port();
    let mut child = Command::new(bin)
        .env("PAR__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env_remove("PAR_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let process = KillOnDrop(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let last = line.contains("/oauth2/par");
        banner.push(line);
        if last {
            break;
        }
    }
    // Keep reading so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let credential = |label: &str| {
        banner
            .iter()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(label)
                    .and_then(|r| r.trim().split(" / ").nth(1))
            })
            .unwrap_or_else(|| panic!("the banner prints the {label}: {banner:?}"))
            .to_owned()
    };
    let (client_secret, password) = (credential("client"), credential("user"));
    let listening = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    assert!(
        poll(Duration::from_secs(20), listening),
        "the demo never listened on {port}"
    );
    Demo {
        _process: process,
        port,
        client_secret,
        password,
    }
}
