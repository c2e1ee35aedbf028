//! SplitMix64 mixing, from which every independent stream of the crate is seeded: the noise
//! of each batch and row, the data order of each training epoch, the example order of each
//! job. A function of its input alone, so a seed gives the same streams on every machine.

/// SplitMix64: a bijective mixer, so distinct (seed, batch) pairs give unrelated seeds.
pub(crate) fn split_mix(z: u64) -> u64 {
    mix64(z.wrapping_add(GOLDEN_GAMMA))
}

/// The odd constant SplitMix64 steps by (2^64 / golden ratio).
pub(crate) const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijection that spreads every input bit over the output.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The independent noise streams of one procedure call, derived from the call's seed in
/// order: CERTIFY's selection then estimation, a sequential test's selection then each look.
///
/// The SplitMix64 sequence of the seed (Steele, Lea & Flood 2014): a fixed algorithm written
/// here, so a seed names the same streams on every machine and across upgrades of `rand`
/// (whose `StdRng` may change algorithm between versions).
pub(crate) struct Streams(u64);

impl Streams {
    /// The streams of `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The seed of the next stream.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix64(self.0)
    }
}
