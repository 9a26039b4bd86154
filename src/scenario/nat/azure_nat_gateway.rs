//! `type = "azure-nat-gateway"`: an Azure NAT gateway.
//!
//! Sources (keys as in the project's NAT research notes):
//! - [AZ-NATGW-RES] "Azure NAT Gateway resource"
//!   (learn.microsoft.com/azure/nat-gateway/nat-gateway-resource): 64,512
//!   ports per public address, up to 16 addresses, shared on demand by the
//!   subnets; port reuse toward the same destination only after 65 s (FIN),
//!   16 s (RST), 30 s (half-open), 65 s (UDP); idle timeout 4 min (TCP,
//!   4–120 min) and 4 min fixed for UDP; up to 50,000 concurrent
//!   connections per address to the same destination.
//! - [AZ-NATGW-SNAT] "SNAT with Azure NAT Gateway": a port is picked at
//!   random from the inventory; it may serve other destinations at once.
//!
//! Modelled: the 50,000 figure as a hard cap per (address, destination);
//! a UDP flow holds its port for the 4 min UDP idle timeout and then the
//! 65 s UDP reuse timer. Assumed: an address is picked at random, then a
//! random port and the next free one.

use super::{Blocks, Choice, Formula, Holds, Nat, Preset};
use crate::scenario::NS_PER_S;

/// Concurrent connections per address to one destination, [AZ-NATGW-RES].
const PER_DESTINATION: u32 = 50_000;
/// Ports per address, [AZ-NATGW-RES].
const PER_ADDRESS: u64 = 64_512;

pub const PRESET: Preset = Preset {
    name: "azure-nat-gateway",
    title: "Azure NAT gateway",
    ports: (1024, 65535),
    max_addresses: 16,
    blocks: Blocks::Shared,
    choice: Choice::Random,
    addresses_in_turn: false,
    per_destination: Some(PER_DESTINATION),
    holds: Holds {
        fin: 65 * NS_PER_S,
        rst: 16 * NS_PER_S,
        half_open: 30 * NS_PER_S,
        udp: (240 + 65) * NS_PER_S,
        idle: 240 * NS_PER_S,
    },
    keys: &["idle_timeout", "hold_after_close"],
    failure_metric: "failed SNAT connections",
    assumed: &[
        "the 50,000 connections per address to one destination are a hard cap",
        "a UDP flow holds its port for the 4 min idle timeout, then the 65 s UDP reuse timer",
        "an address is picked at random, then a random port and the next free one",
    ],
    formula,
};

fn formula(nat: &Nat, _hosts: u64) -> Formula {
    let a = nat.addresses.len() as u64;
    Formula {
        rule: format!(
            "64,512 ports per address, shared: {a} × 64,512 = {} ports; 50,000 per address to one destination = {}",
            crate::util::thousands(a * PER_ADDRESS),
            crate::util::thousands(a * u64::from(PER_DESTINATION))
        ),
        source: "Azure NAT Gateway resource",
        hosts_served: None,
        per_destination: Some(a * u64::from(PER_DESTINATION)),
        ports_per_host: None,
    }
}
