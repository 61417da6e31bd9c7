//! The limits in force (docs/operations.md, "Limits"), built once from `limits.*` and the
//! clients' own `limits`: which rate applies where, the password back-off, and who the
//! request came from. Pure policy; the counting is the store's (`store::limits`), the HTTP
//! answers are `routes::support::limits`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::header::HeaderMap;

use crate::store::{Backoff, Rate};

/// The endpoints that count requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Par,
    Authorize,
    Login,
    Token,
}

impl Endpoint {
    /// The scope names of its limits (bounded metric labels, and part of the store key).
    pub fn scopes(self) -> (&'static str, &'static str) {
        match self {
            Endpoint::Par => ("par_per_client", "par_per_address"),
            Endpoint::Authorize => ("authorize_per_client", "authorize_per_address"),
            Endpoint::Login => ("login_per_client", "login_per_address"),
            Endpoint::Token => ("token_per_client", "token_per_address"),
        }
    }
}

/// A client's own rates, over the global ones.
#[derive(Debug, Clone, Default)]
pub struct ClientRates {
    pub par: Option<Rate>,
    pub token: Option<Rate>,
}

/// An address range, `10.0.0.0/8` or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Self { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix(
                u128::from(u32::from(n)) << 96,
                u128::from(u32::from(a)) << 96,
                self.bits,
            ),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix(u128::from(n), u128::from(a), self.bits),
            _ => false,
        }
    }
}

fn prefix(a: u128, b: u128, bits: u8) -> bool {
    bits == 0 || (a ^ b) >> (128 - u32::from(bits)) == 0
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Every limit of the service.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Password checks at once per process (0 = 32 per CPU).
    pub password_queue: usize,
    pub trusted_proxies: Vec<Cidr>,
    pub par_per_client: Rate,
    pub token_per_client: Rate,
    pub par_per_address: Rate,
    pub authorize_per_address: Rate,
    pub login_per_address: Rate,
    pub token_per_address: Rate,
    pub clients: HashMap<String, ClientRates>,
    pub password_per_user: Backoff,
    pub password_per_user_address: Backoff,
    /// Pushes per client within one redemption window (`per` = `par.request_uri_lifetime`).
    pub outstanding_per_client: Rate,
    /// Pushes of public clients per address within one redemption window.
    pub outstanding_per_public_address: Rate,
}

impl Default for Limits {
    /// The defaults of docs/configuration.md: far above what a real user or client does.
    fn default() -> Self {
        let minute = |requests| Rate {
            requests,
            per: Duration::from_secs(60),
        };
        Self {
            password_queue: 0,
            trusted_proxies: Vec::new(),
            par_per_client: minute(60_000),
            token_per_client: minute(60_000),
            par_per_address: minute(6_000),
            // One address can be a whole office behind NAT: 100 sign-ins a second.
            authorize_per_address: minute(6_000),
            login_per_address: minute(3_000),
            token_per_address: minute(6_000),
            clients: HashMap::new(),
            password_per_user: Backoff {
                free: 20,
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
                forget: Duration::from_secs(900),
            },
            password_per_user_address: Backoff {
                free: 5,
                base: Duration::from_secs(1),
                max: Duration::from_secs(300),
                forget: Duration::from_secs(900),
            },
            outstanding_per_client: minute(100_000),
            outstanding_per_public_address: minute(100),
        }
    }
}

impl Limits {
    /// The per-client rate at `endpoint` for `client_id` (its own, else the global one).
    pub fn client_rate(&self, endpoint: Endpoint, client_id: &str) -> Option<Rate> {
        let own = self.clients.get(client_id);
        match endpoint {
            Endpoint::Par => Some(own.and_then(|c| c.par).unwrap_or(self.par_per_client)),
            Endpoint::Token => Some(own.and_then(|c| c.token).unwrap_or(self.token_per_client)),
            Endpoint::Authorize | Endpoint::Login => None,
        }
    }

    pub fn address_rate(&self, endpoint: Endpoint) -> Rate {
        match endpoint {
            Endpoint::Par => self.par_per_address,
            Endpoint::Authorize => self.authorize_per_address,
            Endpoint::Login => self.login_per_address,
            Endpoint::Token => self.token_per_address,
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(ip))
    }

    /// The address the request came from: the socket's peer, or — only when the peer is a
    /// trusted proxy — the right-most address in `X-Forwarded-For` (else `Forwarded: for=`,
    /// RFC 7239 §5.2) that is not itself a trusted proxy. Addresses further left were
    /// written by the client and prove nothing.
    pub fn source(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusted(peer) {
            return Some(peer);
        }
        let mut chain: Vec<IpAddr> = forwarded_chain(headers);
        chain.push(peer);
        let first = chain.first().copied();
        chain
            .into_iter()
            .rev()
            .map(canonical)
            .find(|ip| !self.trusted(*ip))
            .or(first)
    }
}

/// The addresses of `X-Forwarded-For` (all header lines, in order), or if there is none, the
/// `for=` of `Forwarded`. Unparseable entries (`unknown`, obfuscated names) are skipped.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff.iter().filter_map(|s| parse_node(s)).collect();
    }
    values("forwarded")
        .iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(v.trim().trim_matches('"')))?
            })
        })
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]:80`, `2001:db8::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':')?.0.parse().ok()
}

/// The subject an address is counted under: IPv4 as is, IPv6 by its /64 (one host usually
/// holds a whole /64, so single addresses would be free to vary).
pub fn address_subject(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_match_their_ranges() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("nope"), None);
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let limits = Limits {
            trusted_proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            ..Limits::default()
        };
        let spoof = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(limits.source(Some(ip("8.8.8.8")), &spoof), Some(ip("8.8.8.8")));
        // Through the proxy: the right-most untrusted entry; the client's own claims to the
        // left prove nothing.
        let chain = headers(&[
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
            ("x-forwarded-for", "10.0.0.7"),
        ]);
        assert_eq!(limits.source(Some(ip("10.0.0.2")), &chain), Some(ip("2.2.2.2")));
        let fwd = headers(&[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")]);
        assert_eq!(limits.source(Some(ip("10.0.0.2")), &fwd), Some(ip("2001:db8::1")));
        assert_eq!(
            limits.source(Some(ip("10.0.0.2")), &HeaderMap::new()),
            Some(ip("10.0.0.2"))
        );
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        assert_eq!(address_subject(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(address_subject(ip("::ffff:192.0.2.1")), "192.0.2.1");
    }
}
