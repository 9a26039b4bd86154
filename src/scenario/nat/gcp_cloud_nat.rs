//! `type = "gcp-cloud-nat"`: Google Cloud NAT.
//!
//! Sources (keys as in the project's NAT research notes):
//! - [GCP-TS] Cloud NAT troubleshooting
//!   (docs.cloud.google.com/nat/docs/troubleshooting): 64,512 ports per
//!   address per protocol; a VM's block caps its connections to one
//!   destination (IP, port, protocol); with dynamic port allocation a VM's
//!   block doubles when it runs out, and packets are dropped while the
//!   increase is in flight (OUT_OF_RESOURCES); endpoint-independent
//!   mapping conflicts drop with ENDPOINT_INDEPENDENCE_CONFLICT.
//! - [TF-MOD] the Terraform module text quoting Google: VMs served =
//!   addresses × 64,512 ÷ min ports per VM (1 address, 64 ports → 1,008).
//! - [TF-GOOGLE], [GAPI] the Terraform provider and the Compute API: min
//!   ports a power of two (64 by default for static allocation, 32 with
//!   dynamic allocation), max ports a power of two above min (up to
//!   65,536); dynamic allocation excludes endpoint-independent mapping.
//! - [TF-CDK] timeouts: TCP TIME_WAIT 120 s, transitory 30 s, established
//!   idle 1,200 s, UDP 30 s.
//!
//! Undocumented, so stated defaults: how long a doubling takes
//! (`allocation_lag`, 1 s), that blocks never shrink during a run, that a
//! port within a VM's block is picked at random (then the next free one),
//! that a reset or an unanswered SYN holds its port for the transitory
//! timeout, and that endpoint-independent mapping is off unless set.

use super::{Blocks, Choice, Formula, Holds, Nat, Preset};
use crate::scenario::NS_PER_S;

/// A VM's ports under static allocation when unset, [TF-MOD].
const DEFAULT_MIN: u32 = 64;

/// Ports per address, [GCP-TS].
const PER_ADDRESS: u64 = 64_512;

pub const PRESET: Preset = Preset {
    name: "gcp-cloud-nat",
    title: "Google Cloud NAT",
    ports: (1024, 65535),
    max_addresses: 65_536,
    blocks: Blocks::PerHost {
        default_min: DEFAULT_MIN,
        dynamic_min: 32,
    },
    choice: Choice::Random,
    addresses_in_turn: true,
    per_destination: None,
    holds: Holds {
        fin: 120 * NS_PER_S,
        rst: 30 * NS_PER_S,
        half_open: 30 * NS_PER_S,
        udp: 30 * NS_PER_S,
        idle: 1200 * NS_PER_S,
    },
    keys: &[
        "min_ports_per_host",
        "max_ports_per_host",
        "timeouts",
        "endpoint_independent",
        "allocation_lag",
    ],
    failure_metric: "OUT_OF_RESOURCES drops",
    assumed: &[
        "a port is picked at random within the VM's block, then the next free one",
        "a reset or an unanswered SYN holds its port for the transitory timeout",
    ],
    formula,
};

fn formula(nat: &Nat, _hosts: u64) -> Formula {
    let a = nat.addresses.len() as u64;
    let min = nat
        .cloud
        .as_ref()
        .and_then(|c| c.ports_per_host)
        .unwrap_or(DEFAULT_MIN);
    let served = a * PER_ADDRESS / u64::from(min);
    Formula {
        rule: format!(
            "VMs served = addresses × 64,512 ÷ min ports per VM = {a} × 64,512 ÷ {} = {}",
            crate::util::thousands(u64::from(min)),
            crate::util::thousands(served)
        ),
        source: "Cloud NAT ports and addresses (via the Terraform module text)",
        hosts_served: Some(served),
        per_destination: None,
        ports_per_host: Some(min),
    }
}
