//! Addresses: what counts as this machine's loopback, and whether a URL reaches a listener.
//!
//! A leaf used by the proxy's guard (which `Host` names are Codex's), the loop checks (a relay
//! that is the helper itself), the outbound rules (the environment's proxy is never used for a
//! loopback relay) and the Codex switch (a provider on loopback).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::HeaderName;

/// Headers a reverse proxy adds: a request carrying one came through a proxy, maybe from
/// another machine, even when its connection is from loopback.
pub const FORWARDED_HEADERS: [HeaderName; 3] = [
    http::header::FORWARDED,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-real-ip"),
];

/// `localhost`, 127.0.0.0/8, `::1`, and IPv4-mapped loopback (`::ffff:127.0.0.1`).
pub fn is_loopback_name(name: &str) -> bool {
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(is_loopback_ip)
}

/// The name or address part of a `Host` value `host[:port]` (brackets kept off IPv6
/// addresses), without a trailing dot.
pub fn host_name(host: &str) -> &str {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(addr, _)| addr)
    } else if host.matches(':').count() == 1 {
        host.split_once(':').map_or(host, |(name, _)| name)
    } else {
        host
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// Whether a listen address is loopback, IPv4-mapped loopback included.
pub fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether a URL's host is a loopback name or address.
pub fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|url| {
        url.host_str()
            .is_some_and(|h| is_loopback_name(h.trim_start_matches('[').trim_end_matches(']')))
    })
}

/// Whether a relay at `host`:`port` is the listener at `listen`: the same port, and a host that
/// reaches that socket (`localhost` and loopback addresses for a loopback listener; the very
/// address; for a listener on all addresses, any address of this machine). Names other than
/// `localhost` are not resolved: the run-time check covers them.
pub fn reaches_listener(host: &str, port: u16, listen: SocketAddr) -> bool {
    if port != listen.port() {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host);
    let targets: Vec<IpAddr> = if host.eq_ignore_ascii_case("localhost") {
        vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        vec![ip]
    } else {
        return false;
    };
    let listen_ip = listen.ip().to_canonical();
    targets.into_iter().any(|target| {
        // Connecting to 0.0.0.0 or :: reaches this machine.
        let target = match target.to_canonical() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            other => other,
        };
        if listen_ip.is_unspecified() {
            is_loopback_ip(target) || is_local_address(target)
        } else {
            target == listen_ip
        }
    })
}

/// Whether `ip` is an address of this machine: only those can be bound.
fn is_local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaches(url: &str, listen: SocketAddr) -> bool {
        let url = reqwest::Url::parse(url).unwrap();
        reaches_listener(
            url.host_str().unwrap(),
            url.port_or_known_default().unwrap(),
            listen,
        )
    }

    #[test]
    fn relays_that_are_the_listener_are_recognised() {
        let loopback: SocketAddr = "127.0.0.1:3211".parse().unwrap();
        for relay in [
            "http://127.0.0.1:3211/v1",
            "http://localhost:3211",
            "http://LOCALHOST.:3211/v1",
            "http://0.0.0.0:3211",
            "http://[::ffff:127.0.0.1]:3211",
        ] {
            assert!(reaches(relay, loopback), "{relay}");
        }
        for relay in [
            "http://127.0.0.1:3212/v1",
            "http://127.0.0.2:3211",
            "https://relay.example:3211",
            "http://[::1]:3211",
        ] {
            assert!(!reaches(relay, loopback), "{relay}");
        }
        let everywhere: SocketAddr = "0.0.0.0:3211".parse().unwrap();
        assert!(reaches("http://127.0.0.5:3211", everywhere));
        assert!(!reaches("http://192.0.2.1:3211", everywhere));
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert!(reaches("http://localhost", v6));
    }

    #[test]
    fn loopback_urls() {
        for url in [
            "http://127.0.0.1:3211/v1",
            "http://localhost",
            "http://[::1]:9/v1",
            "http://127.9.9.9",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in ["https://relay.example/v1", "http://10.0.0.1", "not a url"] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}
