//! Security groups of the built-in networks, with Neutron's rule semantics:
//! a port accepts what one ingress rule of one of its groups allows and
//! sends what one egress rule allows; replies to allowed traffic always
//! pass (stateful). A rule matches an IPv4 protocol (or any), a port range
//! (TCP/UDP) or an ICMP type and code, and a remote: a CIDR, or the members
//! of a group (the addresses of the containers in it). Pure: the store keeps
//! the groups, the network driver turns them into nftables rules.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::network::Ipv4Net;

/// The group every container of a project is in when it names none, made
/// on first use with Neutron's default rules.
pub const DEFAULT_GROUP_NAME: &str = "default";

/// The name of the group made for a container's `exposed_ports`, removed
/// with the container (upstream's name).
pub fn exposed_group_name(container_uuid: &str) -> String {
    format!("zun-{container_uuid}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

/// One rule, in Neutron's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub direction: Direction,
    /// `IPv4` or `IPv6`; the built-in networks carry IPv4 only, so IPv6
    /// rules are kept and shown but match nothing.
    pub ethertype: String,
    /// `tcp`, `udp`, `icmp` or an IP protocol number; `None`: any.
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

/// A rule as its author wrote it: validated by [`RuleRequest::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRequest {
    pub direction: Direction,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRule(pub String);

fn bad(msg: impl Into<String>) -> BadRule {
    BadRule(msg.into())
}

impl RuleRequest {
    /// Reads one rule object as Neutron's API takes it.
    pub fn parse(value: &Value) -> Result<Self, BadRule> {
        let map = value
            .as_object()
            .ok_or_else(|| bad("A security group rule must be an object."))?;
        const KNOWN: &[&str] = &[
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
            "description",
        ];
        if let Some(key) = map.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(format!(
                "Unrecognized attribute(s) '{key}' in a security group rule."
            )));
        }
        let direction = match text(map, "direction")?.as_deref() {
            Some("ingress") => Direction::Ingress,
            Some("egress") => Direction::Egress,
            other => {
                return Err(bad(format!(
                    "Invalid input for direction. Reason: {} is not in [u'ingress', u'egress'].",
                    other.unwrap_or("None")
                )));
            }
        };
        let ethertype = text(map, "ethertype")?.unwrap_or_else(|| "IPv4".into());
        if ethertype != "IPv4" && ethertype != "IPv6" {
            return Err(bad(format!(
                "Invalid input for ethertype. Reason: {ethertype} is not in ['IPv4', 'IPv6']."
            )));
        }
        let protocol = protocol(map.get("protocol"))?;
        let port_range_min = port(map, "port_range_min")?;
        let port_range_max = port(map, "port_range_max")?.or(port_range_min);
        match protocol.as_deref() {
            Some("tcp" | "udp" | "6" | "17") => {
                if let (Some(min), Some(max)) = (port_range_min, port_range_max)
                    && (min == 0 || min > max)
                {
                    return Err(bad(
                        "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                    ));
                }
            }
            Some("icmp" | "1") => {
                // Neutron: the ICMP type and code, each 0-255.
                if port_range_min.is_some_and(|t| t > 255)
                    || port_range_max.is_some_and(|c| c > 255)
                {
                    return Err(bad("Invalid value for ICMP type or code: must be 0-255."));
                }
                if port_range_min.is_none()
                    && map.get("port_range_max").is_some_and(|v| !v.is_null())
                {
                    return Err(bad(
                        "ICMP code (port-range-max) is provided but ICMP type (port-range-min) is missing.",
                    ));
                }
            }
            _ if port_range_min.is_some() => {
                return Err(bad(
                    "Port ranges are only supported for the TCP, UDP and ICMP protocols.",
                ));
            }
            _ => {}
        }
        let remote_ip_prefix = text(map, "remote_ip_prefix")?;
        let remote_group_id = text(map, "remote_group_id")?;
        if remote_ip_prefix.is_some() && remote_group_id.is_some() {
            return Err(bad(
                "Only remote_ip_prefix or remote_group_id may be provided.",
            ));
        }
        let remote_ip_prefix = match remote_ip_prefix {
            Some(prefix) if ethertype == "IPv4" => {
                // As Neutron: host bits are cleared, an address is a /32.
                let (addr, len) = prefix.split_once('/').unwrap_or((prefix.as_str(), "32"));
                let net = addr
                    .parse()
                    .ok()
                    .zip(len.parse().ok())
                    .and_then(|(addr, len)| Ipv4Net::new(addr, len))
                    .ok_or_else(|| {
                        bad(format!(
                            "Invalid input for remote_ip_prefix. Reason: '{prefix}' is not a valid IP subnet."
                        ))
                    })?;
                Some(net.to_string())
            }
            other => other,
        };
        Ok(Self {
            direction,
            ethertype,
            protocol,
            port_range_min,
            port_range_max,
            remote_ip_prefix,
            remote_group_id,
        })
    }

    pub fn into_rule(self, id: String) -> Rule {
        Rule {
            id,
            direction: self.direction,
            ethertype: self.ethertype,
            protocol: self.protocol,
            port_range_min: self.port_range_min,
            port_range_max: self.port_range_max,
            remote_ip_prefix: self.remote_ip_prefix,
            remote_group_id: self.remote_group_id,
        }
    }
}

fn text(map: &Map<String, Value>, key: &str) -> Result<Option<String>, BadRule> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(format!(
            "Invalid input for {key}: {other} is not a string."
        ))),
    }
}

fn protocol(value: Option<&Value>) -> Result<Option<String>, BadRule> {
    let raw = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(bad(format!(
                "Security group rule protocol {other} not supported."
            )));
        }
    };
    match raw.as_str() {
        "" | "any" => Ok(None),
        "tcp" | "udp" | "icmp" => Ok(Some(raw)),
        number => match number.parse::<u8>() {
            Ok(n) => Ok(Some(n.to_string())),
            Err(_) => Err(bad(format!(
                "Security group rule protocol {number} not supported. Only protocol values [None, 'tcp', 'udp', 'icmp'] and integer representations [0 to 255] are supported."
            ))),
        },
    }
}

fn port(map: &Map<String, Value>, key: &str) -> Result<Option<u16>, BadRule> {
    let invalid = || {
        bad(format!(
            "Invalid value for port {}",
            map.get(key).map(Value::to_string).unwrap_or_default()
        ))
    };
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .map(Some)
            .ok_or_else(invalid),
        Some(Value::String(s)) => s.trim().parse::<u16>().map(Some).map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

/// Neutron's rules of a project's default group: its members reach each
/// other, and everything may go out.
pub fn default_rules(group_id: &str, mut new_id: impl FnMut() -> String) -> Vec<Rule> {
    vec![
        Rule {
            id: new_id(),
            direction: Direction::Ingress,
            ethertype: "IPv4".into(),
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: Some(group_id.to_owned()),
        },
        egress_anywhere(new_id()),
    ]
}

fn egress_anywhere(id: String) -> Rule {
    Rule {
        id,
        direction: Direction::Egress,
        ethertype: "IPv4".into(),
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: None,
    }
}

/// The rules of the group made for `exposed_ports` (`(protocol, port)`
/// pairs): each port open to everyone, and everything may go out.
pub fn exposed_rules(ports: &[(&str, u16)], mut new_id: impl FnMut() -> String) -> Vec<Rule> {
    let mut rules: Vec<Rule> = ports
        .iter()
        .map(|&(protocol, port)| Rule {
            id: new_id(),
            direction: Direction::Ingress,
            ethertype: "IPv4".into(),
            protocol: Some(protocol.to_owned()),
            port_range_min: Some(port),
            port_range_max: Some(port),
            remote_ip_prefix: Some("0.0.0.0/0".into()),
            remote_group_id: None,
        })
        .collect();
    rules.push(egress_anywhere(new_id()));
    rules
}

/// A container's exposed ports from its `exposed_ports` value (keys
/// `"80"`, `"80/tcp"`, `"53/udp"`, as the API validated them); anything
/// else is skipped.
pub fn exposed_ports(value: Option<&Value>) -> Vec<(&'static str, u16)> {
    let Some(Value::Object(map)) = value else {
        return Vec::new();
    };
    let mut out: Vec<(&'static str, u16)> = map
        .keys()
        .filter_map(|key| {
            let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            let proto = match proto.to_ascii_lowercase().as_str() {
                "tcp" => "tcp",
                "udp" => "udp",
                _ => return None,
            };
            Some((proto, port.trim().parse().ok()?))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_tcp_rule_reads_like_neutrons() {
        let rule = RuleRequest::parse(&json!({
            "direction": "ingress", "protocol": "TCP", "port_range_min": 80,
            "remote_ip_prefix": "10.0.0.7/8"
        }))
        .expect("valid");
        assert_eq!(rule.direction, Direction::Ingress);
        assert_eq!(rule.ethertype, "IPv4");
        assert_eq!(rule.protocol.as_deref(), Some("tcp"));
        assert_eq!(
            (rule.port_range_min, rule.port_range_max),
            (Some(80), Some(80))
        );
        assert_eq!(rule.remote_ip_prefix.as_deref(), Some("10.0.0.0/8"));
    }

    #[test]
    fn bad_rules_are_refused() {
        for body in [
            json!({}),
            json!({"direction": "sideways"}),
            json!({"direction": "ingress", "ethertype": "IPX"}),
            json!({"direction": "ingress", "protocol": "gre2"}),
            json!({"direction": "ingress", "protocol": 256}),
            json!({"direction": "ingress", "port_range_min": 80}),
            json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}),
            json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 0}),
            json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 70000}),
            json!({"direction": "ingress", "protocol": "icmp", "port_range_min": 300}),
            json!({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "g"}),
            json!({"direction": "ingress", "remote_ip_prefix": "nowhere"}),
            json!({"direction": "ingress", "colour": "blue"}),
            json!("ingress"),
        ] {
            assert!(RuleRequest::parse(&body).is_err(), "{body}");
        }
    }

    #[test]
    fn any_protocol_and_numbers() {
        let any =
            RuleRequest::parse(&json!({"direction": "egress", "protocol": "any"})).expect("ok");
        assert_eq!(any.protocol, None);
        let gre = RuleRequest::parse(&json!({"direction": "egress", "protocol": 47})).expect("ok");
        assert_eq!(gre.protocol.as_deref(), Some("47"));
    }

    #[test]
    fn default_and_exposed_groups() {
        let mut n = 0;
        let mut id = || {
            n += 1;
            format!("r{n}")
        };
        let rules = default_rules("g1", &mut id);
        assert_eq!(rules[0].remote_group_id.as_deref(), Some("g1"));
        assert_eq!(rules[1].direction, Direction::Egress);
        let exposed = exposed_rules(
            &exposed_ports(Some(&json!({"8080/tcp": {}, "53/udp": {}}))),
            &mut id,
        );
        assert_eq!(exposed.len(), 3);
        assert_eq!(exposed[0].protocol.as_deref(), Some("tcp"));
        assert_eq!(exposed[0].port_range_min, Some(8080));
        assert_eq!(exposed[1].protocol.as_deref(), Some("udp"));
    }
}
