//! `type = "aws-nat-gateway"`: an AWS NAT gateway.
//!
//! Sources (keys as in the project's NAT research notes):
//! - [AWS-NGW] the VPC user guide, "NAT gateway basics"
//!   (<https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-basics.html>):
//!   each IPv4 address supports up to 55,000 simultaneous connections to
//!   each unique destination (destination IP, port and protocol); up to 8
//!   addresses per gateway; source ports 1024–65535.
//! - [AWS-NGW-TS] "Troubleshoot NAT gateways": a connection idle for 350 s
//!   or more times out, and the gateway answers it with RST.
//! - [AWS-NGW-OLD] older revisions of the same guide: the limit is also hit
//!   at about 900 new connections per second to one destination (about
//!   55,000 a minute), which puts the hold after close near 60 s.
//!
//! Undocumented, so options with stated defaults: the hold after close
//! (`hold_after_close`, 60 s, inferred from the 900/s sentence), whether a
//! reset or an unanswered SYN holds the port as long (assumed: yes), and
//! how a port is picked (assumed: random, then the next free one). The
//! idle timeout is fixed at 350 s.

use super::{Blocks, Choice, Formula, Holds, Nat, Preset};
use crate::scenario::NS_PER_S;

/// Connections per (address, destination), [AWS-NGW].
const PER_DESTINATION: u32 = 55_000;

pub const PRESET: Preset = Preset {
    name: "aws-nat-gateway",
    title: "AWS NAT gateway",
    ports: (1024, 65535),
    max_addresses: 8,
    blocks: Blocks::Shared,
    choice: Choice::Random,
    addresses_in_turn: false,
    per_destination: Some(PER_DESTINATION),
    holds: Holds {
        fin: 60 * NS_PER_S,
        rst: 60 * NS_PER_S,
        half_open: 60 * NS_PER_S,
        udp: 350 * NS_PER_S,
        idle: 350 * NS_PER_S,
    },
    keys: &["hold_after_close"],
    failure_metric: "ErrorPortAllocation",
    assumed: &[
        "a port is held 60 s after close (AWS does not document it; inferred from its old 900 connections/s figure; set hold_after_close)",
        "a reset or an unanswered SYN holds the port as long as a FIN close",
        "a port is picked at random, then the next free one",
        "a UDP flow's mapping lasts the 350 s idle timeout",
    ],
    formula,
};

fn formula(nat: &Nat, _hosts: u64) -> Formula {
    let a = nat.addresses.len() as u64;
    Formula {
        rule: format!(
            "55,000 concurrent connections per address per destination: {a} × 55,000 = {} to each destination",
            crate::util::thousands(a * u64::from(PER_DESTINATION))
        ),
        source: "AWS VPC user guide, NAT gateway basics",
        hosts_served: None,
        per_destination: Some(a * u64::from(PER_DESTINATION)),
        ports_per_host: None,
    }
}
