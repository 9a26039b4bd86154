//! The NAT types behind one name, and [`NatChain`], the NATs a single
//! host's connections cross in turn (pod → node → cloud).
//!
//! [`PortLayer`]'s methods are generic over the observer, so a NAT cannot
//! be a trait object; [`AnyNat`] is an enum over the NAT engines instead,
//! each call a `match` the optimiser sees through. A new engine is one
//! file and one line in `nat_types!` below. Most cloud NATs need no engine
//! of their own: they are presets of [`CloudNat`]
//! (`crate::scenario::nat::PRESETS`).

use super::cloud::CloudNat;
use super::layer::{Cause, Ctx, Due, NatFigures, Path, PortLayer, Refused, Site};
use super::nat::{LinuxNat, Mapping};
use super::Observer;
use crate::scenario::nat::{Nat, NatKind};
use crate::scenario::Scenario;

/// `AnyNat`: one variant per engine, every call dispatched by `match`.
macro_rules! nat_types {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// A NAT of any type.
        pub enum AnyNat {
            $($variant($ty),)*
        }

        impl AnyNat {
            /// The connection of `m` closed at `t`: the NAT keeps its
            /// entry for `ns`.
            pub fn close_after<O: Observer>(
                &mut self,
                t: u64,
                m: Mapping,
                ns: u64,
                server_closed: bool,
                cx: &mut Ctx<'_, O>,
            ) {
                match self {
                    $(AnyNat::$variant(n) => n.close_after(t, m, ns, server_closed, cx),)*
                }
            }

            /// A connect whose last SYN this NAT dropped was still waiting
            /// to give up at the end of the run.
            pub fn still_connecting(&mut self, cause: Cause) {
                match self {
                    $(AnyNat::$variant(n) => n.still_connecting(cause),)*
                }
            }

            /// What the NAT measured, up to `end`.
            pub fn figures(&mut self, end: u64) -> NatFigures {
                match self {
                    $(AnyNat::$variant(n) => n.figures(end),)*
                }
            }

            pub fn site(&self) -> Site {
                match self {
                    $(AnyNat::$variant(n) => n.site(),)*
                }
            }
        }

        impl PortLayer for AnyNat {
            type Held = Mapping;

            #[inline]
            fn open<O: Observer>(
                &mut self,
                t: u64,
                path: Path,
                cx: &mut Ctx<'_, O>,
            ) -> Result<(Mapping, Path), Refused> {
                match self {
                    $(AnyNat::$variant(n) => n.open(t, path, cx),)*
                }
            }

            #[inline]
            fn close<O: Observer>(&mut self, t: u64, m: Mapping, cx: &mut Ctx<'_, O>) {
                match self {
                    $(AnyNat::$variant(n) => n.close(t, m, cx),)*
                }
            }

            #[inline]
            fn abort<O: Observer>(&mut self, t: u64, m: Mapping, cx: &mut Ctx<'_, O>) {
                match self {
                    $(AnyNat::$variant(n) => n.abort(t, m, cx),)*
                }
            }

            #[inline]
            fn next_due(&self) -> Due {
                match self {
                    $(AnyNat::$variant(n) => n.next_due(),)*
                }
            }

            #[inline]
            fn run_due<O: Observer>(&mut self, until: Due, cx: &mut Ctx<'_, O>) {
                match self {
                    $(AnyNat::$variant(n) => n.run_due(until, cx),)*
                }
            }
        }
    };
}

nat_types! {
    Linux(LinuxNat),
    Cloud(CloudNat),
}

impl AnyNat {
    /// The engine for `nat` (index `index` of the scenario's NATs in a
    /// fleet, of the path for a single host) at `site`, behind a layer
    /// whose port indices start at `upstream_lo`.
    pub fn new(sc: &Scenario, nat: &Nat, index: usize, site: Site, upstream_lo: u16) -> AnyNat {
        match nat.kind {
            NatKind::Linux => AnyNat::Linux(LinuxNat::new(sc, nat, site, upstream_lo)),
            NatKind::Cloud(_) => AnyNat::Cloud(CloudNat::new(sc, nat, index, site)),
        }
    }

    /// The hosts of the group whose first address index is `first_addr`
    /// (`per` addresses each) went from `before` to `after`: a NAT with
    /// per-host blocks hands them out or takes them back.
    pub fn scale<O: Observer>(
        &mut self,
        t: u64,
        first_addr: u32,
        per: u32,
        before: u32,
        after: u32,
        cx: &mut Ctx<'_, O>,
    ) {
        match self {
            AnyNat::Linux(_) => {}
            AnyNat::Cloud(n) => n.scale(t, first_addr, per, before, after, cx),
        }
    }
}

pub use crate::scenario::nat::MAX_CHAIN;

/// The NATs a connection crosses, in order: each sees the path the one
/// before it made.
pub struct NatChain {
    pub nats: Vec<AnyNat>,
}

impl NatChain {
    /// The chain from `sc.via`, following each NAT's `via`.
    pub fn new(sc: &Scenario) -> NatChain {
        let mut nats = Vec::new();
        let mut upstream_lo = sc.host.port_lo;
        for (i, nat) in sc.nat_path().into_iter().enumerate() {
            let site = Site {
                layer: (i + 1) as u16,
                host: 0,
            };
            nats.push(AnyNat::new(sc, nat, i, site, upstream_lo));
            upstream_lo = nat.port_lo;
        }
        NatChain { nats }
    }

    /// Each NAT's figures, in path order.
    pub fn figures(&mut self, end: u64) -> Vec<NatFigures> {
        self.nats.iter_mut().map(|n| n.figures(end)).collect()
    }
}

impl PortLayer for NatChain {
    type Held = [Mapping; MAX_CHAIN];

    fn open<O: Observer>(
        &mut self,
        t: u64,
        mut path: Path,
        cx: &mut Ctx<'_, O>,
    ) -> Result<(Self::Held, Path), Refused> {
        let mut held = [Mapping::NONE; MAX_CHAIN];
        let syn = path.syn;
        for i in 0..self.nats.len() {
            path.syn = syn.at(i);
            match self.nats[i].open(t, path, cx) {
                Ok((m, p)) => {
                    held[i] = m;
                    path = p;
                }
                Err(r) => {
                    for j in (0..i).rev() {
                        self.nats[j].abort(t, held[j], cx);
                    }
                    return Err(r);
                }
            }
        }
        Ok((held, path))
    }

    fn close<O: Observer>(&mut self, t: u64, held: Self::Held, cx: &mut Ctx<'_, O>) {
        for (nat, m) in self.nats.iter_mut().zip(held) {
            nat.close(t, m, cx);
        }
    }

    fn abort<O: Observer>(&mut self, t: u64, held: Self::Held, cx: &mut Ctx<'_, O>) {
        for (nat, m) in self.nats.iter_mut().zip(held) {
            nat.abort(t, m, cx);
        }
    }

    fn nat_figures(&mut self, end: u64) -> Vec<NatFigures> {
        self.figures(end)
    }

    fn nat_count(&self) -> usize {
        self.nats.len()
    }

    fn still_connecting(&mut self, site: Site, cause: Cause) {
        if let Some(n) = self.nats.iter_mut().find(|n| n.site() == site) {
            n.still_connecting(cause);
        }
    }

    fn next_due(&self) -> Due {
        self.nats
            .iter()
            .map(PortLayer::next_due)
            .min()
            .unwrap_or(Due::NEVER)
    }

    fn run_due<O: Observer>(&mut self, until: Due, cx: &mut Ctx<'_, O>) {
        loop {
            let next = self.next_due();
            if next >= until || next == Due::NEVER {
                return;
            }
            // Earliest first across the NATs; ties go to the first.
            let i = self
                .nats
                .iter()
                .position(|n| n.next_due() == next)
                .expect("a NAT holds the earliest timer");
            self.nats[i].run_due(next.just_after().min(until), cx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::jhash::nat_address_index;
    use crate::sim::nat::tests::{ip, load};
    use std::net::Ipv4Addr;

    /// In a single host's chain, each NAT hashes the addresses of the
    /// layer before it; `persistent` ignores the destination.
    #[test]
    fn a_chain_hashes_the_layer_before() {
        let sc = load(
            r#"
[host]
addresses = ["10.1.0.11", "10.1.0.40"]
via = "pod"
[traffic]
bind = "bind"
rate = 1
hold = "1s"
[[destinations]]
address = "10.2.0.2:5000"
[[destinations]]
address = "10.2.0.3:5000"
[[nat]]
name = "pod"
type = "linux"
addresses = ["10.5.0.1", "10.5.0.9", "10.5.0.3"]
via = "node"
[[nat]]
name = "node"
type = "linux"
addresses = 2
persistent = true
"#,
        );
        let chain = NatChain::new(&sc);
        let (AnyNat::Linux(pod), AnyNat::Linux(node)) = (&chain.nats[0], &chain.nats[1]) else {
            panic!("two Linux NATs");
        };
        for (i, h) in ["10.1.0.11", "10.1.0.40"].iter().enumerate() {
            for (d, dst) in ["10.2.0.2", "10.2.0.3"].iter().enumerate() {
                assert_eq!(
                    pod.outside_address(i as u32, d as u32),
                    nat_address_index(ip(h), ip(dst), 3, false)
                );
            }
        }
        assert_eq!(pod.source_ip(2), None);
        for (i, a) in ["10.5.0.1", "10.5.0.9", "10.5.0.3"].iter().enumerate() {
            let want = nat_address_index(ip(a), Ipv4Addr::UNSPECIFIED, 2, true);
            assert_eq!(node.outside_address(i as u32, 0), want);
            assert_eq!(node.outside_address(i as u32, 1), want);
        }
    }
}
