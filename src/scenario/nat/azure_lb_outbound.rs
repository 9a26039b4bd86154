//! `type = "azure-lb-outbound"`: Azure Load Balancer outbound SNAT (default
//! SNAT and outbound rules; what AKS clusters use by default).
//!
//! Sources (keys as in the project's NAT research notes):
//! - [AZ-LB-OUT] "Source NAT for outbound connections"
//!   (learn.microsoft.com/azure/load-balancer/load-balancer-outbound-connections):
//!   64,000 ports per frontend address; the pool-size table of ports
//!   preallocated per instance (1–50 → 1,024 … 801–1,000 → 32); frontend
//!   addresses used one after the other; one port per destination IP and
//!   port (a port may serve other destinations at once).
//! - [AZ-LB-RULES] "Outbound rules": manual ports per instance in
//!   multiples of 8, rejected above 64,000 × frontend addresses; idle
//!   timeout 4 min by default, 4–120 min.
//! - [AZ-AKS] AKS "Configure the allocated outbound ports": max nodes =
//!   64,000 × outbound addresses ÷ ports per node (1,000 × 2 → 128); 48
//!   nodes get 1,024 each, 52 get 512.
//! - [AZ-LB-OLD] older revisions: the first free port, lowest first; a
//!   port is released 240 s after a FIN, 15 s after a RST, and at the idle
//!   timeout. [AZ-APPSVC] (App Service) keeps those timers.
//! - [AZ-LB-TIER] older Standard LB docs: growing the pool across a tier
//!   boundary reclaims half of each instance's ports; flows on reclaimed
//!   ports are dropped.
//!
//! Assumed: the 64,000 ports of an address are numbered 1024–65023; an
//! unanswered SYN holds its port until the idle timeout; a UDP flow's port
//! is released at the idle timeout.

use super::{Blocks, Choice, CloudRules, Formula, Holds, Nat, Preset};
use crate::scenario::NS_PER_S;

/// Ports per frontend address, [AZ-LB-OUT].
const PER_ADDRESS: u64 = 64_000;

/// Ports per instance by backend pool size, [AZ-LB-OUT].
const TABLE: &[(u32, u32)] = &[
    (50, 1024),
    (100, 512),
    (200, 256),
    (400, 128),
    (800, 64),
    (1000, 32),
];

pub const PRESET: Preset = Preset {
    name: "azure-lb-outbound",
    title: "Azure Load Balancer outbound SNAT",
    ports: (1024, 65023),
    max_addresses: 65_536,
    blocks: Blocks::Table(TABLE),
    choice: Choice::Lowest,
    addresses_in_turn: true,
    per_destination: None,
    holds: Holds {
        fin: 240 * NS_PER_S,
        rst: 15 * NS_PER_S,
        half_open: 240 * NS_PER_S,
        udp: 240 * NS_PER_S,
        idle: 240 * NS_PER_S,
    },
    keys: &["ports_per_host", "idle_timeout", "hold_after_close"],
    failure_metric: "SnatConnectionCount (Failed)",
    assumed: &[
        "an unanswered SYN holds its port until the idle timeout",
        "a UDP flow's port is released at the idle timeout",
    ],
    formula,
};

fn formula(nat: &Nat, hosts: u64) -> Formula {
    let a = nat.addresses.len() as u64;
    let manual = nat.cloud.as_ref().and_then(|c| c.ports_per_host);
    match manual {
        Some(p) => Formula {
            rule: format!(
                "max hosts = 64,000 × addresses ÷ ports per host = 64,000 × {a} ÷ {} = {}",
                crate::util::thousands(u64::from(p)),
                crate::util::thousands(PER_ADDRESS * a / u64::from(p))
            ),
            source: "AKS, configure the allocated outbound ports",
            hosts_served: Some(PER_ADDRESS * a / u64::from(p)),
            per_destination: None,
            ports_per_host: Some(p),
        },
        None => {
            let p = CloudRules::table_ports(TABLE, hosts.min(u64::from(u32::MAX)) as u32);
            Formula {
                rule: if p == 0 {
                    format!("pool-size table: {hosts} instances is past the table's 1,000; set ports_per_host")
                } else {
                    format!("pool-size table: {hosts} instances get {p} ports each")
                },
                source: "Azure Load Balancer, source NAT for outbound connections",
                hosts_served: Some(if p == 0 { 0 } else { hosts.max(1) }),
                per_destination: None,
                ports_per_host: Some(p),
            }
        }
    }
}
