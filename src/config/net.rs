//! Host and address rules shared by the sections: what counts as loopback (RFC 8252 §7.3
//! redirect URIs, plain-http issuers, the zero-config demo's bind address).

use std::net::IpAddr;

/// `127.0.0.1`, `::1`, `localhost`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `http.bind` names a loopback address.
pub fn is_loopback_bind(bind: &str) -> bool {
    bind.rsplit_once(':')
        .is_some_and(|(host, _)| is_loopback_host(host))
}
