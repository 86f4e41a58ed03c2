//! Address arithmetic of the built-in networks (IPAM): subnets carved from a
//! pool, the gateway and assignable addresses of a subnet, the first free
//! address, a port's MAC, and the `addresses` value of the container view.
//! Pure: the store keeps the allocations, the network driver plumbs them.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The network every container of a project joins when it names none.
pub const DEFAULT_NETWORK_NAME: &str = "private";

/// One entry of a create's `nets` (reference §4.2): a network (name or
/// id) or a port, optionally with fixed addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RequestedNetwork {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(
        default,
        rename = "v4-fixed-ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub v4_fixed_ip: Option<Ipv4Addr>,
    #[serde(
        default,
        rename = "v6-fixed-ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub v6_fixed_ip: Option<std::net::Ipv6Addr>,
}

/// An IPv4 network in CIDR notation; the address is always the network's
/// first (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    network: Ipv4Addr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not an IPv4 network in CIDR notation (a.b.c.d/len)")]
pub struct BadCidr(pub String);

impl Ipv4Net {
    /// The network `addr/prefix`, with host bits cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Self {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// How many addresses the network spans (network and broadcast included).
    pub fn size(&self) -> u64 {
        1_u64 << (32 - u32::from(self.prefix))
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// The `index`-th subnet of length `prefix` inside this network, if
    /// there is one.
    pub fn subnet(&self, prefix: u8, index: u64) -> Option<Ipv4Net> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let count = 1_u64 << u32::from(prefix - self.prefix);
        if index >= count {
            return None;
        }
        let step = 1_u64 << (32 - u32::from(prefix));
        let start = u64::from(u32::from(self.network)) + index * step;
        Ipv4Net::new(Ipv4Addr::from(u32::try_from(start).ok()?), prefix)
    }

    /// The first host address, which the network's gateway takes. Networks
    /// of /31 and /32 have no room for a gateway and hosts.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        (self.prefix <= 29).then(|| Ipv4Addr::from(u32::from(self.network) + 1))
    }

    /// Whether a port may take `ip`: inside the network, and neither its
    /// network address, its gateway nor its broadcast address.
    pub fn is_assignable(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip)
            && ip != self.network
            && ip != self.broadcast()
            && Some(ip) != self.gateway()
    }

    /// The lowest assignable address not in `used`.
    pub fn first_free(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let first = u32::from(self.gateway()?) + 1;
        let last = u32::from(self.broadcast()) - 1;
        (first..=last)
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let net = Ipv4Net::new(addr, prefix).ok_or_else(bad)?;
        // Host bits set means the writer meant something else.
        if net.network != addr {
            return Err(bad());
        }
        Ok(net)
    }
}

/// The MAC of the port holding `ip`: locally administered, unicast, and
/// derived from the address (as Docker derives `02:42:...`), so a reused
/// address keeps its MAC and neighbours' ARP caches stay right.
pub fn mac_for(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:5a:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// One address of a container on one network, as the view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub network_id: String,
    pub port_id: String,
    pub subnet_id: String,
    pub ip: Ipv4Addr,
    pub preserve_on_delete: bool,
}

/// Upstream's `addresses`: `{<network id>: [{addr, version, port,
/// subnet_id, preserve_on_delete}]}` (reference §4.3).
pub fn addresses_value(addresses: &[Address]) -> Value {
    let mut by_network = serde_json::Map::new();
    for a in addresses {
        let entry = json!({
            "addr": a.ip.to_string(),
            "version": 4,
            "port": a.port_id,
            "subnet_id": a.subnet_id,
            "preserve_on_delete": a.preserve_on_delete,
        });
        if let Value::Array(list) = by_network
            .entry(a.network_id.clone())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            list.push(entry);
        }
    }
    Value::Object(by_network)
}

/// `network_list` (reference §4.7) from a container's `addresses`: one
/// entry per port from 1.18 (`fixed_ips` a list), one per address before.
pub fn network_list(addresses: Option<&Value>, per_port: bool) -> Value {
    let mut out = Vec::new();
    let Some(Value::Object(by_network)) = addresses else {
        return json!({ "networks": out });
    };
    for (net_id, entries) in by_network {
        let Value::Array(entries) = entries else {
            continue;
        };
        if per_port {
            // Ports in the order first seen, each with its addresses.
            let mut ports: Vec<(Value, Vec<Value>)> = Vec::new();
            for e in entries {
                let port = e.get("port").cloned().unwrap_or(Value::Null);
                let fixed = json!({
                    "subnet_id": e.get("subnet_id").cloned().unwrap_or(Value::Null),
                    "version": e.get("version").cloned().unwrap_or(json!(4)),
                    "ip_address": e.get("addr").cloned().unwrap_or(Value::Null),
                });
                match ports.iter_mut().find(|(p, _)| *p == port) {
                    Some((_, ips)) => ips.push(fixed),
                    None => ports.push((port, vec![fixed])),
                }
            }
            for (port, fixed_ips) in ports {
                out.push(json!({"net_id": net_id, "port_id": port, "fixed_ips": fixed_ips}));
            }
        } else {
            for e in entries {
                out.push(json!({
                    "net_id": net_id,
                    "subnet_id": e.get("subnet_id").cloned().unwrap_or(Value::Null),
                    "port_id": e.get("port").cloned().unwrap_or(Value::Null),
                    "version": e.get("version").cloned().unwrap_or(json!(4)),
                    "ip_address": e.get("addr").cloned().unwrap_or(Value::Null),
                }));
            }
        }
    }
    json!({ "networks": out })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("valid cidr")
    }

    #[test]
    fn parses_and_prints_cidrs() {
        assert_eq!(net("10.128.0.0/9").to_string(), "10.128.0.0/9");
        assert!("10.128.0.1/9".parse::<Ipv4Net>().is_err(), "host bits set");
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0.0".parse::<Ipv4Net>().is_err());
        assert!("x/8".parse::<Ipv4Net>().is_err());
        assert_eq!(net("0.0.0.0/0").size(), 1 << 32);
    }

    #[test]
    fn carves_subnets_from_a_pool() {
        let pool = net("10.128.0.0/9");
        assert_eq!(pool.subnet(20, 0), Some(net("10.128.0.0/20")));
        assert_eq!(pool.subnet(20, 1), Some(net("10.128.16.0/20")));
        assert_eq!(pool.subnet(20, 2047), Some(net("10.255.240.0/20")));
        assert_eq!(pool.subnet(20, 2048), None);
        assert_eq!(pool.subnet(8, 0), None, "wider than the pool");
    }

    #[test]
    fn gateway_and_assignable_addresses() {
        let n = net("10.128.16.0/20");
        assert_eq!(n.gateway(), Some(Ipv4Addr::new(10, 128, 16, 1)));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 128, 31, 255));
        assert!(!n.is_assignable(Ipv4Addr::new(10, 128, 16, 0)));
        assert!(!n.is_assignable(Ipv4Addr::new(10, 128, 16, 1)));
        assert!(n.is_assignable(Ipv4Addr::new(10, 128, 16, 2)));
        assert!(n.is_assignable(Ipv4Addr::new(10, 128, 31, 254)));
        assert!(!n.is_assignable(Ipv4Addr::new(10, 128, 31, 255)));
        assert!(!n.is_assignable(Ipv4Addr::new(10, 128, 32, 2)));
        assert_eq!(net("10.0.0.0/31").gateway(), None);
    }

    #[test]
    fn first_free_fills_gaps_and_ends_when_full() {
        let n = net("192.168.0.0/29"); // hosts .2 to .6
        let mut used = BTreeSet::new();
        assert_eq!(n.first_free(&used), Some(Ipv4Addr::new(192, 168, 0, 2)));
        used.extend([2, 3, 5].map(|d| Ipv4Addr::new(192, 168, 0, d)));
        assert_eq!(n.first_free(&used), Some(Ipv4Addr::new(192, 168, 0, 4)));
        used.extend([4, 6].map(|d| Ipv4Addr::new(192, 168, 0, d)));
        assert_eq!(n.first_free(&used), None);
    }

    #[test]
    fn macs_are_local_unicast_and_follow_the_address() {
        let mac = mac_for(Ipv4Addr::new(10, 128, 16, 2));
        assert_eq!(mac, "02:5a:0a:80:10:02");
    }

    #[test]
    fn addresses_and_network_list_have_upstreams_shapes() {
        let a = Address {
            network_id: "net-1".into(),
            port_id: "port-1".into(),
            subnet_id: "sub-1".into(),
            ip: Ipv4Addr::new(10, 128, 16, 2),
            preserve_on_delete: false,
        };
        let value = addresses_value(std::slice::from_ref(&a));
        assert_eq!(
            value,
            json!({"net-1": [{"addr": "10.128.16.2", "version": 4, "port": "port-1",
                "subnet_id": "sub-1", "preserve_on_delete": false}]})
        );
        assert_eq!(
            network_list(Some(&value), true),
            json!({"networks": [{"net_id": "net-1", "port_id": "port-1",
                "fixed_ips": [{"subnet_id": "sub-1", "version": 4, "ip_address": "10.128.16.2"}]}]})
        );
        assert_eq!(
            network_list(Some(&value), false),
            json!({"networks": [{"net_id": "net-1", "subnet_id": "sub-1", "port_id": "port-1",
                "version": 4, "ip_address": "10.128.16.2"}]})
        );
        assert_eq!(network_list(None, true), json!({"networks": []}));
    }
}
