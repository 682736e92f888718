//! The addresses of this machine's own interfaces, for the outbound policy: a guest that
//! connects to one of them reaches whatever listens on all interfaces here (tempo itself when
//! it listens on `0.0.0.0` or `::`), as it would through loopback.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a reading of the interfaces is used before it is read again: interfaces come and
/// go (DHCP, containers' networks), and a request to a new address waits at most this long to
/// be known as the machine's.
const REFRESH: Duration = Duration::from_secs(2);

/// The machine's interface addresses, read again when older than [`REFRESH`].
#[derive(Default)]
pub(crate) struct MachineAddresses {
    read: Mutex<Option<(Instant, Arc<[IpAddr]>)>>,
}

impl std::fmt::Debug for MachineAddresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MachineAddresses")
    }
}

impl MachineAddresses {
    /// Whether `ip` is an address of one of this machine's interfaces now.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.current().contains(&ip)
    }

    /// A machine with just `addresses`, read now and never again.
    #[cfg(test)]
    pub(crate) fn fixed(addresses: Vec<IpAddr>) -> Self {
        let far = Instant::now() + Duration::from_secs(1 << 30);
        Self {
            read: Mutex::new(Some((far, addresses.into()))),
        }
    }

    fn current(&self) -> Arc<[IpAddr]> {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        match &*read {
            Some((at, addresses)) if at.elapsed() < REFRESH || *at > Instant::now() => {
                addresses.clone()
            }
            _ => {
                let addresses: Arc<[IpAddr]> = interface_addresses().into();
                *read = Some((Instant::now(), addresses.clone()));
                addresses
            }
        }
    }
}

/// Every address of every interface; none when they cannot be read (then loopback and the
/// special-purpose ranges still need a rule, as always).
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter_map(|interface| {
            let address = interface.address?;
            if let Some(v4) = address.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_among_the_machines_addresses() {
        let machine = MachineAddresses::default();
        assert!(machine.contains(IpAddr::from([127, 0, 0, 1])));
        assert!(!machine.contains(IpAddr::from([192, 0, 2, 1])));
    }
}
