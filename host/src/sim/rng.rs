//! The simulator's only source of randomness: a seeded ChaCha8 stream,
//! reproducible on every platform.

use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// A seeded random stream.
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A number in `0..n` (`0` when `n` is zero).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift: unbiased enough for fault choices, and
        // one draw per call keeps the stream easy to reason about.
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits as a float in [0, 1).
        let draw = (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        draw < p
    }

    /// A duration in `[lo, hi]` milliseconds, with microsecond resolution.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        let (lo, hi) = (lo * 1000, hi.max(lo) * 1000);
        Duration::from_micros(lo + self.below(hi - lo + 1))
    }

    /// One of `items`, or `None` when there are none.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_gives_the_same_stream() {
        let draws = |seed| {
            let mut rng = SimRng::new(seed);
            (0..32).map(|_| rng.below(1000)).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }

    #[test]
    fn draws_stay_in_range() {
        let mut rng = SimRng::new(1);
        for _ in 0..1000 {
            assert!(rng.below(3) < 3);
            let d = rng.millis(5, 9);
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(9));
        }
        assert_eq!(rng.below(0), 0);
        assert!(!rng.chance(0.0));
        assert!(rng.chance(1.0));
        assert_eq!(rng.pick::<u8>(&[]), None);
    }
}
