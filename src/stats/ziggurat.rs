//! Standard normal variates in `f32` by a ziggurat (Marsaglia & Tsang, "The Ziggurat Method
//! for Generating Random Variables", J. Stat. Softw. 5(8), 2000), written so that the common
//! case runs many variates per instruction.
//!
//! On the CPU every certification draws `n0 + n` noisy copies of its input, 3,072 normals
//! each for CIFAR, so the sampler bounds how small the smoothing machinery can be next to a
//! fast forward pass. A scalar ziggurat spends its time on a serial generator and on
//! branches; this one splits the work in two passes over blocks of 64 variates:
//! 1. A branch-free pass that the compiler vectorizes: 64-bit words from eight interleaved
//!    xoshiro256++ generators ([`Lanes`]), and for each word a point uniform in one of 1,024
//!    layers, accepted at once when it lies in the part of the layer under the density
//!    (99.57% of words).
//! 2. A scalar pass over the rest, which finishes each rejected point exactly as the
//!    sequential algorithm would: the wedge test against the density, the exact tail beyond
//!    [`TAIL_START`] (Marsaglia 1964), and a fresh draw when the wedge test fails. Its extra
//!    randomness comes from the caller's generator, in order.
//!
//! The method is exact: the layers of equal area cover the density, and each stage is a
//! rejection step. Its only approximations are `f32` rounding (of the layer edges and of
//! the variate, as for any `f32` noise) and a position within the layer resolved to 24 bits
//! (a grid no coarser than `2.6e-7`, in the base layer). The word's bits are kept apart
//! (Doornik 2005 showed the bias of the original's reusing one integer for the layer and the
//! position): bits 0-9 choose the layer, bit 10 the sign, bits 40-63 the position.
//!
//! The passes are compiled for AVX-512 and AVX2 as well as the baseline target and chosen at
//! run time. They use only integer arithmetic and single IEEE multiplications, so every
//! variant gives the same bits: a seed gives the same noise on every x86-64 or ARM machine.

use std::sync::OnceLock;

use rand::{Rng, RngExt};

/// Number of layers (a power of two: the layer index is a mask of the word).
const LAYERS: usize = 1024;
/// Where the tail begins for 1,024 layers: the `r` at which the layers' recurrence closes
/// exactly at the mode (found by bisection; `tests::the_layers_close_at_the_mode` checks it).
const TAIL_START: f64 = 4.038_849_846_109_504;
/// The area of each layer, the base layer's tail included: `r f(r) + sqrt(pi/2) erfc(r/sqrt(2))`.
const LAYER_AREA: f64 = 1.226_324_646_353_089_3e-3;
/// Variates per block: the fast pass's rejections fit one `u64` mask.
const BLOCK: usize = 64;
/// Interleaved generators: one 512-bit vector of 64-bit state words.
const LANE_COUNT: usize = 8;

/// The unnormalized density `exp(-x^2 / 2)`.
fn density(x: f64) -> f64 {
    (-0.5 * x * x).exp()
}

/// The layers' right edges `x[0] > x[1] = r > ... > x[1023] > x[1024] = 0` (`x[0]` is the base
/// layer's width, `LAYER_AREA / f(r)`, which folds its tail in).
fn layer_edges() -> [f64; LAYERS + 1] {
    let mut edges = [0.0f64; LAYERS + 1];
    edges[0] = LAYER_AREA / density(TAIL_START);
    edges[1] = TAIL_START;
    // Layer i spans the heights f(x[i]) to f(x[i + 1]) over [0, x[i]] with area LAYER_AREA:
    // f(x[i + 1]) = f(x[i]) + LAYER_AREA / x[i].
    for i in 1..LAYERS - 1 {
        edges[i + 1] = (-2.0 * (density(edges[i]) + LAYER_AREA / edges[i]).ln()).sqrt();
    }
    edges
}

/// Per layer, its own edge and the next one's as two `f32` in one word, so that the fast pass
/// loads both at once; and the density at each edge, which the wedge test needs.
struct Tables {
    edge_pairs: [u64; LAYERS],
    heights: [f64; LAYERS + 1],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let edges = layer_edges();
        let mut edge_pairs = [0u64; LAYERS];
        for (i, pair) in edge_pairs.iter_mut().enumerate() {
            let (outer, inner) = (edges[i] as f32, edges[i + 1] as f32);
            *pair = u64::from(outer.to_bits()) | (u64::from(inner.to_bits()) << 32);
        }
        Tables {
            edge_pairs,
            heights: edges.map(density),
        }
    })
}

/// Eight xoshiro256++ generators (Blackman & Vigna 2018, the generator of
/// [`rand::rngs::Xoshiro256PlusPlus`]) stepped together, their state stored word by word so
/// that one step is a few vector instructions. Lane `l`'s outputs are those of the scalar
/// generator started from state `[s[0][l], s[1][l], s[2][l], s[3][l]]`.
struct Lanes {
    s: [[u64; LANE_COUNT]; 4],
}

impl Lanes {
    /// Lanes seeded with 32 words from `rng`. A lane whose state is all zero (which
    /// xoshiro must avoid, and which 256 random bits give with probability 2^-256) gets a
    /// single set bit instead.
    fn from_rng<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut s = [[0u64; LANE_COUNT]; 4];
        for word in s.iter_mut().flatten() {
            *word = rng.next_u64();
        }
        for lane in 0..LANE_COUNT {
            if s.iter().all(|words| words[lane] == 0) {
                s[0][lane] = 1;
            }
        }
        Self { s }
    }

    /// One output of each lane.
    #[inline(always)]
    fn step(&mut self, out: &mut [u64]) {
        let [s0, s1, s2, s3] = &mut self.s;
        for l in 0..LANE_COUNT {
            out[l] = s0[l]
                .wrapping_add(s3[l])
                .rotate_left(23)
                .wrapping_add(s0[l]);
            let t = s1[l] << 17;
            s2[l] ^= s0[l];
            s3[l] ^= s1[l];
            s1[l] ^= s2[l];
            s0[l] ^= s3[l];
            s2[l] ^= t;
            s3[l] = s3[l].rotate_left(45);
        }
    }
}

/// The layer a word chooses.
#[inline(always)]
fn layer_of(word: u64) -> usize {
    (word as usize) & (LAYERS - 1)
}

/// The word's sign bit, moved to an `f32`'s sign position: a branch on a fair coin would be
/// mispredicted half the time.
#[inline(always)]
fn sign_of(word: u64) -> u32 {
    (((word >> 10) as u32) & 1) << 31
}

/// The word's point in its layer, `u * x[layer]` with `u` the top 24 bits over 2^24 (exact in
/// `f32`, and an `i32` conversion, which every vector unit has).
#[inline(always)]
fn point_of(word: u64, outer_edge: f32) -> f32 {
    ((word >> 40) as i32) as f32 * (1.0 / (1u32 << 24) as f32) * outer_edge
}

fn with_sign(magnitude: f32, sign: u32) -> f32 {
    f32::from_bits(magnitude.to_bits() ^ sign)
}

/// A uniform in (0, 1], whose logarithm is finite.
fn open_uniform<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    1.0 - rng.random::<f64>()
}

/// Finishes the point `point` of layer `layer`, which lies outside the layer's inner
/// rectangle, as the sequential algorithm does: the base layer's points go to the tail, the
/// others to the wedge test; a failed wedge test starts a new draw. Returns the magnitude.
#[cold]
#[inline(never)]
fn finish<R: Rng + ?Sized>(t: &Tables, mut layer: usize, mut point: f32, rng: &mut R) -> f32 {
    loop {
        if layer == 0 {
            // The tail beyond r: exponential proposals, accepted with the normal's ratio.
            loop {
                let a = -open_uniform(rng).ln() / TAIL_START;
                let b = -open_uniform(rng).ln();
                if b + b >= a * a {
                    return (TAIL_START + a) as f32;
                }
            }
        }
        // The wedge: a height uniform in the layer, kept if it lies under the density.
        let (low, high) = (t.heights[layer], t.heights[layer + 1]);
        if low + rng.random::<f64>() * (high - low) < density(f64::from(point)) {
            return point;
        }
        // A fresh draw, sequentially (the sign stays the first word's: it is independent of
        // the magnitude).
        let word = rng.next_u64();
        layer = layer_of(word);
        let pair = t.edge_pairs[layer];
        point = point_of(word, f32::from_bits(pair as u32));
        if point < f32::from_bits((pair >> 32) as u32) {
            return point;
        }
    }
}

/// Adds `scale` times a standard normal variate to each of `values`, in order. The variates
/// are a function of `rng`'s stream alone (whatever the CPU), which they advance by 32 words
/// plus a few per rejected point.
pub(crate) fn add_scaled_normals<R: Rng + ?Sized>(values: &mut [f32], scale: f32, rng: &mut R) {
    let t = tables();
    let mut lanes = Lanes::from_rng(rng);
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { blocks_avx512(t, &mut lanes, values, scale, rng) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { blocks_avx2(t, &mut lanes, values, scale, rng) };
        }
    }
    blocks(t, &mut lanes, values, scale, rng)
}

/// Whether the CPU has the AVX-512 features [`blocks_avx512`] is compiled for.
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
fn blocks_avx512<R: Rng + ?Sized>(
    t: &Tables,
    lanes: &mut Lanes,
    values: &mut [f32],
    scale: f32,
    rng: &mut R,
) {
    blocks(t, lanes, values, scale, rng)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn blocks_avx2<R: Rng + ?Sized>(
    t: &Tables,
    lanes: &mut Lanes,
    values: &mut [f32],
    scale: f32,
    rng: &mut R,
) {
    blocks(t, lanes, values, scale, rng)
}

/// Both passes, block by block; inlined into each compiled variant.
#[inline(always)]
fn blocks<R: Rng + ?Sized>(
    t: &Tables,
    lanes: &mut Lanes,
    values: &mut [f32],
    scale: f32,
    rng: &mut R,
) {
    let mut words = [0u64; BLOCK];
    let mut variates = [0.0f32; BLOCK];
    let mut rejected = [0u8; BLOCK];
    for chunk in values.chunks_mut(BLOCK) {
        for step in words.chunks_exact_mut(LANE_COUNT) {
            lanes.step(step);
        }
        // Pass 1, branch-free.
        for k in 0..BLOCK {
            let word = words[k];
            let pair = t.edge_pairs[layer_of(word)];
            let point = point_of(word, f32::from_bits(pair as u32));
            rejected[k] = u8::from(point >= f32::from_bits((pair >> 32) as u32));
            variates[k] = with_sign(point, sign_of(word));
        }
        // Pass 2, over the set bits of the rejection mask, in order (a block's words beyond
        // the end of `values` are left unused).
        let mut mask = rejection_mask(&rejected);
        if chunk.len() < BLOCK {
            mask &= (1u64 << chunk.len()) - 1;
        }
        while mask != 0 {
            let k = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            // The fast pass left the signed point there.
            let (word, point) = (words[k], variates[k].abs());
            variates[k] = with_sign(finish(t, layer_of(word), point, rng), sign_of(word));
        }
        for (value, variate) in chunk.iter_mut().zip(&variates) {
            *value += scale * variate;
        }
    }
}

/// Bit `k` set where `flags[k]` is 1: eight flags at a time, gathered into the top byte by
/// one multiplication (flags are 0 or 1, so the partial products never carry).
#[inline(always)]
fn rejection_mask(flags: &[u8; BLOCK]) -> u64 {
    let mut mask = 0u64;
    for (j, eight) in flags.chunks_exact(8).enumerate() {
        let bytes = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
        mask |= (bytes.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * j);
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::normal::normal_cdf;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn variates(count: usize, seed: u64) -> Vec<f32> {
        let mut values = vec![0.0f32; count];
        add_scaled_normals(
            &mut values,
            1.0,
            &mut Xoshiro256PlusPlus::seed_from_u64(seed),
        );
        values
    }

    #[test]
    fn the_layers_close_at_the_mode() {
        let edges = layer_edges();
        // The recurrence's last layer reaches the density's top, f = 1, with the same area.
        let top = edges[LAYERS - 1];
        assert!((top * (1.0 - density(top)) - LAYER_AREA).abs() < 1e-12);
        // And the base layer's area is the rectangle up to r plus the tail.
        let tail = (std::f64::consts::PI / 2.0).sqrt() * 2.0 * (1.0 - normal_cdf(TAIL_START));
        assert!((TAIL_START * density(TAIL_START) + tail - LAYER_AREA).abs() < 1e-15);
        // 99.57% of words land in a layer's inner rectangle.
        let inner: f64 = (0..LAYERS).map(|i| edges[i + 1] / edges[i]).sum();
        assert!((inner / LAYERS as f64 - 0.99572).abs() < 1e-5);
    }

    #[test]
    fn each_lane_is_rands_xoshiro256_plus_plus() {
        let mut lanes = Lanes::from_rng(&mut Xoshiro256PlusPlus::seed_from_u64(3));
        let mut reference: Vec<Xoshiro256PlusPlus> = (0..LANE_COUNT)
            .map(|l| {
                let mut seed = [0u8; 32];
                for (j, bytes) in seed.chunks_exact_mut(8).enumerate() {
                    bytes.copy_from_slice(&lanes.s[j][l].to_le_bytes());
                }
                Xoshiro256PlusPlus::from_seed(seed)
            })
            .collect();
        let mut out = [0u64; LANE_COUNT];
        for _ in 0..100 {
            lanes.step(&mut out);
            for (l, rng) in reference.iter_mut().enumerate() {
                assert_eq!(out[l], rng.next_u64());
            }
        }
    }

    #[test]
    fn the_rejection_mask_has_a_bit_per_flag() {
        let mut flags = [0u8; BLOCK];
        for k in [0, 7, 8, 30, 63] {
            flags[k] = 1;
        }
        assert_eq!(
            rejection_mask(&flags),
            1 | 1 << 7 | 1 << 8 | 1 << 30 | 1 << 63
        );
        assert_eq!(rejection_mask(&[1; BLOCK]), u64::MAX);
    }

    #[test]
    fn moments_and_distribution_match_the_standard_normal() {
        let n = 400_000;
        let z: Vec<f64> = variates(n, 1).into_iter().map(f64::from).collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors 0.0016 and 0.0022: bounds at about 5 of them.
        assert!(mean.abs() < 0.008, "mean {mean}");
        assert!((var - 1.0).abs() < 0.012, "variance {var}");
        // Kolmogorov-Smirnov against Phi: the 1% critical value is 1.63 / sqrt(n) = 0.0026.
        // Accepting every wedge point, or dropping the sign, moves it by 0.01 or more.
        let mut sorted = z;
        sorted.sort_by(f64::total_cmp);
        let ks = sorted
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let cdf = normal_cdf(v);
                (cdf - i as f64 / n as f64)
                    .abs()
                    .max(((i + 1) as f64 / n as f64 - cdf).abs())
            })
            .fold(0.0, f64::max);
        assert!(ks < 0.0026, "KS statistic {ks}");
    }

    #[test]
    fn tails_and_wedges_have_their_mass() {
        let n = 4_000_000;
        let z = variates(n, 2);
        // P(|Z| > c) = 2 (1 - Phi(c)): counts within 5 standard errors, beyond the tail's start
        // too (216 expected; a sampler that never leaves the layers has none).
        for c in [0.5f32, 1.0, 2.0, 3.0, TAIL_START as f32, 4.5] {
            let p = 2.0 * (1.0 - normal_cdf(f64::from(c)));
            let expected = p * n as f64;
            let se = (n as f64 * p * (1.0 - p)).sqrt();
            let got = z.iter().filter(|v| v.abs() > c).count() as f64;
            assert!(
                (got - expected).abs() < 5.0 * se,
                "|Z| > {c}: {got} against {expected:.0}"
            );
        }
        // A narrow band, one layer's wedge [x[300], x[299]): part of its mass is accepted by
        // the wedge test alone, so a test that rejects too often shows here.
        let edges = layer_edges();
        let (inner, outer) = (edges[300] as f32, edges[299] as f32);
        let p = normal_cdf(f64::from(outer)) - normal_cdf(f64::from(inner));
        let got = z.iter().filter(|v| **v >= inner && **v < outer).count() as f64;
        let se = (n as f64 * p).sqrt();
        assert!((got - p * n as f64).abs() < 5.0 * se, "{got} in the band");
    }

    #[test]
    fn a_seed_gives_one_stream_and_every_length_is_filled() {
        assert_eq!(variates(1001, 9), variates(1001, 9));
        assert_ne!(variates(1001, 9), variates(1001, 10));
        for len in [1, 63, 64, 65, 130] {
            assert!(variates(len, 4).iter().all(|v| *v != 0.0), "{len}");
        }
        // A prefix of a longer fill is not promised (a block's unused words are dropped),
        // but scaling is linear: 2 * z from the same stream.
        let mut doubled = vec![0.0f32; 200];
        add_scaled_normals(&mut doubled, 2.0, &mut Xoshiro256PlusPlus::seed_from_u64(9));
        let once = variates(200, 9);
        assert!(doubled.iter().zip(&once).all(|(d, z)| *d == 2.0 * z));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_compiled_variant_gives_the_same_bits() {
        let t = tables();
        let run = |variant: u8| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
            let mut lanes = Lanes::from_rng(&mut rng);
            let mut values = vec![0.5f32; 10_007];
            match variant {
                // SAFETY: called only where the CPU has the features.
                2 => unsafe { blocks_avx512(t, &mut lanes, &mut values, 0.3, &mut rng) },
                1 => unsafe { blocks_avx2(t, &mut lanes, &mut values, 0.3, &mut rng) },
                _ => blocks(t, &mut lanes, &mut values, 0.3, &mut rng),
            }
            values
        };
        let portable = run(0);
        if std::arch::is_x86_feature_detected!("avx2") {
            assert_eq!(run(1), portable);
        }
        if has_avx512() {
            assert_eq!(run(2), portable);
        }
    }
}
