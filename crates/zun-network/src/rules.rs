//! The host's network objects as text for `ip -batch` and `nft -f`: pure
//! functions, so what the driver asks of the kernel is tested without one.
//!
//! Isolation is layered:
//! - each network is its own Linux bridge (`zbr<vni>`), so two projects
//!   share no L2 at all;
//! - `inet zun` forwards nothing between two bridges, lets a network reach
//!   the outside (masqueraded) but nothing from outside in unless it
//!   answers a container's own connection, and drops what a container sends
//!   to the host itself (the API, agent endpoints, the engine, the store);
//! - security groups (Neutron's semantics): each local container address
//!   maps (`inet zun ingress`/`egress`, verdict maps) to a chain of its
//!   own holding its groups' rules; a new connection to it passes only an
//!   ingress rule, one from it only an egress rule, and replies always
//!   pass. `exposed_ports` are a group opening those ports to everyone (as
//!   upstream). The host is one more remote: it reaches what a rule opens
//!   to its address, and nothing else;
//! - `bridge zun` accepts a frame from a container's port only when its
//!   source MAC and IPv4 address (or ARP sender) are that port's, so a
//!   container that changes its address or MAC reaches nothing. Ports are
//!   elements of one set, so adding a container is one element, whatever
//!   the host holds.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use zun_types::security_group::{Direction, Rule};

use zun_types::network::Ipv4Net;

/// Interface-name prefixes; the rules match on them.
pub const BRIDGE_PREFIX: &str = "zbr";
pub const PORT_PREFIX: &str = "zv";
pub const VXLAN_PREFIX: &str = "zxl";
/// The VXLAN port hosts exchange their networks' frames on (IANA's).
pub const VXLAN_PORT: u16 = 4789;

/// The bridge of the network whose subnet is `subnet`, on every host:
/// `zbr` and the subnet's address in hex. Named after the subnet rather
/// than the network's id, so two deployments that share a machine (tests)
/// with different pools never share a bridge.
pub fn bridge_name(subnet: Ipv4Net) -> String {
    format!("{BRIDGE_PREFIX}{:08x}", u32::from(subnet.network()))
}

/// The network's VXLAN device on every host, a port of its bridge.
pub fn vxlan_name(subnet: Ipv4Net) -> String {
    format!("{VXLAN_PREFIX}{:08x}", u32::from(subnet.network()))
}

/// The MAC of a network's gateway, the same on every host (`02:5b:` and the
/// gateway's address): each host answers for the gateway itself and never
/// sends its own frames to the other hosts, so containers anywhere see one
/// gateway.
pub fn gateway_mac(gateway: Ipv4Addr) -> String {
    let [a, b, c, d] = gateway.octets();
    format!("02:5b:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// The host side of a port's veth: `zv` and the first 12 hex digits of the
/// port's uuid (interface names hold 15 bytes).
pub fn port_name(port_uuid: &str) -> String {
    let hex: String = port_uuid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    format!("{PORT_PREFIX}{hex}")
}

/// The whole rule set, re-applied on every agent start: chains are flushed
/// and rewritten in one transaction; the sets keep their elements.
pub fn host_ruleset() -> String {
    let br = format!("\"{BRIDGE_PREFIX}*\"");
    let zv = format!("\"{PORT_PREFIX}*\"");
    format!(
        "add table bridge zun
add set bridge zun ports {{ type ifname . ether_addr . ipv4_addr; }}
add chain bridge zun prerouting {{ type filter hook prerouting priority -200; policy accept; }}
flush chain bridge zun prerouting
add rule bridge zun prerouting iifname != {zv} accept
add rule bridge zun prerouting ether type arp iifname . ether saddr . arp saddr ip != @ports drop
add rule bridge zun prerouting ether type arp iifname . arp saddr ether . arp saddr ip != @ports drop
add rule bridge zun prerouting ether type arp accept
add rule bridge zun prerouting ether type ip iifname . ether saddr . ip saddr @ports accept
add rule bridge zun prerouting drop
add chain bridge zun output {{ type filter hook output priority -200; policy accept; }}
flush chain bridge zun output
add rule bridge zun output oifname \"{VXLAN_PREFIX}*\" drop
add table inet zun
add set inet zun intra {{ type ifname . ifname; }}
add map inet zun ingress {{ type ipv4_addr : verdict; }}
add map inet zun egress {{ type ipv4_addr : verdict; }}
add chain inet zun forward {{ type filter hook forward priority 0; policy accept; }}
add chain inet zun input {{ type filter hook input priority 0; policy accept; }}
add chain inet zun output {{ type filter hook output priority 0; policy accept; }}
add chain inet zun postrouting {{ type nat hook postrouting priority 100; policy accept; }}
flush chain inet zun forward
flush chain inet zun input
flush chain inet zun output
flush chain inet zun postrouting
add rule inet zun forward ct state established,related accept
add rule inet zun forward iifname {br} ip saddr vmap @egress
add rule inet zun forward oifname {br} ip daddr vmap @ingress
add rule inet zun forward iifname . oifname @intra accept
add rule inet zun forward iifname {br} oifname {br} drop
add rule inet zun forward iifname {br} accept
add rule inet zun forward oifname {br} drop
add rule inet zun input iifname {br} ct state established,related accept
add rule inet zun input iifname {br} drop
add rule inet zun output oifname {br} ct state established,related accept
add rule inet zun output oifname {br} ip daddr vmap @ingress
add rule inet zun output oifname {br} meta l4proto tcp reject with tcp reset
add rule inet zun output oifname {br} reject
add rule inet zun postrouting iifname {br} oifname != {br} masquerade
"
    )
}

/// Lets traffic bridged inside one network through `inet zun`'s forward
/// chain (with br_netfilter, bridged packets traverse it with the bridge as
/// both interfaces).
pub fn bridge_element(bridge: &str) -> String {
    format!("add element inet zun intra {{ \"{bridge}\" . \"{bridge}\" }}\n")
}

/// The anti-spoofing entry of one port.
pub fn port_element(verb: &str, port: &str, mac: &str, ip: Ipv4Addr) -> String {
    format!("{verb} element bridge zun ports {{ \"{port}\" . {mac} . {ip} }}\n")
}

/// The chain holding the rules of one direction of the container at `ip`
/// (named by the address: an address is on one port of a host at a time).
pub fn security_chain(direction: Direction, ip: Ipv4Addr) -> String {
    let prefix = match direction {
        Direction::Ingress => "zi",
        Direction::Egress => "ze",
    };
    format!("{prefix}{:08x}", u32::from(ip))
}

/// The set of the addresses of a group's members.
pub fn group_set(group_uuid: &str) -> String {
    let hex: String = group_uuid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    format!("zg{hex}")
}

/// What one rule matches, as nft expressions (empty: everything); `None`
/// for a rule that cannot match IPv4 traffic.
pub fn rule_match(rule: &Rule) -> Option<String> {
    if rule.ethertype != "IPv4" {
        return None;
    }
    let side = match rule.direction {
        Direction::Ingress => "saddr",
        Direction::Egress => "daddr",
    };
    let mut parts = Vec::new();
    if let Some(group) = &rule.remote_group_id {
        // Members on the same network only: nothing routes between two
        // networks but a CIDR rule (as `exposed_ports` opens ports to
        // other projects); bridged traffic has its bridge on both sides.
        parts.push("iifname . oifname @intra".to_owned());
        parts.push(format!("ip {side} @{}", group_set(group)));
    } else if let Some(prefix) = rule
        .remote_ip_prefix
        .as_deref()
        .filter(|p| *p != "0.0.0.0/0")
    {
        parts.push(format!("ip {side} {prefix}"));
    }
    let range = |min: u16, max: Option<u16>| match max {
        Some(max) if max != min => format!("{min}-{max}"),
        _ => min.to_string(),
    };
    match rule.protocol.as_deref() {
        None => {}
        Some(proto @ ("tcp" | "udp" | "6" | "17")) => {
            let name = if matches!(proto, "tcp" | "6") {
                "tcp"
            } else {
                "udp"
            };
            parts.push(format!("meta l4proto {name}"));
            if let Some(min) = rule.port_range_min {
                parts.push(format!("th dport {}", range(min, rule.port_range_max)));
            }
        }
        Some("icmp" | "1") => {
            parts.push("meta l4proto icmp".into());
            if let Some(kind) = rule.port_range_min {
                parts.push(format!("icmp type {kind}"));
                if let Some(code) = rule.port_range_max {
                    parts.push(format!("icmp code {code}"));
                }
            }
        }
        Some(number) => parts.push(format!("meta l4proto {number}")),
    }
    Some(parts.join(" "))
}

/// Sets the rules of the container at `ip` (the union of its groups'),
/// in one transaction: its chains are rewritten, then mapped to its
/// address. Ingress matches accept; egress matches go on to the
/// destination's ingress; anything else is dropped.
pub fn security_batch<'a>(ip: Ipv4Addr, rules: impl IntoIterator<Item = &'a Rule>) -> String {
    let ingress = security_chain(Direction::Ingress, ip);
    let egress = security_chain(Direction::Egress, ip);
    let mut out = String::new();
    for chain in [&ingress, &egress] {
        out.push_str(&format!(
            "add chain inet zun {chain}\nflush chain inet zun {chain}\n"
        ));
    }
    for rule in rules {
        let Some(matched) = rule_match(rule) else {
            continue;
        };
        let (chain, verdict) = match rule.direction {
            Direction::Ingress => (&ingress, "accept"),
            Direction::Egress => (&egress, "return"),
        };
        let sep = if matched.is_empty() { "" } else { " " };
        out.push_str(&format!(
            "add rule inet zun {chain} {matched}{sep}{verdict}\n"
        ));
    }
    for chain in [&ingress, &egress] {
        out.push_str(&format!("add rule inet zun {chain} drop\n"));
    }
    out.push_str(&format!(
        "add element inet zun ingress {{ {ip} : jump {ingress} }}\n\
         add element inet zun egress {{ {ip} : jump {egress} }}\n"
    ));
    out
}

/// Removes the rules of the container at `ip` (map entries first: a chain
/// something jumps to cannot go).
pub fn security_removal(ip: Ipv4Addr) -> String {
    let ingress = security_chain(Direction::Ingress, ip);
    let egress = security_chain(Direction::Egress, ip);
    format!(
        "delete element inet zun ingress {{ {ip} }}\n\
         delete element inet zun egress {{ {ip} }}\n\
         flush chain inet zun {ingress}\ndelete chain inet zun {ingress}\n\
         flush chain inet zun {egress}\ndelete chain inet zun {egress}\n"
    )
}

/// Makes a group's member set hold `members`: exactly those with
/// `exact`, else at least those (two agents filling one set at once must
/// not take each other's members out).
pub fn group_set_batch(group_uuid: &str, members: &[Ipv4Addr], exact: bool) -> String {
    let set = group_set(group_uuid);
    let mut out = group_set_declaration(group_uuid);
    if exact {
        out.push_str(&format!("flush set inet zun {set}\n"));
    }
    if !members.is_empty() {
        let list: Vec<String> = members.iter().map(Ipv4Addr::to_string).collect();
        out.push_str(&format!(
            "add element inet zun {set} {{ {} }}\n",
            list.join(", ")
        ));
    }
    out
}

/// Makes a group's set when missing (it is then empty).
pub fn group_set_declaration(group_uuid: &str) -> String {
    format!(
        "add set inet zun {} {{ type ipv4_addr; }}\n",
        group_set(group_uuid)
    )
}

/// Adds one member to a group's set (made when missing: a concurrent
/// create may be filling it in a transaction not run yet).
pub fn group_member(group_uuid: &str, ip: Ipv4Addr) -> String {
    format!(
        "{}add element inet zun {} {{ {ip} }}\n",
        group_set_declaration(group_uuid),
        group_set(group_uuid)
    )
}

/// The addresses in an `nft -j list map inet zun ingress` listing.
pub fn mapped_addresses(listing: &str) -> Result<Vec<Ipv4Addr>, serde_json::Error> {
    use serde_json::Value;
    let parsed: Value = serde_json::from_str(listing)?;
    Ok(parsed
        .get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("map")?.get("elem")?.as_array())
        .flatten()
        .filter_map(|pair| pair.as_array()?.first()?.as_str()?.parse().ok())
        .collect())
}

/// One element of a set as `nft -j list set` prints it: the parts of its
/// key, and its comment.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedElement {
    pub key: Vec<serde_json::Value>,
    pub comment: Option<String>,
}

/// The elements of the set in an `nft -j list set ...` listing (an element
/// is `{"concat": [...]}`, or `{"elem": {"val": {"concat": [...]},
/// "comment": ...}}` when it carries a comment).
pub fn listed_elements(listing: &str) -> Result<Vec<ListedElement>, serde_json::Error> {
    use serde_json::Value;
    let parsed: Value = serde_json::from_str(listing)?;
    let elements = parsed
        .get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("set")?.get("elem")?.as_array())
        .flatten();
    Ok(elements
        .filter_map(|element| {
            let (value, comment) = match element.get("elem") {
                Some(inner) => (
                    inner.get("val")?,
                    inner
                        .get("comment")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                ),
                None => (element, None),
            };
            let key = value.get("concat")?.as_array()?.clone();
            Some(ListedElement { key, comment })
        })
        .collect())
}

/// The interface names in an `ip -j link show` listing.
pub fn link_names(listing: &str) -> Result<HashSet<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Link {
        ifname: String,
    }
    let links: Vec<Link> = serde_json::from_str(listing)?;
    Ok(links.into_iter().map(|link| link.ifname).collect())
}

/// `ip -batch` lines that make a network's bridge (when `create`) and give
/// it its gateway (again, harmlessly, when it has it).
pub fn bridge_batch(
    bridge: &str,
    create: bool,
    gateway: Ipv4Addr,
    subnet: Ipv4Net,
    mtu: u32,
) -> String {
    let mut out = String::new();
    if create {
        out.push_str(&format!(
            "link add {bridge} address {} mtu {mtu} type bridge\n",
            gateway_mac(gateway)
        ));
    }
    out.push_str(&format!(
        "addr replace {gateway}/{} dev {bridge}\nlink set {bridge} up\n",
        subnet.prefix()
    ));
    out
}

/// `ip -batch` lines that make a network's VXLAN device (id `vni`, from
/// this host's `local` address) and put it on the bridge.
pub fn vxlan_batch(vxlan: &str, vni: i64, local: Ipv4Addr, bridge: &str, mtu: u32) -> String {
    format!(
        "link add {vxlan} mtu {mtu} type vxlan id {vni} local {local} dstport {VXLAN_PORT}
link set {vxlan} master {bridge} up
"
    )
}

/// The hosts a VXLAN device floods to, from `bridge fdb show dev <vxlan>`.
pub fn flood_peers(fdb: &str) -> Vec<Ipv4Addr> {
    fdb.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "00:00:00:00:00:00").then_some(())?;
            let mut rest = words.skip_while(|w| *w != "dst");
            rest.next()?;
            rest.next()?.parse().ok()
        })
        .collect()
}

/// A `bridge fdb` flood entry (`append` or `del`) for `peer`.
pub fn flood_entry(verb: &str, vxlan: &str, peer: Ipv4Addr) -> String {
    format!("fdb {verb} 00:00:00:00:00:00 dev {vxlan} dst {peer}\n")
}

/// `ip -batch` lines, run in the host's namespace, that make a port's veth
/// pair into the container's (existing) namespace, the inside end named
/// `inside`.
pub fn port_host_batch(
    netns: &str,
    port: &str,
    inside: &str,
    bridge: &str,
    mac: &str,
    mtu: u32,
) -> String {
    format!(
        "link add {port} mtu {mtu} type veth peer name {inside} address {mac} netns {netns}
link set {port} master {bridge} up
"
    )
}

/// `ip -batch` lines, run inside the container's namespace: the port's
/// address on `inside`, and the default route through `gateway` (the
/// container's first port).
pub fn port_inside_batch(
    inside: &str,
    ip: Ipv4Addr,
    subnet: Ipv4Net,
    gateway: Option<Ipv4Addr>,
) -> String {
    let mut out = format!(
        "link set lo up\naddr add {ip}/{prefix} dev {inside}\nlink set {inside} up\n",
        prefix = subnet.prefix()
    );
    if let Some(gateway) = gateway {
        out.push_str(&format!(
            "route replace default via {gateway} dev {inside}\n"
        ));
    }
    out
}

/// The container's `/etc/resolv.conf`: the host's name servers that a
/// container can reach (not the host's loopback), and its search domains
/// and options.
pub fn resolv_conf(host_resolv_conf: &str) -> String {
    let mut out = String::new();
    for line in host_resolv_conf.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                let Some(server) = words.next() else { continue };
                let loopback = server
                    .parse::<std::net::IpAddr>()
                    .map_or(true, |a| a.is_loopback());
                if !loopback {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            Some("search" | "domain" | "options") => {
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// The container's `/etc/hosts`: loopback names and its own names.
/// The container's `/etc/hosts`: loopback names, its own names on its
/// first address, and the other containers of its networks (`members`:
/// name and address; its own entries are left out).
pub fn hosts_file(ip: Ipv4Addr, names: &[&str], members: &[(String, Ipv4Addr)]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let names: Vec<&str> = names.iter().copied().filter(|n| !n.is_empty()).collect();
    if !names.is_empty() {
        out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    for (name, address) in members {
        if !names.contains(&name.as_str()) {
            out.push_str(&format!("{address}\t{name}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_container_ports_match_the_port_prefix() {
        // The anti-spoofing chain checks every interface matching `zv*`:
        // bridges and VXLAN devices must not.
        for other in [BRIDGE_PREFIX, VXLAN_PREFIX] {
            assert!(!other.starts_with(PORT_PREFIX), "{other}");
        }
    }

    #[test]
    fn names_fit_the_kernels_limit() {
        let port = port_name("3f2b8c1e-9a7d-4e21-b6c0-5d4e3f2a1b0c");
        assert_eq!(port, "zv3f2b8c1e9a7d");
        assert!(port.len() <= 15);
        let bridge = bridge_name("10.128.16.0/20".parse().expect("cidr"));
        assert_eq!(bridge, "zbr0a801000");
        assert!(bridge.len() <= 15);
    }

    #[test]
    fn the_ruleset_isolates_networks_and_the_host() {
        let rules = host_ruleset();
        assert!(rules.contains("iifname \"zbr*\" oifname \"zbr*\" drop"));
        assert!(
            rules.contains("iifname \"zbr*\" drop"),
            "nothing to the host"
        );
        assert!(rules.contains("iifname \"zbr*\" oifname != \"zbr*\" masquerade"));
        // Intra-network traffic is accepted before the between-networks drop.
        let intra = rules.find("@intra accept").expect("intra rule");
        let between = rules.find("oifname \"zbr*\" drop").expect("drop rule");
        assert!(intra < between);
        // Re-applying rewrites chains but keeps set elements.
        assert!(rules.contains("flush chain bridge zun prerouting"));
        // The host's own frames never cross to other hosts.
        assert!(rules.contains("add rule bridge zun output oifname \"zxl*\" drop"));
        assert!(!rules.contains("flush set"));
    }

    #[test]
    fn port_lines() {
        let ip = Ipv4Addr::new(10, 128, 16, 2);
        assert_eq!(
            port_element("add", "zvabc", "02:5a:0a:80:10:02", ip),
            "add element bridge zun ports { \"zvabc\" . 02:5a:0a:80:10:02 . 10.128.16.2 }\n"
        );
        let subnet: Ipv4Net = "10.128.16.0/20".parse().expect("cidr");
        let inside = port_inside_batch("eth0", ip, subnet, Some(Ipv4Addr::new(10, 128, 16, 1)));
        assert!(inside.contains("addr add 10.128.16.2/20 dev eth0"));
        assert!(inside.contains("route replace default via 10.128.16.1 dev eth0"));
        let second = port_inside_batch("eth1", ip, subnet, None);
        assert!(second.contains("dev eth1") && !second.contains("route"));
        let host = port_host_batch("zun-u", "zvabc", "eth1", "zbr1", "02:5a:0a:80:10:02", 1500);
        assert!(host.starts_with("link add zvabc mtu 1500 type veth"));
        assert!(host.contains("peer name eth1 address 02:5a:0a:80:10:02 netns zun-u"));
    }

    #[test]
    fn security_groups_become_chains_per_address() {
        let rule = |direction,
                    protocol: Option<&str>,
                    min,
                    max,
                    prefix: Option<&str>,
                    group: Option<&str>| Rule {
            id: "r".into(),
            direction,
            ethertype: "IPv4".into(),
            protocol: protocol.map(str::to_owned),
            port_range_min: min,
            port_range_max: max,
            remote_ip_prefix: prefix.map(str::to_owned),
            remote_group_id: group.map(str::to_owned),
        };
        let g = "0b6a1f2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
        let rules = [
            rule(Direction::Ingress, None, None, None, None, Some(g)),
            rule(
                Direction::Ingress,
                Some("tcp"),
                Some(80),
                Some(90),
                Some("0.0.0.0/0"),
                None,
            ),
            rule(
                Direction::Ingress,
                Some("icmp"),
                Some(8),
                None,
                Some("10.0.0.0/8"),
                None,
            ),
            rule(
                Direction::Egress,
                Some("udp"),
                Some(53),
                Some(53),
                None,
                None,
            ),
            rule(
                Direction::Egress,
                Some("47"),
                None,
                None,
                Some("192.0.2.0/24"),
                None,
            ),
            Rule {
                ethertype: "IPv6".into(),
                ..rule(Direction::Ingress, None, None, None, None, None)
            },
        ];
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(security_chain(Direction::Ingress, ip), "zi0a000002");
        assert_eq!(group_set(g), "zg0b6a1f2e3c4d");
        assert_eq!(
            security_batch(ip, &rules),
            "add chain inet zun zi0a000002\nflush chain inet zun zi0a000002\n\
             add chain inet zun ze0a000002\nflush chain inet zun ze0a000002\n\
             add rule inet zun zi0a000002 iifname . oifname @intra ip saddr @zg0b6a1f2e3c4d accept\n\
             add rule inet zun zi0a000002 meta l4proto tcp th dport 80-90 accept\n\
             add rule inet zun zi0a000002 ip saddr 10.0.0.0/8 meta l4proto icmp icmp type 8 accept\n\
             add rule inet zun ze0a000002 meta l4proto udp th dport 53 return\n\
             add rule inet zun ze0a000002 ip daddr 192.0.2.0/24 meta l4proto 47 return\n\
             add rule inet zun zi0a000002 drop\nadd rule inet zun ze0a000002 drop\n\
             add element inet zun ingress { 10.0.0.2 : jump zi0a000002 }\n\
             add element inet zun egress { 10.0.0.2 : jump ze0a000002 }\n"
        );
        assert!(security_removal(ip).starts_with("delete element inet zun ingress { 10.0.0.2 }\n"));
        assert_eq!(
            group_set_batch(g, &[ip, Ipv4Addr::new(10, 0, 0, 3)], true),
            "add set inet zun zg0b6a1f2e3c4d { type ipv4_addr; }\nflush set inet zun zg0b6a1f2e3c4d\n\
             add element inet zun zg0b6a1f2e3c4d { 10.0.0.2, 10.0.0.3 }\n"
        );
        assert!(!group_set_batch(g, &[], true).contains("add element"));
        assert!(!group_set_batch(g, &[ip], false).contains("flush"));
        assert_eq!(
            group_member(g, ip),
            "add set inet zun zg0b6a1f2e3c4d { type ipv4_addr; }\n\
             add element inet zun zg0b6a1f2e3c4d { 10.0.0.2 }\n"
        );
        // Replies pass before any group is asked; groups before the
        // between-networks drop; the host asks the destination's groups.
        let host = host_ruleset();
        let replies = host.find("forward ct state established,related accept");
        let egress = host.find("forward iifname \"zbr*\" ip saddr vmap @egress");
        let ingress = host.find("forward oifname \"zbr*\" ip daddr vmap @ingress");
        let drop = host.find("iifname \"zbr*\" oifname \"zbr*\" drop");
        assert!(replies.is_some() && replies < egress && egress < ingress && ingress < drop);
        assert!(host.contains("add rule inet zun output oifname \"zbr*\" ip daddr vmap @ingress"));
        assert!(host.contains("add rule inet zun output oifname \"zbr*\" reject"));
    }

    #[test]
    fn mapped_addresses_read_nfts_listing() {
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"map": {"family": "inet",
            "name": "ingress", "table": "zun", "type": "ipv4_addr", "map": "verdict",
            "elem": [["10.0.0.2", {"jump": {"target": "zi0a000002"}}]]}}]}"#;
        assert_eq!(
            mapped_addresses(listing).expect("json"),
            vec![Ipv4Addr::new(10, 0, 0, 2)]
        );
        assert!(
            mapped_addresses(r#"{"nftables": []}"#)
                .expect("json")
                .is_empty()
        );
    }

    #[test]
    fn listed_elements_read_both_shapes() {
        // As nft 1.0.6 prints them.
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"set": {"family": "inet", "name": "exposed", "table": "zun", "elem": [
              {"elem": {"val": {"concat": ["10.1.2.3", "udp", 53]}, "comment": "h1"}},
              {"concat": ["zvabc", "02:5a:0a:80:10:02", "10.128.16.2"]}]}}]}"#;
        let elements = listed_elements(listing).expect("json");
        assert_eq!(elements.len(), 2);
        assert_eq!(elements[0].comment.as_deref(), Some("h1"));
        assert_eq!(elements[0].key[2], serde_json::json!(53));
        assert_eq!(elements[1].comment, None);
        assert_eq!(elements[1].key[0], serde_json::json!("zvabc"));
        assert!(
            listed_elements(r#"{"nftables": []}"#)
                .expect("json")
                .is_empty()
        );
        assert!(listed_elements("not json").is_err());
    }

    #[test]
    fn overlay_lines() {
        let subnet: Ipv4Net = "10.128.16.0/20".parse().expect("cidr");
        assert_eq!(vxlan_name(subnet), "zxl0a801000");
        assert_eq!(
            gateway_mac(Ipv4Addr::new(10, 128, 16, 1)),
            "02:5b:0a:80:10:01"
        );
        let batch = vxlan_batch(
            "zxl0a801000",
            7,
            Ipv4Addr::new(10, 250, 0, 1),
            "zbr0a801000",
            1450,
        );
        assert!(batch.contains("type vxlan id 7 local 10.250.0.1 dstport 4789"));
        let fdb = "00:00:00:00:00:00 dst 10.250.0.2 self permanent\n\
                   02:5a:0a:80:10:03 dst 10.250.0.2 self\n\
                   00:00:00:00:00:00 dst 10.250.0.3 self permanent\n\
                   33:33:00:00:00:01 self permanent\n";
        assert_eq!(
            flood_peers(fdb),
            vec![Ipv4Addr::new(10, 250, 0, 2), Ipv4Addr::new(10, 250, 0, 3)]
        );
        assert_eq!(
            flood_entry("append", "zxl1", Ipv4Addr::new(10, 250, 0, 2)),
            "fdb append 00:00:00:00:00:00 dev zxl1 dst 10.250.0.2\n"
        );
        let bridge = bridge_batch("zbr1", true, Ipv4Addr::new(10, 128, 16, 1), subnet, 1450);
        assert!(bridge.starts_with("link add zbr1 address 02:5b:0a:80:10:01 mtu 1450 type bridge"));
        assert!(
            !bridge_batch("zbr1", false, Ipv4Addr::new(10, 128, 16, 1), subnet, 1450)
                .contains("link add")
        );
    }

    #[test]
    fn resolv_conf_drops_loopback_servers() {
        let host = "# comment\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver ::1\nsearch example.org\noptions ndots:2\n";
        assert_eq!(
            resolv_conf(host),
            "nameserver 10.255.255.53\nsearch example.org\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_file_names_the_container() {
        let hosts = hosts_file(Ipv4Addr::new(10, 0, 0, 2), &["web", ""], &[]);
        assert!(hosts.ends_with("10.0.0.2\tweb\n"));
        assert!(!hosts_file(Ipv4Addr::new(10, 0, 0, 2), &[], &[]).contains("10.0.0.2"));
        let members = vec![
            ("web".to_owned(), Ipv4Addr::new(10, 0, 0, 2)),
            ("db".to_owned(), Ipv4Addr::new(10, 0, 0, 3)),
        ];
        let hosts = hosts_file(Ipv4Addr::new(10, 0, 0, 2), &["web"], &members);
        assert!(hosts.ends_with("10.0.0.2\tweb\n10.0.0.3\tdb\n"), "{hosts}");
    }

    #[test]
    fn link_names_read_ips_listing() {
        let listing = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK"]},
            {"ifindex":7,"link_index":2,"ifname":"zv0123456789ab","link_netnsid":0}]"#;
        let names = link_names(listing).expect("parsed");
        assert_eq!(names.len(), 2);
        assert!(names.contains("zv0123456789ab"));
        assert!(
            link_names("[{\"ifindex\":1").is_err(),
            "a cut listing is an error"
        );
    }
}
