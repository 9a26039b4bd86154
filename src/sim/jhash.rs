//! The Linux kernel's `jhash2` (include/linux/jhash.h, Bob Jenkins'
//! lookup3) and the outside-address choice netfilter's NAT makes with it
//! (`find_best_ips_proto` in net/netfilter/nf_nat_core.c), so that a
//! `type = "linux"` NAT with several outside addresses gives each
//! (source, destination) pair exactly the address a real box gives it.
//!
//! The kernel hashes the source address as it lies in memory (a `union
//! nf_inet_addr`: for IPv4 the big-endian address word, then three zero
//! words), read as native 32-bit words, with the destination's word as the
//! initial value. The words here are read little-endian, as on x86-64 and
//! arm64 kernels, whatever machine portsim runs on, so a run reproduces
//! byte for byte everywhere (a big-endian kernel would hash other words).
//! There is no secret key: the choice is the same on every boot, which the
//! kernel suite (`tests/portsim/kernel_nat.rs`, case "two-addresses")
//! checks against the running kernel.

use std::net::Ipv4Addr;

/// `jhash2(k, length, initval)`: Jenkins' lookup3 over 32-bit words.
pub fn jhash2(k: &[u32], initval: u32) -> u32 {
    let len = k.len() as u32;
    let init = 0xdead_beef_u32
        .wrapping_add(len.wrapping_shl(2))
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut rest = k;
    while rest.len() > 3 {
        a = a.wrapping_add(rest[0]);
        b = b.wrapping_add(rest[1]);
        c = c.wrapping_add(rest[2]);
        // __jhash_mix
        a = a.wrapping_sub(c);
        a ^= c.rotate_left(4);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a);
        b ^= a.rotate_left(6);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b);
        c ^= b.rotate_left(8);
        b = b.wrapping_add(a);
        a = a.wrapping_sub(c);
        a ^= c.rotate_left(16);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a);
        b ^= a.rotate_left(19);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b);
        c ^= b.rotate_left(4);
        b = b.wrapping_add(a);
        rest = &rest[3..];
    }
    if rest.is_empty() {
        return c;
    }
    if rest.len() == 3 {
        c = c.wrapping_add(rest[2]);
    }
    if rest.len() >= 2 {
        b = b.wrapping_add(rest[1]);
    }
    a = a.wrapping_add(rest[0]);
    // __jhash_final
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c.wrapping_sub(b.rotate_left(24))
}

/// An IPv4 address as the kernel's word of it reads on a little-endian
/// machine (the `__be32` in memory, loaded as a native `u32`).
pub fn word(a: Ipv4Addr) -> u32 {
    u32::from_le_bytes(a.octets())
}

/// `reciprocal_scale(val, n)`: `val` scaled onto `0..n`.
pub fn reciprocal_scale(val: u32, n: u32) -> u32 {
    ((u64::from(val) * u64::from(n)) >> 32) as u32
}

/// `find_best_ips_proto` for IPv4: the index, among `n` outside addresses,
/// of the one a connection from `src` to `dst` leaves from. `dst` is
/// ignored with `persistent` (the kernel seeds the hash with 0 then).
pub fn nat_address_index(src: Ipv4Addr, dst: Ipv4Addr, n: u32, persistent: bool) -> u32 {
    if n <= 1 {
        return 0;
    }
    let seed = if persistent { 0 } else { word(dst) };
    reciprocal_scale(jhash2(&[word(src), 0, 0, 0], seed), n)
}

/// The hash [`nat_address_index`] scales onto the addresses, before the
/// scaling: `reciprocal_scale(nat_address_hash(src, dst, p), n)` is the
/// index among `n ≥ 2` addresses. The hash does not depend on `n`, so the
/// addresses of a pair for many counts cost one hash.
pub fn nat_address_hash(src: Ipv4Addr, dst: Ipv4Addr, persistent: bool) -> u32 {
    let seed = if persistent { 0 } else { word(dst) };
    jhash2(&[word(src), 0, 0, 0], seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed with a C transcription of include/linux/jhash.h
    /// (gcc, x86-64), keys as the kernel lays out 10.1.0.x and seeds
    /// 10.2.0.y.
    #[test]
    fn jhash2_matches_the_kernel_header() {
        let key = |last: u8| [word(Ipv4Addr::new(10, 1, 0, last)), 0, 0, 0];
        let seed = |last: u8| word(Ipv4Addr::new(10, 2, 0, last));
        assert_eq!(jhash2(&key(11), seed(2)), 0x5730_73f9);
        assert_eq!(jhash2(&key(11), seed(3)), 0xa59e_597c);
        assert_eq!(jhash2(&key(12), seed(3)), 0x619a_b4fa);
        assert_eq!(jhash2(&key(14), seed(2)), 0xf175_6de9);
    }

    /// Their high bits pick the address of two, as the live kernel did in
    /// the kernel suite: 0, 1, 0, 1.
    #[test]
    fn the_address_of_two_is_the_high_bit() {
        let pick = |c, d| {
            nat_address_index(
                Ipv4Addr::new(10, 1, 0, c),
                Ipv4Addr::new(10, 2, 0, d),
                2,
                false,
            )
        };
        assert_eq!(
            [pick(11, 2), pick(11, 3), pick(12, 3), pick(14, 2)],
            [0, 1, 0, 1]
        );
        // One address: no hash at all.
        assert_eq!(
            nat_address_index(Ipv4Addr::new(10, 1, 0, 11), Ipv4Addr::LOCALHOST, 1, false),
            0
        );
    }

    #[test]
    fn persistent_ignores_the_destination() {
        let src = Ipv4Addr::new(10, 1, 0, 11);
        let a = nat_address_index(src, Ipv4Addr::new(10, 2, 0, 2), 7, true);
        let b = nat_address_index(src, Ipv4Addr::new(10, 2, 0, 3), 7, true);
        assert_eq!(a, b);
        assert_eq!(a, reciprocal_scale(jhash2(&[word(src), 0, 0, 0], 0), 7));
    }

    #[test]
    fn short_keys_and_empty_keys() {
        // lookup3's empty key returns c untouched.
        assert_eq!(jhash2(&[], 0), 0xdead_beef);
        assert_eq!(reciprocal_scale(u32::MAX, 3), 2);
        assert_eq!(reciprocal_scale(0, 3), 0);
    }
}
