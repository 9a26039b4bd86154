//! No OS in particular: the textbook model.

use super::{Os, Preset};

pub const PRESET: Preset = Preset {
    os: Os::Generic,
    name: "generic",
    allocator: "rfc6056-1",
    udp_allocator: "rfc6056-1",
    time_wait_s: 60,
    share_across_destinations: true,
    native_range: (49152, 65535),
    notes: "Random start then linear probe (RFC 6056 algorithm 1), 60 s TIME_WAIT, \
            4-tuple sharing across destinations, IANA range 49152-65535. UDP flows: the same \
            allocator, a port exclusive on its address.",
    assumptions: &[],
};
