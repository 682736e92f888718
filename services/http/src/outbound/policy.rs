//! Which addresses a guest's outgoing request may reach: `[http] allowed-outbound-hosts`, in the
//! syntax Spin users know (`https://api.example.com`, `http://*.internal:8080`, `*://*:*`),
//! decided for each address a host name resolves to.
//!
//! Without a list, any public address is allowed. Loopback, private, link-local (the cloud
//! metadata service at 169.254.169.254), unspecified, documentation and other special-purpose
//! addresses, the addresses of this machine's own interfaces, and tempo's own listen and admin
//! addresses, are reached only through a rule that names them: a host name, an IP address or a
//! network (`http://10.0.0.0/8:*`), never a `*` wildcard. Tempo's own addresses also need the
//! rule to name their port; `0.0.0.0` and `::` count as tempo's own (they reach every local
//! listener), and so does every interface address when tempo listens on all of them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};

use super::machine::MachineAddresses;

/// One `scheme://host:port` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    /// `None` for `*`.
    scheme: Option<Scheme>,
    host: Host,
    port: Port,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    /// `*`: any host name, public addresses only.
    Any,
    /// `*.example.com`: names ending in `.example.com`, public addresses only.
    Suffix(String),
    /// `example.com`: that name, whatever it resolves to.
    Name(String),
    /// `10.0.0.0/8` or `127.0.0.1`: those addresses, however they are named.
    Net { network: IpAddr, prefix: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Port {
    Any,
    /// No port given: the scheme's own.
    Default,
    Exact(u16),
}

/// Addresses of this process (its listener, its admin server), which guests may not reach
/// unless a rule names them with their port. One list shared by its clones: the host adds an
/// address once it is bound (a port 0 becomes a real one), and every policy holding the list
/// sees it from then on.
#[derive(Clone, Debug, Default)]
pub struct OwnAddresses(Arc<RwLock<Vec<SocketAddr>>>);
tempo_runtime_core::part!(OwnAddresses);

impl OwnAddresses {
    /// Adds `address`.
    pub fn add(&self, address: SocketAddr) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(address);
    }

    /// The addresses now.
    pub fn to_vec(&self) -> Vec<SocketAddr> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl From<Vec<SocketAddr>> for OwnAddresses {
    fn from(addresses: Vec<SocketAddr>) -> Self {
        Self(Arc::new(RwLock::new(addresses)))
    }
}

/// The outbound rules, parsed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Policy {
    /// `None`: any public address.
    rules: Option<Vec<Rule>>,
    /// Tempo's own listen and admin addresses.
    own: OwnAddresses,
    /// This machine's interface addresses.
    machine: Arc<MachineAddresses>,
}

/// Where a request goes: its scheme, the host as written (lower case, no brackets) and port.
#[derive(Clone, Debug)]
pub(crate) struct Target<'a> {
    pub(crate) scheme: Scheme,
    pub(crate) host: &'a str,
    pub(crate) port: u16,
}

impl Policy {
    /// Parses `[http] allowed-outbound-hosts`; `None` is the default policy.
    pub(crate) fn new(allowed: Option<&[String]>, own: OwnAddresses) -> Result<Self, String> {
        let rules = allowed
            .map(|rules| rules.iter().map(|rule| parse(rule)).collect())
            .transpose()?;
        Ok(Self {
            rules,
            own,
            machine: Arc::default(),
        })
    }

    /// Adds one of tempo's own addresses (the listener, once bound).
    pub(crate) fn add_own(&self, address: SocketAddr) {
        self.own.add(address);
    }

    /// Whether a request to `target` may connect to `address`, one of those its host resolved to.
    pub(crate) fn permits(&self, target: &Target<'_>, address: IpAddr) -> bool {
        let address = canonical(address);
        let own = self.is_own(SocketAddr::new(address, target.port));
        // Checked last: reading the interfaces is the dearest part.
        let public = || is_public(address) && !own && !self.machine.contains(address);
        let Some(rules) = &self.rules else {
            return public();
        };
        rules.iter().any(|rule| {
            let scheme = rule.scheme.is_none_or(|scheme| scheme == target.scheme);
            let port = match rule.port {
                Port::Any => true,
                Port::Default => target.port == target.scheme.default_port(),
                Port::Exact(port) => port == target.port,
            };
            // Special addresses and tempo's own only through a rule that names them.
            let named = match &rule.host {
                Host::Any => return scheme && port && public(),
                Host::Suffix(suffix) => {
                    return scheme
                        && port
                        && target.host.ends_with(suffix.as_str())
                        && target.host.len() > suffix.len()
                        && public();
                }
                Host::Name(name) => name == target.host,
                Host::Net { network, prefix } => contains(*network, *prefix, address),
            };
            scheme && port && named && (!own || matches!(rule.port, Port::Exact(_)))
        })
    }

    /// A line for the startup banner.
    pub(crate) fn describe(&self) -> String {
        match &self.rules {
            None => "outgoing requests to public addresses (loopback, private and link-local \
                     ones need `allowed-outbound-hosts`)"
                .to_owned(),
            Some(rules) if rules.is_empty() => "no outgoing requests".to_owned(),
            Some(rules) => {
                let rules: Vec<String> = rules.iter().map(Rule::to_string).collect();
                format!("outgoing requests to {}", rules.join(", "))
            }
        }
    }

    /// Whether a connection to `address` reaches one of tempo's own listeners: the address
    /// itself; `0.0.0.0` or `::`, which connect to whatever listens locally; loopback, when
    /// tempo listens on loopback or on all interfaces; any interface address of the machine,
    /// when tempo listens on all of them.
    fn is_own(&self, address: SocketAddr) -> bool {
        let ip = address.ip();
        let own = self.own.0.read().unwrap_or_else(PoisonError::into_inner);
        own.iter().any(|own| {
            let own_ip = canonical(own.ip());
            own.port() == address.port()
                && (own_ip == ip
                    || ip.is_unspecified()
                    || (ip.is_loopback() && (own_ip.is_loopback() || own_ip.is_unspecified()))
                    || (own_ip.is_unspecified() && self.machine.contains(ip)))
        })
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            None => "*",
            Some(Scheme::Http) => "http",
            Some(Scheme::Https) => "https",
        };
        write!(f, "{scheme}://")?;
        match &self.host {
            Host::Any => f.write_str("*")?,
            Host::Suffix(suffix) => write!(f, "*{suffix}")?,
            Host::Name(name) => f.write_str(name)?,
            Host::Net { network, prefix } => {
                let full = if network.is_ipv4() { 32 } else { 128 };
                match (network, *prefix == full) {
                    (IpAddr::V6(ip), true) => write!(f, "[{ip}]")?,
                    (ip, true) => write!(f, "{ip}")?,
                    (IpAddr::V6(ip), false) => write!(f, "[{ip}/{prefix}]")?,
                    (ip, false) => write!(f, "{ip}/{prefix}")?,
                }
            }
        }
        match self.port {
            Port::Any => f.write_str(":*"),
            Port::Default => Ok(()),
            Port::Exact(port) => write!(f, ":{port}"),
        }
    }
}

/// Parses one rule: `SCHEME://HOST[:PORT]`, with `*` for any scheme, host or port.
fn parse(rule: &str) -> Result<Rule, String> {
    let bad = |why: &str| format!("`{rule}` is not an outbound host rule: {why}");
    let (scheme, rest) = rule
        .split_once("://")
        .ok_or_else(|| bad("write it as SCHEME://HOST[:PORT], e.g. `https://api.example.com`"))?;
    let scheme = match scheme {
        "*" => None,
        "http" => Some(Scheme::Http),
        "https" => Some(Scheme::Https),
        _ => return Err(bad("the scheme is `http`, `https` or `*`")),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 address needs its closing `]`"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("expected `:PORT`"))?,
            ),
        };
        (host, port)
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => Port::Default,
        Some("*") => Port::Any,
        Some(port) => Port::Exact(
            port.parse()
                .map_err(|_| bad("the port is a number or `*`"))?,
        ),
    };
    let host = host.to_ascii_lowercase();
    let host = if host == "*" {
        Host::Any
    } else if let Some(suffix) = host.strip_prefix("*.") {
        check_name(suffix).map_err(|why| bad(&why))?;
        Host::Suffix(format!(".{suffix}"))
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        Host::Net {
            network: canonical(ip),
            prefix,
        }
    } else if let Some((ip, prefix)) = host.split_once('/') {
        let ip: IpAddr = ip.parse().map_err(|_| bad("a network is ADDRESS/BITS"))?;
        let full = if ip.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|bits| *bits <= full)
            .ok_or_else(|| bad("a network's prefix is at most 32 bits (128 for IPv6)"))?;
        Host::Net {
            network: ip,
            prefix,
        }
    } else {
        check_name(&host).map_err(|why| bad(&why))?;
        Host::Name(host)
    };
    if rest.contains('/') && !matches!(host, Host::Net { .. }) {
        return Err(bad("a rule names a host, not a path"));
    }
    Ok(Rule { scheme, host, port })
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!("`{name}` is not a host name"))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn contains(network: IpAddr, prefix: u8, address: IpAddr) -> bool {
    match (canonical(network), address) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// Whether `ip` is an ordinary address on the internet, not one of the special-purpose ranges
/// (loopback, private, link-local, shared, unspecified, broadcast, multicast, reserved).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let special: [(Ipv4Addr, u8); 14] = [
        (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", unspecified
        (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
        (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared (carrier-grade NAT)
        (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
        (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, cloud metadata
        (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
        (Ipv4Addr::new(192, 0, 0, 0), 24),    // protocol assignments
        (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
        (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast
        (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
        (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
        (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
        (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
        (Ipv4Addr::new(224, 0, 0, 0), 3),     // multicast, reserved, broadcast
    ];
    !special
        .iter()
        .any(|(net, prefix)| contains(IpAddr::V4(*net), *prefix, IpAddr::V4(ip)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let special: [(Ipv6Addr, u8); 12] = [
        // Unspecified, loopback and the IPv4-compatible `::a.b.c.d` (deprecated).
        (Ipv6Addr::UNSPECIFIED, 96),
        (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96), // NAT64: an IPv4 address inside
        (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64
        (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),     // discard
        (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),    // protocol assignments, Teredo
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
        (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),    // 6to4: an IPv4 address inside
        (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),    // documentation
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),     // unique local
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),    // link-local
        (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),    // site-local (deprecated)
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),     // multicast
    ];
    !special
        .iter()
        .any(|(net, prefix)| contains(IpAddr::V6(*net), *prefix, IpAddr::V6(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(scheme: Scheme, host: &str, port: u16) -> Target<'_> {
        Target { scheme, host, port }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn policy(rules: &[&str]) -> Policy {
        let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
        let own = vec!["127.0.0.1:8080".parse().unwrap()];
        Policy::new(Some(&rules), own.into()).unwrap()
    }

    #[test]
    fn by_default_only_public_addresses_are_reached() {
        let policy = Policy::default();
        let web = target(Scheme::Https, "example.com", 443);
        assert!(policy.permits(&web, ip("93.184.215.14")));
        assert!(policy.permits(&web, ip("2606:2800:21f:cb07:6820:80da:af6b:8b2c")));
        for special in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
            "::169.254.169.254",
            "192.0.2.10",
            "198.51.100.10",
            "203.0.113.10",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2001:0:4136:e378::1",
            "3fff::1",
        ] {
            assert!(!policy.permits(&web, ip(special)), "{special}");
        }
    }

    #[test]
    fn this_machines_own_addresses_are_special_and_zero_reaches_tempo() {
        let machine_ip = ip("93.184.215.14");
        let with_machine = |mut policy: Policy| {
            policy.machine = Arc::new(MachineAddresses::fixed(vec![machine_ip]));
            policy
        };
        let web = target(Scheme::Http, "example.com", 80);
        // By default and through wildcards, an interface address of this machine is not public.
        assert!(!with_machine(Policy::default()).permits(&web, machine_ip));
        assert!(!with_machine(policy(&["*://*:*"])).permits(&web, machine_ip));
        assert!(with_machine(Policy::default()).permits(&web, ip("93.184.215.15")));
        // 0.0.0.0 and :: reach tempo's own listener, whatever it is bound to.
        let everything = policy(&["http://0.0.0.0/0:*", "http://[::/0]:*"]);
        let own = target(Scheme::Http, "0.0.0.0", 8080);
        assert!(!everything.permits(&own, ip("0.0.0.0")));
        assert!(!everything.permits(&own, ip("::")));
        assert!(everything.permits(&target(Scheme::Http, "0.0.0.0", 9000), ip("0.0.0.0")));
        // Listening on all interfaces, tempo is reached through every address of the machine.
        let all = with_machine(policy(&["http://0.0.0.0/0:*"]));
        all.add_own("0.0.0.0:7000".parse().unwrap());
        let through = target(Scheme::Http, "93.184.215.14", 7000);
        assert!(!all.permits(&through, machine_ip));
        assert!(!all.permits(&target(Scheme::Http, "127.0.0.9", 7000), ip("127.0.0.9")));
        assert!(all.permits(&target(Scheme::Http, "93.184.215.14", 7001), machine_ip));
    }

    #[test]
    fn rules_match_scheme_host_and_port() {
        let policy = policy(&["https://api.example.com", "http://*.internal.test:8080"]);
        let public = ip("93.184.215.14");
        assert!(policy.permits(&target(Scheme::Https, "api.example.com", 443), public));
        assert!(!policy.permits(&target(Scheme::Http, "api.example.com", 80), public));
        assert!(!policy.permits(&target(Scheme::Https, "api.example.com", 8443), public));
        assert!(!policy.permits(&target(Scheme::Https, "example.com", 443), public));
        assert!(policy.permits(&target(Scheme::Http, "a.internal.test", 8080), public));
        assert!(!policy.permits(&target(Scheme::Http, "internal.test", 8080), public));
        assert!(!policy.permits(&target(Scheme::Http, "xinternal.test", 8080), public));
    }

    #[test]
    fn wildcards_never_reach_special_addresses_but_named_hosts_do() {
        let any = policy(&["*://*:*"]);
        let web = target(Scheme::Http, "anything.test", 80);
        assert!(any.permits(&web, ip("93.184.215.14")));
        assert!(!any.permits(&web, ip("127.0.0.1")));
        assert!(!any.permits(&web, ip("169.254.169.254")));
        let suffix = policy(&["http://*.corp.test"]);
        assert!(!suffix.permits(&target(Scheme::Http, "db.corp.test", 80), ip("10.0.0.5")));

        let named = policy(&[
            "http://127.0.0.1:9000",
            "http://metadata.test",
            "*://10.0.0.0/8:*",
        ]);
        let local = target(Scheme::Http, "127.0.0.1", 9000);
        assert!(named.permits(&local, ip("127.0.0.1")));
        assert!(!named.permits(&target(Scheme::Http, "127.0.0.1", 9001), ip("127.0.0.1")));
        let metadata = target(Scheme::Http, "metadata.test", 80);
        assert!(named.permits(&metadata, ip("169.254.169.254")));
        let private = target(Scheme::Https, "db.test", 5432);
        assert!(named.permits(&private, ip("10.9.8.7")));
        assert!(!named.permits(&private, ip("192.168.0.1")));
    }

    #[test]
    fn tempo_own_addresses_need_a_rule_with_their_port() {
        let network = policy(&["http://127.0.0.0/8:*"]);
        let own = target(Scheme::Http, "127.0.0.1", 8080);
        assert!(!network.permits(&own, ip("127.0.0.1")));
        assert!(network.permits(&target(Scheme::Http, "127.0.0.1", 9000), ip("127.0.0.1")));
        let exact = policy(&["http://127.0.0.1:8080"]);
        assert!(exact.permits(&own, ip("127.0.0.1")));
        let public = Policy::default();
        public.add_own("0.0.0.0:8080".parse().unwrap());
        assert!(!public.permits(&own, ip("127.0.0.1")));
    }

    #[test]
    fn rules_parse_and_print_back() {
        for rule in [
            "https://api.example.com",
            "http://*.internal:8080",
            "*://*:*",
            "http://127.0.0.1:9464",
            "*://10.0.0.0/8:*",
            "http://[::1]:8080",
            "https://[fd00::/8]:*",
        ] {
            assert_eq!(parse(rule).unwrap().to_string(), rule);
        }
        assert_eq!(
            parse("https://API.Example.com/").unwrap().to_string(),
            "https://api.example.com"
        );
        for bad in [
            "api.example.com",
            "ftp://x.test",
            "http://x.test:port",
            "http://x.test/path",
            "http://a..b",
            "http://10.0.0.0/33",
            "http://[::1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
