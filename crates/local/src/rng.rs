//! A tiny deterministic PRNG (SplitMix64) and sampling helpers for the demo dataset.
//!
//! The demo data must be identical on every machine and every run, across Rust and crate
//! versions, so it cannot depend on `rand`'s algorithms (which may change between releases)
//! nor on platform math functions (`ln`, `exp`, `powf` may differ in the last bit between
//! libms). Everything here uses integer arithmetic and IEEE-exact `+ - * /` and `sqrt` only.

/// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit state advanced by a Weyl sequence and
/// mixed by a fixed finaliser. Fast, statistically good enough for synthetic data, and fully
/// specified by its constants.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, n)`; `n == 0` yields 0. Multiply-shift keeps it branch-free and the
    /// bias (below 2^-40 for the sizes used here) is irrelevant for demo data.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// A uniformly chosen element; `items` must not be empty (all call sites pass constants).
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An index drawn with probability proportional to `weights` (linear scan: the lists are
    /// short).
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.next_f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// Fisher–Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// Cumulative weights for drawing from long lists in `O(log n)`.
#[derive(Debug, Clone)]
pub(crate) struct Cumulative {
    sums: Vec<f64>,
}

impl Cumulative {
    pub(crate) fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut acc = 0.0;
        let sums = weights
            .into_iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        Self { sums }
    }

    /// An index in `[0, len)` drawn by weight.
    pub(crate) fn sample(&self, rng: &mut SplitMix64) -> usize {
        self.sample_prefix(rng, self.sums.len())
    }

    /// An index in `[0, prefix)` drawn by weight, restricted to the first `prefix` entries.
    pub(crate) fn sample_prefix(&self, rng: &mut SplitMix64, prefix: usize) -> usize {
        let prefix = prefix.min(self.sums.len());
        if prefix == 0 {
            return 0;
        }
        let total = self.sums[prefix - 1];
        let x = rng.next_f64() * total;
        self.sums[..prefix]
            .partition_point(|s| *s <= x)
            .min(prefix - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference_vector() {
        // First outputs for seed 1234567 from the reference C implementation.
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(rng.next_u64(), 9_817_491_932_198_370_423);
    }

    #[test]
    fn helpers_stay_in_range() {
        let mut rng = SplitMix64::new(7);
        let c = Cumulative::new([1.0, 0.0, 3.0]);
        for _ in 0..1000 {
            assert!(rng.below(10) < 10);
            let f = rng.next_f64();
            assert!((0.0..1.0).contains(&f));
            let i = c.sample(&mut rng);
            assert!(i == 0 || i == 2, "zero-weight entry drawn");
            assert_eq!(c.sample_prefix(&mut rng, 1), 0);
            assert!(rng.weighted(&[0.0, 1.0]) == 1);
        }
    }
}
