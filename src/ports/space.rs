//! [`PortSpace`], the general port state of a host: which ports each
//! address holds and how many sockets share them, per-flow 4-tuple bitsets with their `tcp_tw_reuse` marks, and
//! bind() owners, for every scenario (see the module above for the rules).

use std::cell::Cell;
use std::sync::Arc;

use super::bitset::{words_for, Bitset};
use super::fastmap::FastMap;
use super::*;

struct FlowBits {
    key: u64,
    occ: Bitset,
    reusable: Bitset,
    /// Words with a port neither reserved nor taken (`occ` and not `reusable`).
    open: Bitset,
    /// Bits set in `occ`, and in `reusable`.
    count: u32,
    reusable_count: u32,
}

pub struct PortSpace {
    n: u32,
    /// Ports no socket may take: the reserved ones, and the bits past the
    /// range in the last word (so scans need no range mask).
    blocked: Arc<Bitset>,
    reserved_count: u32,
    /// bind() owners per port; allocated at the first bind().
    bind_count: Vec<u32>,
    /// Sockets holding a port through bind(), over all ports.
    bind_total: u64,
    bind_bits: Bitset,
    addrs: Vec<Pool>,
    /// Per address, the ports more than one socket holds (a port one
    /// socket holds is just busy in its pool), and how many more, by
    /// [`shared_key`]: memory follows the ports shared, not the range.
    shared_bits: Vec<Bitset>,
    shared: FastMap<u64, u32>,
    flow_slot: FastMap<u64, u32>,
    /// The last flow looked up, and its slot: most runs talk to few flows.
    last_flow: Cell<Option<(u64, u32)>>,
    flows: Vec<FlowBits>,
    free_flows: Vec<u32>,
    zero: Vec<u64>,
    /// Words with a port that is not reserved.
    unreserved: Arc<Bitset>,
}

/// The key of (address, port) in [`PortSpace::shared`].
fn shared_key(addr: u32, port: u32) -> u64 {
    (u64::from(addr) << 32) | u64::from(port)
}

impl Ports for PortSpace {
    #[inline]
    fn flow(&self, key: u64) -> Option<u32> {
        if let Some((k, s)) = self.last_flow.get() {
            if k == key {
                return Some(s);
            }
        }
        let s = self.flow_slot.get(&key).copied();
        if let Some(s) = s {
            self.last_flow.set(Some((key, s)));
        }
        s
    }

    fn candidates(&self, addr: u32, flow: Option<u32>, sharing: Sharing) -> Candidates<'_> {
        let free = self.n - self.reserved_count;
        let (mask, open, usable) = match sharing {
            Sharing::Exclusive => {
                return self.addrs[addr as usize].candidates(self.n, free, &self.blocked)
            }
            Sharing::FourTuple => {
                let (occ, reusable, open, taken) = match flow {
                    Some(s) => {
                        let f = &self.flows[s as usize];
                        (
                            f.occ.words(),
                            f.reusable.words(),
                            f.open.words(),
                            f.count - f.reusable_count,
                        )
                    }
                    None => (&self.zero[..], &self.zero[..], self.unreserved.words(), 0),
                };
                let mask = Mask::FourTuple {
                    bind: self.bind_bits.words(),
                    occ,
                    reusable,
                };
                // With bind() owners about, the count needs a scan.
                (mask, open, (self.bind_total == 0).then(|| free - taken))
            }
        };
        Candidates {
            n: self.n,
            blocked: self.blocked.words(),
            mask,
            open,
            usable,
        }
    }

    fn occupy(&mut self, take: Take) -> Occupied {
        let Take {
            addr,
            key,
            slot,
            port,
            bind,
            now,
        } = take;
        let w = (port >> 6) as usize;
        let blocked = self.blocked.words()[w];
        let p = port as usize;
        let pool = &mut self.addrs[addr as usize];
        let newly_busy = !pool.busy.get(port);
        let interval = if newly_busy {
            pool.take(port, &self.blocked, now)
        } else {
            self.shared_bits[addr as usize].set(port);
            *self.shared.entry(shared_key(addr, port)).or_insert(0) += 1;
            None
        };
        if bind {
            if self.bind_count.is_empty() {
                self.bind_count = vec![0; self.n as usize];
            }
            self.bind_total += 1;
            self.bind_count[p] += 1;
            self.bind_bits.set(port);
        }
        let slot = match slot {
            Some(s) => s,
            None => self.flow_or_new(key),
        };
        let f = &mut self.flows[slot as usize];
        f.occ.set(port);
        f.count += 1;
        note_taken(
            &mut f.open,
            f.occ.words()[w] & !f.reusable.words()[w],
            blocked,
            w,
        );
        Occupied {
            flow: slot,
            newly_busy,
            interval,
        }
    }

    /// The socket may be a connection or a TIME_WAIT entry; the port is
    /// free once no socket of any flow holds it.
    fn release(&mut self, release: Release) -> bool {
        let Release {
            addr,
            slot,
            port,
            bind,
            now,
        } = release;
        let p = port as usize;
        let freed = !self.shared_bits[addr as usize].get(port) || {
            let k = shared_key(addr, port);
            let more = self.shared.get_mut(&k).expect("a shared port is counted");
            *more -= 1;
            if *more == 0 {
                self.shared.remove(&k);
                self.shared_bits[addr as usize].clear(port);
            }
            false
        };
        if freed {
            self.addrs[addr as usize].free(port, now);
        }
        if bind {
            self.bind_total -= 1;
            self.bind_count[p] -= 1;
            if self.bind_count[p] == 0 {
                self.bind_bits.clear(port);
            }
        }
        let f = &mut self.flows[slot as usize];
        f.occ.clear(port);
        f.open.set(port >> 6);
        if f.reusable.get(port) {
            f.reusable.clear(port);
            f.reusable_count -= 1;
        }
        f.count -= 1;
        if f.count == 0 {
            let key = f.key;
            self.flow_slot.remove(&key);
            if self.last_flow.get().is_some_and(|(k, _)| k == key) {
                self.last_flow.set(None);
            }
            self.free_flows.push(slot);
        }
        freed
    }

    fn is_reusable_tw(&self, slot: u32, port: u32) -> bool {
        self.flows[slot as usize].reusable.get(port)
    }

    fn mark_reusable(&mut self, slot: u32, port: u32) {
        let f = &mut self.flows[slot as usize];
        if !f.reusable.get(port) {
            f.reusable.set(port);
            f.reusable_count += 1;
            f.open.set(port >> 6);
        }
    }

    /// The entry goes, the connection stays on the same port.
    fn take_over(&mut self, slot: u32, port: u32) {
        let w = (port >> 6) as usize;
        let blocked = self.blocked.words()[w];
        let f = &mut self.flows[slot as usize];
        if f.reusable.get(port) {
            f.reusable.clear(port);
            f.reusable_count -= 1;
            note_taken(
                &mut f.open,
                f.occ.words()[w] & !f.reusable.words()[w],
                blocked,
                w,
            );
        }
    }

    fn distinct_used(&self) -> u32 {
        // A port was handed out if it is held now or was freed once.
        self.addrs.iter().map(Pool::distinct_used).sum()
    }
}

impl PortSpace {
    /// `n` ports (indices `0..n`), `addresses` local addresses, `reserved` indices.
    pub fn new(n: u32, addresses: u32, reserved: impl IntoIterator<Item = u32>) -> Self {
        Self::on(&Range::new(n, reserved), addresses, true)
    }

    /// `addresses` addresses of `range`'s ports; `timed`: reuse intervals are
    /// told (see [`super::pool::AddressPools::on`]).
    pub fn on(range: &Range, addresses: u32, timed: bool) -> Self {
        let n = range.n;
        let reserved_count = range.reserved_count;
        let words = words_for(n);
        let addrs = (0..addresses).map(|_| Pool::new(range, timed)).collect();
        let shared_bits = (0..addresses).map(|_| Bitset::new(n)).collect();
        PortSpace {
            n,
            reserved_count,
            blocked: Arc::clone(&range.blocked),
            bind_total: 0,
            bind_count: Vec::new(),
            bind_bits: Bitset::new(n),
            addrs,
            shared_bits,
            shared: FastMap::default(),
            flow_slot: FastMap::default(),
            last_flow: Cell::new(None),
            flows: Vec::new(),
            free_flows: Vec::new(),
            zero: vec![0; words],
            unreserved: Arc::clone(&range.unreserved),
        }
    }

    pub fn size(&self) -> u32 {
        self.n
    }

    /// (address, port) pairs held by anything.
    pub fn in_use(&self) -> u32 {
        self.addrs.iter().map(Pool::busy_count).sum()
    }

    fn flow_or_new(&mut self, key: u64) -> u32 {
        if let Some(s) = self.flow(key) {
            return s;
        }
        let s = match self.free_flows.pop() {
            Some(s) => {
                let f = &mut self.flows[s as usize];
                f.key = key;
                f.open = Bitset::clone(&self.unreserved);
                s
            }
            None => {
                self.flows.push(FlowBits {
                    key,
                    occ: Bitset::new(self.n),
                    reusable: Bitset::new(self.n),
                    open: Bitset::clone(&self.unreserved),
                    count: 0,
                    reusable_count: 0,
                });
                (self.flows.len() - 1) as u32
            }
        };
        self.flow_slot.insert(key, s);
        self.last_flow.set(Some((key, s)));
        s
    }
}
