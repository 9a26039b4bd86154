//! A fixed-size bitset over port indices, scanned a 64-bit word at a time.
//!
//! Port lookups are the inner loop of every allocator: finding the next usable
//! port after a random start over 16,384 ports is at most 256 word loads with
//! `trailing_zeros`, instead of up to 16,384 byte compares.

#[derive(Debug, Clone, Default)]
pub struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    pub fn new(bits: u32) -> Self {
        Bitset {
            words: vec![0; words_for(bits)],
        }
    }
    #[inline]
    pub fn get(&self, i: u32) -> bool {
        self.words[(i >> 6) as usize] >> (i & 63) & 1 == 1
    }
    #[inline]
    pub fn set(&mut self, i: u32) {
        self.words[(i >> 6) as usize] |= 1 << (i & 63);
    }
    #[inline]
    pub fn clear(&mut self, i: u32) {
        self.words[(i >> 6) as usize] &= !(1 << (i & 63));
    }
    pub fn words(&self) -> &[u64] {
        &self.words
    }
    pub fn count_ones(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }
    pub fn reset(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }
}

pub fn words_for(bits: u32) -> usize {
    bits.div_ceil(64) as usize
}

/// Index of the `k`-th (0-based) set bit of `word`.
#[inline]
pub fn select_in_word(mut word: u64, k: u32) -> u32 {
    for _ in 0..k {
        word &= word - 1;
    }
    word.trailing_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear_and_count() {
        let mut b = Bitset::new(130);
        assert_eq!(b.words().len(), 3);
        b.set(0);
        b.set(64);
        b.set(129);
        assert!(b.get(64) && b.get(129) && !b.get(1));
        assert_eq!(b.count_ones(), 3);
        b.clear(64);
        assert_eq!(b.count_ones(), 2);
    }

    #[test]
    fn select_finds_the_kth_bit() {
        assert_eq!(select_in_word(0b1011_0000, 0), 4);
        assert_eq!(select_in_word(0b1011_0000, 2), 7);
    }
}
