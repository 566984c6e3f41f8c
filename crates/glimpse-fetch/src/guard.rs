//! Which addresses a fetch may connect to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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
            Err(format!("the address {ip} is not publicly routable and fetching from it is not allowed"))
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

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link local
        || (first == 0x64 && ip.segments()[1] == 0xff9b) // NAT64 can reach private v4
        || first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
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
                    format!("{host} resolves only to addresses that are not publicly routable; fetching from them is not allowed")
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
