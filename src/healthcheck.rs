//! `par-server healthcheck`: the container probe. Distroless images have no shell and no curl,
//! so the image's `HEALTHCHECK` (and anyone else who wants a probe from inside the container)
//! runs the binary itself: one plain HTTP/1.1 `GET` over a std `TcpStream`, no TLS, no async
//! runtime, no new dependency. Healthy means exactly "answered `200`" within the timeout.
//!
//! Only `http://host[:port][/path]` URLs are accepted: the probe targets the service's own
//! listener inside the container or pod, never a remote TLS endpoint.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// What `par-server healthcheck` probes when no `--url` is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080/healthz";

/// Why the probe did not see a `200`.
#[derive(Debug)]
pub enum ProbeError {
    /// Not an `http://host[:port][/path]` URL.
    BadUrl(String),
    /// Name resolution, connect, write or read failed (timeouts included).
    Io(String),
    /// The peer did not answer with an HTTP/1.x status line.
    BadResponse,
    /// A well-formed answer with a status other than `200`.
    Status(u16),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadUrl(why) => write!(f, "bad url: {why}"),
            Self::Io(why) => write!(f, "{why}"),
            Self::BadResponse => write!(f, "not an HTTP/1.x response"),
            Self::Status(code) => write!(f, "status {code}"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// The parts of a probe URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, ProbeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::BadUrl(format!("{url}: only http:// is supported")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(ProbeError::BadUrl(format!("{url}: missing or invalid host")));
    }
    // `[::1]:8080`, `[::1]`, `host:8080`, `host`
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| ProbeError::BadUrl(format!("{url}: unclosed '['")))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(ProbeError::BadUrl(format!("{url}: invalid host"))),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| ProbeError::BadUrl(format!("{url}: invalid port")))?,
        None => 80,
    };
    if host.is_empty() || path.contains(['\r', '\n', ' ']) {
        return Err(ProbeError::BadUrl(format!("{url}: invalid host or path")));
    }
    Ok(Target {
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// Sends one `GET` to `url` and returns `Ok(())` only for a `200`. `timeout` bounds the whole
/// probe (connect, write and read together), so a hung replica fails the check instead of
/// hanging it.
pub fn probe(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let target = parse_url(url)?;
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ProbeError::Io("timed out".into()))
    };
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| ProbeError::Io(format!("resolve {}: {e}", target.host)))?
        .collect();
    let mut last = ProbeError::Io(format!("{}: no address", target.host));
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, remaining()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = ProbeError::Io(format!("connect {addr}: {e}")),
        }
    }
    let mut stream = stream.ok_or(last)?;
    let io = |e: std::io::Error| ProbeError::Io(e.to_string());
    let host_header = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: par-server-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path
    );
    stream.set_write_timeout(Some(remaining()?)).map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;
    // The status line is all we need; stop reading once it is complete.
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 128];
    while !head.contains(&b'\n') && head.len() < 1024 {
        stream.set_read_timeout(Some(remaining()?)).map_err(io)?;
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let code = status_code(&head).ok_or(ProbeError::BadResponse)?;
    if code == 200 {
        Ok(())
    } else {
        Err(ProbeError::Status(code))
    }
}

/// The status code of an `HTTP/1.x NNN …` status line.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    /// A one-connection server: sends back `response` and reports the request line and headers
    /// it received.
    fn serve_once(response: &'static str) -> (String, mpsc::Receiver<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                lines.push(line.trim_end().to_owned());
            }
            let mut stream = stream;
            let _ = stream.write_all(response.as_bytes());
            let _ = tx.send(lines);
        });
        (url, rx)
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_200_is_healthy_and_the_request_is_a_plain_get_of_the_path() {
        let (url, rx) = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}");
        probe(&url, SECOND).unwrap();
        let request = rx.recv().unwrap();
        assert_eq!(request[0], "GET /healthz HTTP/1.1");
        let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
        assert!(
            request.contains(&format!("Host: 127.0.0.1:{port}")),
            "{request:?}"
        );
        assert!(request.contains(&"Connection: close".to_owned()), "{request:?}");
    }

    #[test]
    fn any_other_status_is_unhealthy() {
        for response in [
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.0 301 Moved\r\nLocation: /\r\n\r\n",
        ] {
            let (url, _rx) = serve_once(response);
            let err = probe(&url, SECOND).unwrap_err();
            assert!(matches!(err, ProbeError::Status(_)), "{response:?} → {err}");
        }
    }

    #[test]
    fn garbage_or_an_empty_answer_is_unhealthy() {
        for response in ["SSH-2.0-OpenSSH\r\n", "", "HTTP/1.1 20 OK\r\n\r\n"] {
            let (url, _rx) = serve_once(response);
            let err = probe(&url, SECOND).unwrap_err();
            assert!(matches!(err, ProbeError::BadResponse), "{response:?} → {err}");
        }
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = probe(&format!("http://127.0.0.1:{port}/healthz"), SECOND).unwrap_err();
        assert!(matches!(err, ProbeError::Io(_)), "{err}");
    }

    #[test]
    fn a_server_that_never_answers_fails_within_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        // Accepted by the kernel's backlog, never read from or answered.
        let started = Instant::now();
        let err = probe(&url, Duration::from_millis(300)).unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, ProbeError::Io(_)), "{err}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
        drop(listener);
    }

    #[test]
    fn urls() {
        let t = parse_url(DEFAULT_URL).unwrap();
        assert_eq!(
            t,
            Target {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/healthz".into()
            }
        );
        let t = parse_url("http://[::1]:9000/readyz").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9000, "/readyz")
        );
        let t = parse_url("http://localhost").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        for bad in [
            "https://127.0.0.1:8080/healthz",
            "127.0.0.1:8080/healthz",
            "http://:8080/",
            "http://127.0.0.1:99999/",
            "http://u:p@127.0.0.1/",
            "http://127.0.0.1/a b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
