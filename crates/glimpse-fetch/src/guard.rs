//! Which addresses a fetch may connect to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Ends every refusal of a private address: the operator who sees it in a log, or the developer running Glimpse on
/// their own network, learns how to admit that network.
pub const ADMIT_HINT: &str = " (the server admits a network with --fetch-allow CIDR)";

pub struct AddressPolicy {
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        AddressPolicy { allow }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip)) || is_public(ip)
    }

    /// Checks a URL whose host is a literal IP; names are checked by the resolver when connecting.
    pub fn check_url(&self, url: &url::Url) -> Result<(), String> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err("the URL has no host".into()),
        };
        if self.permits(ip) {
            Ok(())
        } else {
            Err(format!("the address {ip} is not publicly routable and fetching from it is not allowed{ADMIT_HINT}"))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

/// IPv4 addresses an IPv6 address carries, in every form a host or a relay on the way may turn back into IPv4:
/// mapped (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`), translated (`::ffff:0:a.b.c.d`), 6to4
/// (`2002:aabb:ccdd::/48`), Teredo (`2001:0::/32`: the server, and the client obfuscated by XOR) and NAT64's
/// well-known prefix (`64:ff9b::/96`).
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    let mut found = Vec::new();
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) {
        found.push(v4(s[6], s[7])); // mapped, compatible (:: and ::1 are refused as such anyway)
    }
    if s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0 {
        found.push(v4(s[6], s[7])); // translated (RFC 2765)
    }
    if s[0] == 0x2002 {
        found.push(v4(s[1], s[2])); // 6to4
    }
    if s[0] == 0x2001 && s[1] == 0 {
        found.push(v4(s[2], s[3])); // Teredo server
        found.push(v4(!s[6], !s[7])); // Teredo client
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        found.push(v4(s[6], s[7])); // NAT64 well-known prefix
    }
    found
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let special = ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated, still routed by some stacks)
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // NAT64 local-use prefix 64:ff9b:1::/48
        || s[..4] == [0x100, 0, 0, 0] // discard-only 100::/64
        || (s[0] == 0x2001 && (s[1] & 0xffe0) == 0x0020) // ORCHIDv2 2001:20::/28
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010) // ORCHID 2001:10::/28
        || (s[0] == 0x2001 && s[1] == 0x0db8); // documentation
    !special && embedded_v4(ip).into_iter().all(is_public_v4)
}

pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// DNS through the system resolver, keeping only permitted addresses.
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.iter().copied().filter(|a| policy.permits(a.ip())).collect();
            if allowed.is_empty() {
                let message = if found.is_empty() {
                    format!("{host} did not resolve")
                } else {
                    format!("{host} resolves only to addresses that are not publicly routable; fetching from them is not allowed{ADMIT_HINT}")
                };
                return Err(message.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused() {
        let policy = AddressPolicy::new(vec![]);
        for ip in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1"] {
            assert!(!policy.permits(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(policy.permits(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    /// Every IPv6 form that embeds or maps 127.0.0.1 (or another refused IPv4 address) is refused; the same
    /// forms around a public IPv4 address are not.
    #[test]
    fn ipv6_forms_of_refused_ipv4_addresses_are_refused() {
        let policy = AddressPolicy::new(vec![]);
        let refused = [
            ("mapped", "::ffff:127.0.0.1"),
            ("mapped, hex", "::ffff:7f00:1"),
            ("compatible", "::127.0.0.1"),
            ("compatible, metadata", "::169.254.169.254"),
            ("translated", "::ffff:0:7f00:1"),
            ("translated, private", "::ffff:0:a00:1"),
            ("6to4", "2002:7f00:1::1"),
            ("6to4, private", "2002:c0a8:101::1"),
            ("Teredo client (XORed 127.0.0.1)", "2001:0:4136:e378:8000:63bf:80ff:fffe"),
            ("Teredo server", "2001:0:a00:1::1"),
            ("NAT64", "64:ff9b::7f00:1"),
            ("NAT64, private", "64:ff9b::10.0.0.1"),
            ("NAT64 local use", "64:ff9b:1::808:808"),
            ("site local", "fec0::1"),
            ("discard", "100::1"),
        ];
        for (form, ip) in refused {
            assert!(!policy.permits(ip.parse().unwrap()), "{form} {ip} must be refused");
            let url = format!("http://[{ip}]/x.png").parse().unwrap();
            assert!(policy.check_url(&url).is_err(), "{form} {ip} must be refused in a URL");
        }
        let public = ["::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808", "2001:0:808:808::f7f7:f7f7"];
        for ip in public {
            assert!(policy.permits(ip.parse().unwrap()), "{ip} embeds a public address and must be allowed");
        }
    }

    #[test]
    fn the_allow_list_admits_a_network() {
        let policy = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(policy.permits("127.0.0.1".parse().unwrap()));
        assert!(!policy.permits("10.0.0.1".parse().unwrap()));
        assert!(policy.check_url(&"http://localhost:8080/x.png".parse().unwrap()).is_ok());
    }

    #[test]
    fn literal_urls_are_checked() {
        let policy = AddressPolicy::new(vec![]);
        assert!(policy.check_url(&"http://127.0.0.1:9/x.png".parse().unwrap()).is_err());
        assert!(policy.check_url(&"http://[::1]/x.png".parse().unwrap()).is_err());
        assert!(policy.check_url(&"http://localhost/x.png".parse().unwrap()).is_err());
        assert!(policy.check_url(&"http://example.com/x.png".parse().unwrap()).is_ok());
    }
}
