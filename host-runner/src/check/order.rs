//! The order requests run in: as given in the first round, shuffled from a
//! seed in the others, so that a finding can be reproduced. This module does
//! not run anything.

/// The probe orders of each round: as given first, then shuffled.
pub(super) fn orders(count: usize, rounds: usize, shuffler: &mut Shuffler) -> Vec<Vec<usize>> {
    (0..rounds)
        .map(|round| {
            let mut order: Vec<usize> = (0..count).collect();
            if round > 0 {
                shuffler.shuffle(&mut order);
            }
            order
        })
        .collect()
}

/// SplitMix64: a tiny, well-mixed generator, enough for reproducible
/// shuffles without a dependency.
pub(super) struct Shuffler(u64);

impl Shuffler {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher–Yates.
    pub(super) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_orders_and_round_one_keeps_the_given_order() {
        let a = orders(5, 3, &mut Shuffler::new(7));
        let b = orders(5, 3, &mut Shuffler::new(7));
        assert_eq!(a, b);
        assert_eq!(a[0], vec![0, 1, 2, 3, 4]);
        for order in &a {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
        }
        assert_ne!(orders(5, 3, &mut Shuffler::new(8)), a);
    }
}
