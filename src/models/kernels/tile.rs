//! Register-tile matrix products for the convolution kernel, one per instruction set, chosen
//! at run time.
//!
//! The convolution is `out[o, q] = sum_k w[o, k] * col[k, q]`, computed for strips of up to
//! one vector of output pixels that lie side by side in a row of the output (a [`Strip`]).
//! Depth `k` of a strip is a vector at an offset of its own (in an im2col block, or in the
//! zero-padded input itself), and `w` is packed in panels of up to `MR` output channels
//! (`depth x rows`, contiguous). One tile keeps `MR x VECTORS` vectors of sums in registers
//! for the whole depth: per depth step it loads one vector per strip, broadcasts `MR` weights
//! and issues `MR * VECTORS` FMAs. Because each strip lies contiguously in the output, the
//! epilogue (bias, residual, ReLU) runs on the sums while they are still in registers and
//! stores them straight into the NCHW output, with masked stores for a row's last, shorter
//! strip; no strip straddles a row, so no lanes are spent on padding columns.
//!
//! Every instruction set sums the same products in the same order (depth 0 first, one fused
//! multiply-add per product, then the bias, then the residual), so AVX2 and AVX-512 give
//! bit-identical outputs (a test checks it), a convolution may use either tile, and the AVX2
//! path can be measured on an AVX-512 machine through the cap [`Isa::active`] reads. The
//! portable tile fuses too where the build's target has FMA (aarch64 always).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// Instruction sets the crate's CPU kernels have code for, in increasing capability.
///
/// [`Isa::active`] is the one the kernels use: the most capable one the CPU runs
/// ([`Isa::detected`]), capped by the environment variable [`Isa::CAP_VARIABLE`]
/// (`portable`, `avx2` or `avx512`), which measures the AVX2 path on an AVX-512 machine.
///
/// ```
/// use randomized_smoothing::models::kernels::Isa;
///
/// let active = Isa::active();
/// assert!(active <= Isa::detected());
/// assert_eq!("avx2".parse::<Isa>(), Ok(Isa::Avx2));
/// assert!("sse9".parse::<Isa>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Isa {
    /// Plain Rust that the compiler vectorizes for the build's target (every CPU).
    Portable,
    /// AVX2 with FMA (x86-64 since Haswell and Zen).
    Avx2,
    /// AVX-512F (x86-64 with AVX-512: Skylake-SP and later Xeons, Zen 4).
    Avx512,
}

impl Isa {
    /// The environment variable that caps [`Isa::active`].
    pub const CAP_VARIABLE: &'static str = "RANDOMIZED_SMOOTHING_ISA";

    /// The most capable instruction set this CPU runs.
    pub fn detected() -> Isa {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|isa| isa.runs_here())
            .unwrap_or(Isa::Portable)
    }

    /// The instruction set the kernels use: [`Isa::detected`], capped by
    /// [`Isa::CAP_VARIABLE`] when it is set. Read once per process; a value that does not
    /// parse is ignored here (so a kernel never fails) and reported by [`Isa::cap`].
    pub fn active() -> Isa {
        static ACTIVE: OnceLock<Isa> = OnceLock::new();
        *ACTIVE.get_or_init(|| match Isa::cap() {
            Ok(Some(cap)) => cap.min(Isa::detected()),
            _ => Isa::detected(),
        })
    }

    /// The cap set in [`Isa::CAP_VARIABLE`], `None` when it is unset or empty, or the value
    /// that does not name an instruction set. Programs call it at start to refuse a typo.
    pub fn cap() -> Result<Option<Isa>, ParseIsaError> {
        match std::env::var(Isa::CAP_VARIABLE) {
            Ok(value) if !value.trim().is_empty() => value.trim().parse().map(Some),
            _ => Ok(None),
        }
    }

    /// Whether this CPU runs the instruction set.
    pub fn runs_here(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of `portable`, `avx2`, `avx512`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown instruction set {0:?}: expected portable, avx2 or avx512")]
pub struct ParseIsaError(pub String);

impl FromStr for Isa {
    type Err = ParseIsaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .find(|isa| isa.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseIsaError(s.to_string()))
    }
}

/// The shape of an instruction set's tile: output channels per weight panel, pixels per
/// vector, vectors per tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TileShape {
    pub rows: usize,
    pub lanes: usize,
    pub vectors: usize,
}

pub(super) fn tile_shape(isa: Isa) -> TileShape {
    fn of<T: Tile>() -> TileShape {
        TileShape {
            rows: T::MR,
            lanes: T::LANES,
            vectors: T::VECTORS,
        }
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => of::<x86::Avx2>(),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => of::<x86::Avx512>(),
        _ => of::<Portable>(),
    }
}

/// The weight `[rows, depth]` (row-major) in panels of `mr` rows, each stored depth-major
/// (`[depth, panel rows]`), the order a tile reads it in.
pub(super) struct PackedWeight {
    depth: usize,
    rows: usize,
    mr: usize,
    data: Vec<f32>,
}

impl PackedWeight {
    pub(super) fn new(weight: &[f32], rows: usize, depth: usize, mr: usize) -> Self {
        debug_assert_eq!(weight.len(), rows * depth);
        let mut data = Vec::with_capacity(rows * depth);
        for first in (0..rows).step_by(mr) {
            let panel = mr.min(rows - first);
            for k in 0..depth {
                data.extend((first..first + panel).map(|o| weight[o * depth + k]));
            }
        }
        Self {
            depth,
            rows,
            mr,
            data,
        }
    }

    /// (first row, rows, packed values) of each panel.
    fn panels(&self) -> impl Iterator<Item = (usize, usize, &[f32])> {
        (0..self.rows).step_by(self.mr).map(move |first| {
            let rows = self.mr.min(self.rows - first);
            (
                first,
                rows,
                &self.data[first * self.depth..][..rows * self.depth],
            )
        })
    }
}

/// Up to one vector of output pixels that lie side by side both in the product's columns
/// (from `column` on) and in each output channel's plane (from `at` on): a stretch of one
/// output row of an implicit convolution, or of one image's pixels in an im2col block. A tile
/// sums one vector per strip, and stores its first `len` lanes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Strip {
    pub column: usize,
    pub at: usize,
    pub len: usize,
}

/// What happens to each sum before it is stored: `(sum + bias) + residual`, then ReLU.
#[derive(Clone, Copy)]
pub(super) struct Epilogue<'a> {
    /// Values per output channel's plane, in `out` and in the residual.
    pub pixels: usize,
    /// One value per output channel.
    pub bias: Option<&'a [f32]>,
    /// A tensor of the output's layout.
    pub residual: Option<&'a [f32]>,
    /// Clamps negatives (and NaN) to zero, last.
    pub relu: bool,
}

/// Which loop runs outside in [`product`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Order {
    /// Each weight panel over every strip: for columns that the depth reads many times over
    /// (an implicit convolution's shifted rows), so that the panel stays in L1 while they
    /// stream past.
    WeightsOutside,
    /// Every weight panel over one tile's strips: for columns read once per weight panel (an
    /// im2col block), so that they stay in cache for all the panels.
    StripsOutside,
}

/// Multiplies the packed weight by the columns (depth `k` of column `q` is `b + q +
/// offsets[k]`) for each of their strips, and stores every output channel of each strip, after
/// the epilogue, at `out + channel * pixels + at`.
///
/// # Safety
/// `isa` runs on this CPU; `offsets` has the weight's depth; for every strip and every `k`,
/// `b + column + offsets[k] ..` holds a whole vector (`lanes` of [`tile_shape`]`(isa)`) of
/// initialized values; `out` (which may be uninitialized, as it is only written) and the
/// epilogue's residual hold `channel * pixels + at .. + len` for every output channel and
/// strip.
pub(super) unsafe fn product(
    isa: Isa,
    weight: &PackedWeight,
    columns: Columns,
    order: Order,
    epilogue: &Epilogue,
    out: *mut f32,
) {
    // SAFETY: forwarded from the caller; each arm runs only where `isa` says the CPU can.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::product_avx512(weight, columns, order, epilogue, out),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::product_avx2(weight, columns, order, epilogue, out),
            _ => product_with::<Portable>(weight, columns, order, epilogue, out),
        }
    }
}

/// The product's right-hand side: where its columns are, where each depth starts, and the
/// strips to compute.
#[derive(Clone, Copy)]
pub(super) struct Columns<'a> {
    pub b: *const f32,
    pub offsets: &'a [usize],
    pub strips: &'a [Strip],
}

/// One instruction set's tile.
trait Tile {
    /// Rows (output channels) per weight panel.
    const MR: usize;
    /// Pixels per vector.
    const LANES: usize;
    /// Vectors (strips) per tile.
    const VECTORS: usize;

    /// Sums `rows <= MR` output channels of `task` over the depth and stores them.
    ///
    /// # Safety
    /// As [`TileTask`] says; the CPU runs the implementation's instruction set.
    unsafe fn tile(rows: usize, task: TileTask);
}

/// One tile's work: `rows` output channels from `first_row` on (packed at `a`, `depth *
/// rows` values) for `strips` (`VECTORS` of them; those of `len` 0 are summed and not
/// stored), whose depth `k` is the vector at `b + column + offsets[k]`, stored after the
/// epilogue at `out + channel * pixels + at`.
///
/// Whoever builds one promises: `a` holds `offsets.len() * rows` values; for each strip and
/// `k`, `b + column + offsets[k]` holds a whole vector; `out` and the residual hold every
/// value stored.
#[derive(Clone, Copy)]
struct TileTask<'a> {
    a: *const f32,
    b: *const f32,
    offsets: &'a [usize],
    strips: &'a [Strip],
    first_row: usize,
    epilogue: &'a Epilogue<'a>,
    out: *mut f32,
}

/// The tiles of every strip and weight panel; inlined into each instruction set's entry
/// point, which compiles it for that set.
#[inline(always)]
unsafe fn product_with<T: Tile>(
    weight: &PackedWeight,
    Columns { b, offsets, strips }: Columns,
    order: Order,
    epilogue: &Epilogue,
    out: *mut f32,
) {
    debug_assert!(offsets.len() == weight.depth && T::VECTORS <= 4);
    let block = match order {
        Order::WeightsOutside => strips.len().max(1),
        Order::StripsOutside => T::VECTORS,
    };
    for block in strips.chunks(block) {
        for (first_row, rows, a) in weight.panels() {
            for chunk in block.chunks(T::VECTORS) {
                // The last tile's missing strips repeat its last one, with nothing stored.
                let mut tile = [Strip {
                    len: 0,
                    ..chunk[chunk.len() - 1]
                }; 4];
                tile[..chunk.len()].copy_from_slice(chunk);
                // SAFETY: `a` holds `depth * rows` values (`panels`); the strips, `b`,
                // `offsets`, `out` and the residual as the caller promised.
                unsafe {
                    T::tile(
                        rows,
                        TileTask {
                            a: a.as_ptr(),
                            b,
                            offsets,
                            strips: &tile[..T::VECTORS],
                            first_row,
                            epilogue,
                            out,
                        },
                    )
                };
            }
        }
    }
}

/// Calls `$tile::<R>` for the `rows` (1 to `$mr`) of a panel, so that each height has its
/// accumulators in registers.
macro_rules! by_rows {
    ($rows:expr, $tile:ident, [$($r:literal),+], $args:tt) => {
        match $rows {
            $($r => $tile::<$r> $args,)+
            _ => unreachable!("a panel has at most MR rows"),
        }
    };
}

/// ReLU as every tile computes it: `s` if `s > 0`, else `+0` (for `-0` and NaN too), which is
/// what `max(s, 0)` gives on x86.
#[inline(always)]
fn relu(s: f32) -> f32 {
    if s > 0.0 { s } else { 0.0 }
}

/// Plain Rust, vectorized by the compiler for the build's target. It fuses the multiply-add
/// where the target has FMA (so it agrees with the SIMD tiles bit for bit) and rounds twice
/// where it has not (where `mul_add` would be a slow library call).
struct Portable;

impl Tile for Portable {
    const MR: usize = 4;
    const LANES: usize = 16;
    const VECTORS: usize = 1;

    unsafe fn tile(rows: usize, task: TileTask) {
        // SAFETY: forwarded.
        unsafe { by_rows!(rows, portable_tile, [1, 2, 3, 4], (task)) }
    }
}

#[inline(always)]
fn madd(a: f32, b: f32, c: f32) -> f32 {
    if cfg!(any(target_feature = "fma", target_arch = "aarch64")) {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
unsafe fn portable_tile<const R: usize>(task: TileTask) {
    let TileTask {
        a,
        b,
        offsets,
        strips,
        first_row,
        epilogue,
        out,
    } = task;
    let strip = strips[0];
    let mut acc = [[0.0f32; 16]; R];
    for (k, &offset) in offsets.iter().enumerate() {
        // SAFETY: `b + column + offset` holds 16 values and `a` `depth * R` (the caller's
        // contract).
        let pixels = unsafe { &*b.add(strip.column + offset).cast::<[f32; 16]>() };
        for (r, row) in acc.iter_mut().enumerate() {
            let w = unsafe { *a.add(k * R + r) };
            for (s, &p) in row.iter_mut().zip(pixels) {
                *s = madd(w, p, *s);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        let o = first_row + r;
        let at = o * epilogue.pixels + strip.at;
        let bias = epilogue.bias.map_or(0.0, |b| b[o]);
        for (j, &s) in row[..strip.len].iter().enumerate() {
            let mut v = s + bias;
            if let Some(residual) = epilogue.residual {
                v += residual[at + j];
            }
            if epilogue.relu {
                v = relu(v);
            }
            // SAFETY: `out` holds `at .. at + len` (the caller's contract).
            unsafe { out.add(at + j).write(v) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Columns, Epilogue, Order, PackedWeight, Tile, TileTask, product_with};
    use std::arch::x86_64::*;

    pub(super) struct Avx2;
    pub(super) struct Avx512;

    impl Tile for Avx2 {
        /// With 16 ymm registers, 4 x 2 accumulators, two pixel vectors and a broadcast
        /// weight measured fastest on the CIFAR ResNets (6 x 2 spills; 3 x 4, 2 x 6 and 4 x 3
        /// spill or run short of registers, at half the speed).
        const MR: usize = 4;
        const LANES: usize = 8;
        const VECTORS: usize = 2;

        #[inline(always)]
        unsafe fn tile(rows: usize, task: TileTask) {
            // SAFETY: forwarded.
            unsafe { by_rows!(rows, avx2_tile, [1, 2, 3, 4], (task)) }
        }
    }

    impl Tile for Avx512 {
        /// With 32 zmm registers, 8 x 3 accumulators (24), three pixel vectors and a
        /// broadcast weight: eight broadcasts per 24 FMAs, and the 16, 32 and 64 channels of
        /// the CIFAR ResNets in whole panels. 6 x 3 ran 3% slower on them (with a remainder
        /// panel of 4 for 16 and 32 channels), 8 x 2 (eight broadcasts per 16 FMAs) 13%.
        const MR: usize = 8;
        const LANES: usize = 16;
        const VECTORS: usize = 3;

        #[inline(always)]
        unsafe fn tile(rows: usize, task: TileTask) {
            // SAFETY: forwarded.
            unsafe { by_rows!(rows, avx512_tile, [1, 2, 3, 4, 5, 6, 7, 8], (task)) }
        }
    }

    /// # Safety
    /// See [`super::product`]; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn product_avx2(
        weight: &PackedWeight,
        columns: Columns,
        order: Order,
        epilogue: &Epilogue,
        out: *mut f32,
    ) {
        // SAFETY: forwarded.
        unsafe { product_with::<Avx2>(weight, columns, order, epilogue, out) }
    }

    /// # Safety
    /// See [`super::product`]; the CPU has AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn product_avx512(
        weight: &PackedWeight,
        columns: Columns,
        order: Order,
        epilogue: &Epilogue,
        out: *mut f32,
    ) {
        // SAFETY: forwarded.
        unsafe { product_with::<Avx512>(weight, columns, order, epilogue, out) }
    }

    /// AVX2's loads and stores of the first `len < 8` lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn avx2_mask(len: usize) -> __m256i {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), lanes)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2_load_first(p: *const f32, len: usize) -> __m256 {
        // SAFETY: the caller's `p` holds `len` values; masked lanes are not read.
        unsafe { _mm256_maskload_ps(p, avx2_mask(len)) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2_store_first(p: *mut f32, v: __m256, len: usize) {
        // SAFETY: as above, for writes.
        unsafe { _mm256_maskstore_ps(p, avx2_mask(len), v) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_load_first(p: *const f32, len: usize) -> __m512 {
        // SAFETY: the caller's `p` holds `len` values; masked lanes are not read.
        unsafe { _mm512_maskz_loadu_ps(((1u32 << len) - 1) as u16, p) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_store_first(p: *mut f32, v: __m512, len: usize) {
        // SAFETY: as above, for writes.
        unsafe { _mm512_mask_storeu_ps(p, ((1u32 << len) - 1) as u16, v) }
    }

    /// The tile of one vector width: `R` rows of `VECTORS` strips, summed over the depth with
    /// one FMA per product, then `(sum + bias) + residual` and `max(_, 0)` in registers, so
    /// that every width gives the same bits.
    macro_rules! simd_tile {
        ($name:ident, $features:literal, $tile:ident, $zero:ident, $load:ident, $splat:ident,
         $fma:ident, $add:ident, $max:ident, $store:ident, $load_first:ident,
         $store_first:ident) => {
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn $name<const R: usize>(task: TileTask) {
                let TileTask {
                    a,
                    b,
                    offsets,
                    strips,
                    first_row,
                    epilogue,
                    out,
                } = task;
                const V: usize = $tile::VECTORS;
                const LANES: usize = $tile::LANES;
                debug_assert_eq!(strips.len(), V);
                let bases: [*const f32; V] = std::array::from_fn(|v| {
                    // SAFETY: inside the columns (the caller's contract).
                    unsafe { b.add(strips[v].column) }
                });
                let mut acc = [[$zero(); V]; R];
                for (k, &offset) in offsets.iter().enumerate() {
                    // SAFETY: each base plus `offset` holds `LANES` values and `a` `depth * R`
                    // (the caller's contract).
                    unsafe {
                        let mut p = [$zero(); V];
                        for (p, base) in p.iter_mut().zip(&bases) {
                            *p = $load(base.add(offset));
                        }
                        for (r, row) in acc.iter_mut().enumerate() {
                            let w = $splat(*a.add(k * R + r));
                            for (s, &p) in row.iter_mut().zip(&p) {
                                *s = $fma(w, p, *s);
                            }
                        }
                    }
                }
                let Epilogue {
                    pixels,
                    bias,
                    residual,
                    relu,
                } = *epilogue;
                for (r, row) in acc.iter().enumerate() {
                    let o = first_row + r;
                    let bias = $splat(bias.map_or(0.0, |b| b[o]));
                    for (&s, strip) in row.iter().zip(strips) {
                        let at = o * pixels + strip.at;
                        let whole = strip.len == LANES;
                        // SAFETY: `out` and the residual hold `at .. at + len` (the caller's
                        // contract), and only `len` lanes are read or written.
                        unsafe {
                            let mut s = $add(s, bias);
                            if let Some(residual) = residual {
                                let p = residual.as_ptr().add(at);
                                let r = if whole {
                                    $load(p)
                                } else {
                                    $load_first(p, strip.len)
                                };
                                s = $add(s, r);
                            }
                            if relu {
                                s = $max(s, $zero());
                            }
                            if whole {
                                $store(out.add(at), s);
                            } else if strip.len > 0 {
                                $store_first(out.add(at), s, strip.len);
                            }
                        }
                    }
                }
            }
        };
    }

    simd_tile!(
        avx2_tile,
        "avx2,fma",
        Avx2,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        _mm256_max_ps,
        _mm256_storeu_ps,
        avx2_load_first,
        avx2_store_first
    );
    simd_tile!(
        avx512_tile,
        "avx512f,avx2,fma",
        Avx512,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_add_ps,
        _mm512_max_ps,
        _mm512_storeu_ps,
        avx512_load_first,
        avx512_store_first
    );
}
