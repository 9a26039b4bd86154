//! `sequential`: one global cursor, next usable port after the last one handed
//! out (classic BSD, and macOS TCP with `net.inet.tcp.randomize_ports = 0`).

use super::{Allocator, Candidates, Entry, Request, Setup};

pub const ENTRY: Entry = Entry {
    name: "sequential",
    summary: "global cursor: the next usable port after the last one handed out",
    build,
    exhaustive: true,
    extra_probes: super::no_extra_probes,
    check: super::no_settings,
};

struct Sequential {
    /// Index of the last port handed out; the scan starts after it.
    last: Option<u32>,
}

fn build(_: Setup<'_>) -> Box<dyn Allocator> {
    Box::new(Sequential { last: None })
}

impl Allocator for Sequential {
    fn pick(&mut self, _: &Request, c: &Candidates<'_>) -> Option<u32> {
        let start = self.last.map_or(0, |l| (l + 1) % c.range());
        let port = c.scan_from(start)?;
        self.last = Some(port);
        Some(port)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hands_out_ports_in_order() {
        let ports = super::super::testing::fill("sequential", 100, 1);
        assert_eq!(ports, (0..100).collect::<Vec<_>>());
    }
}
