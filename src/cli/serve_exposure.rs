//! Whether `serve` may listen where it was told to: a proxy other machines can reach spends
//! the user's relay credit for whoever reaches it. Loopback (127.0.0.0/8, `::1`, and their
//! IPv4-mapped forms) is always fine; anything else (`0.0.0.0`, `::`, a LAN address) needs
//! client authentication (a client key, `[proxy] client_key_env`, or team mode's member keys)
//! or the user's explicit, loudly named consent.

use std::net::SocketAddr;

use crate::net::is_loopback_ip;

/// The flag that lets `serve` listen beyond loopback without a client key.
pub const UNSAFE_FLAG: &str = "--unsafe-listen-without-client-key";

/// What `serve` does about its listening address.
#[derive(Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Loopback: only this machine can connect.
    Local,
    /// Reachable from the network; clients from there must present a key.
    KeyRequired,
    /// Reachable from the network with no key, as the user insisted: said loudly at start.
    Open { warning: String },
}

/// Decides, before anything is bound; `Err` is the refusal to show. `keys_required`: clients
/// must present a client key or a member key.
pub fn decide(
    addr: SocketAddr,
    keys_required: bool,
    unsafe_flag: bool,
) -> Result<Exposure, String> {
    if is_loopback_ip(addr.ip()) {
        return Ok(Exposure::Local);
    }
    if keys_required {
        return Ok(Exposure::KeyRequired);
    }
    if unsafe_flag {
        return Ok(Exposure::Open {
            warning: format!(
                "WARNING: the proxy is open to the network at {addr} WITHOUT A CLIENT KEY \
                 ({UNSAFE_FLAG}): anyone who can reach this address can send requests through your \
                 relays and spend your credit. Set [proxy] client_key_env to require a key."
            ),
        });
    }
    Err(format!(
        "refusing to listen on {addr}: other machines could reach the proxy there and spend your \
         relay credit. Either keep it on this machine (--host 127.0.0.1, the default), or require a \
         client key: set [proxy] client_key_env = \"VAR\" in the config and VAR (at least 16 \
         characters) in the environment, and have clients send `Authorization: Bearer <key>` \
         (or serve a team with --team, where every member has a key of their own). \
         If this network is yours alone, {UNSAFE_FLAG} starts it without one."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 3211)
    }

    #[test]
    fn loopback_is_always_allowed() {
        for ip in [
            "127.0.0.1",
            "127.0.0.2",
            "127.255.0.9",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(decide(at(ip), false, false), Ok(Exposure::Local), "{ip}");
        }
    }

    #[test]
    fn anything_else_needs_a_key_or_the_flag() {
        for ip in [
            "0.0.0.0",
            "::",
            "192.168.1.20",
            "10.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            let refusal = decide(at(ip), false, false).unwrap_err();
            assert!(refusal.contains("client_key_env"), "{refusal}");
            assert!(refusal.contains(UNSAFE_FLAG), "{refusal}");
            assert_eq!(decide(at(ip), true, false), Ok(Exposure::KeyRequired));
            assert!(matches!(
                decide(at(ip), false, true),
                Ok(Exposure::Open { warning }) if warning.contains("WITHOUT A CLIENT KEY")
            ));
        }
        // A key wins over the flag: no warning when clients are asked for it.
        assert_eq!(decide(at("0.0.0.0"), true, true), Ok(Exposure::KeyRequired));
    }
}
