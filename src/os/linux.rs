//! Linux (5.18 and later; checked against the running kernel by the test
//! suite): `__inet_hash_connect()` for connect() and
//! `inet_csk_find_open_port()` for bind(0), both in the `linux` allocator;
//! UDP flows take their port by `udp_lib_get_port()`, the `linux-udp`
//! allocator.

use super::{Os, Preset};

pub const PRESET: Preset = Preset {
    os: Os::Linux,
    name: "linux",
    allocator: "linux",
    udp_allocator: "linux-udp",
    time_wait_s: 60,
    share_across_destinations: true,
    native_range: (32768, 60999),
    notes: "connect(): keyed hash of source, destination and a 10 s time bucket \
            into a 65,536-entry perturbation table; ports of the range's low-end \
            parity first (even for 32768), stepping by 2, then the other parity; \
            the table entry advances by max(i, 2*rand(0..8)) + 2. A port is shared \
            across destinations (only the 4-tuple must be unique) but never with \
            a bind() owner. bind(0): random odd offset, opposite parity first, \
            exclusive on the address. TIME_WAIT is fixed at 60 s (TCP_TIMEWAIT_LEN); \
            tcp_tw_reuse and tcp_max_tw_buckets as set in the scenario. Native \
            range 32768-60999. UDP flows: udp_lib_get_port() (allocator linux-udp): \
            a random start, then the start's hash slot in an order set by the same \
            draw, slot after slot; a port is exclusive on its address; no TIME_WAIT.",
    assumptions: &[
        "UDP flows: a udp_table of 8192 slots, as on a 16 GiB host (the kernel sizes \
         it from memory at boot; not a scenario setting)",
        "the kernel's siphash is replaced by a keyed mix of the same inputs, seeded from \
         the scenario seed: the structure is exact, the particular ports differ",
        "tcp_tw_reuse applies to every destination as with tcp_tw_reuse = 1 (the kernel's \
         default 2 limits it to loopback): host.tw_reuse",
        "tcp_tw_reuse_delay counts from the close (the kernel counts from the last \
         timestamp received, normally the peer's FIN): host.tw_reuse_delay",
    ],
};
