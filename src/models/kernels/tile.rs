//! Register-tile matrix products for the convolution kernel, one per instruction set, chosen
//! at run time.
//!
//! The convolution is `out[o, q] = sum_k w[o, k] * col[k, q]` over a column panel of `NR`
//! output pixels at a time. Depth `k` of the panel is a row of `NR` values at an offset of its
//! own (a row of an im2col matrix, or a shifted row of the zero-padded input itself), and `w`
//! is packed in panels of up to `MR` output channels (`depth x rows`, contiguous). One tile
//! keeps `MR x NR` sums in vector registers for the whole depth: per depth step it loads `NR`
//! pixels, broadcasts `MR` weights and issues `MR * NR / lanes` FMAs. The epilogue (bias,
//! residual, ReLU) runs on each tile while it is still in L1, instead of as separate passes
//! over the layer's output.
//!
//! Every instruction set sums the same products in the same order (depth 0 first, one fused
//! multiply-add per product, the bias added last), so AVX2 and AVX-512 give bit-identical
//! outputs (a test checks it), and the AVX2 path can be measured on an AVX-512 machine
//! through the cap [`Isa::active`] reads. The portable tile fuses too where the build's target
//! has FMA (aarch64 always).

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

/// Tile sizes of an instruction set's kernel: output channels per weight panel, pixels per
/// column panel.
pub(super) fn tile_shape(isa: Isa) -> (usize, usize) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => (x86::Avx2::MR, x86::Avx2::NR),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => (x86::Avx512::MR, x86::Avx512::NR),
        _ => (Portable::MR, Portable::NR),
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

/// Where the product's columns go and what happens to each value before it is stored.
///
/// The columns form a grid: `image_columns` columns per image, in rows of `row` columns of
/// which the first `valid` are output pixels (the rest, the padding of an implicit
/// convolution's rows, are computed and dropped). Column `q` of the grid is, with `n = q /
/// image_columns`, `y = (q % image_columns) / row` and `x = q % image_columns % row`, output
/// pixel `(y, x)` of image `n`, stored at `n * image + o * pixels + y * valid + x` for output
/// channel `o`, if `x < valid`.
#[derive(Clone, Copy)]
pub(super) struct Epilogue<'a> {
    pub image_columns: usize,
    pub row: usize,
    pub valid: usize,
    /// Output pixels per image plane.
    pub pixels: usize,
    /// Values per image of the output (`channels * pixels`).
    pub image: usize,
    /// One value per output channel, added first.
    pub bias: Option<&'a [f32]>,
    /// A tensor of the output's layout, added next.
    pub residual: Option<&'a [f32]>,
    /// Clamps negatives to zero, last.
    pub relu: bool,
}

/// Multiplies the packed weight by the column panel at `b` (the weight's depth `k` reads the
/// `nr` values at `b + offsets[k]`), the grid's columns `first..first + columns`, and stores
/// the tiles, after the epilogue, into `out`.
///
/// # Safety
/// `isa` runs on this CPU; `offsets` has the weight's depth, and `b + offsets[k] .. + nr` (the
/// `nr` of [`tile_shape`]`(isa)`) are initialized values for every `k`; every index the
/// epilogue reaches for the panel's columns and every output channel is inside `out` (which
/// may be uninitialized, as it is only written) and inside the epilogue's residual.
pub(super) unsafe fn panel(
    isa: Isa,
    weight: &PackedWeight,
    b: *const f32,
    offsets: &[usize],
    (first, columns): (usize, usize),
    epilogue: &Epilogue,
    out: *mut f32,
) {
    let at = (first, columns);
    // SAFETY: forwarded from the caller; each arm runs only where `isa` says the CPU can.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::panel_avx512(weight, b, offsets, at, epilogue, out),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::panel_avx2(weight, b, offsets, at, epilogue, out),
            _ => panel_with::<Portable>(weight, b, offsets, at, epilogue, out),
        }
    }
}

/// One instruction set's tile: `rows <= MR` rows of sums over the depth, stored row-major
/// (`NR` values a row) into `tile`.
trait Tile {
    const MR: usize;
    const NR: usize;

    /// # Safety
    /// `a` holds `offsets.len() * rows` values, `b + offsets[k]` `NR` for each `k`, `tile`
    /// `MR * NR`, and the CPU runs the implementation's instruction set.
    unsafe fn tile(rows: usize, a: *const f32, b: *const f32, offsets: &[usize], tile: *mut f32);
}

/// A stretch of a panel's columns that lands contiguously in the output: tile columns
/// `column..column + len` go to `at..at + len` of each output channel's plane.
#[derive(Clone, Copy, Default)]
struct Run {
    column: usize,
    at: usize,
    len: usize,
}

/// The tiles of one column panel and their epilogue; inlined into each instruction set's
/// entry point, which compiles the epilogue's loops for that set too.
#[inline(always)]
unsafe fn panel_with<T: Tile>(
    weight: &PackedWeight,
    b: *const f32,
    offsets: &[usize],
    (first, columns): (usize, usize),
    epilogue: &Epilogue,
    out: *mut f32,
) {
    debug_assert!(offsets.len() == weight.depth && columns <= T::NR);
    let Epilogue {
        image_columns,
        row,
        valid,
        pixels,
        image,
        bias,
        residual,
        relu,
    } = *epilogue;
    // The panel's columns cut into runs along the grid's rows, the dropped columns left out.
    let mut runs = [Run::default(); 33];
    let mut count = 0;
    let mut q = first;
    while q < first + columns {
        let (n, rest) = (q / image_columns, q % image_columns);
        let (y, x) = (rest / row, rest % row);
        let len = (row - x).min(first + columns - q);
        if x < valid {
            runs[count] = Run {
                column: q - first,
                at: n * image + y * valid + x,
                len: len.min(valid - x),
            };
            count += 1;
        }
        q += len;
    }
    // Written by each tile before the epilogue reads it, so never zeroed.
    let mut tile = [std::mem::MaybeUninit::<f32>::uninit(); 512];
    debug_assert!(T::MR * T::NR <= tile.len() && count <= runs.len());
    for (first_row, rows, a) in weight.panels() {
        // SAFETY: `a` holds `depth * rows` values (`panels`), `b` and `offsets` as the caller
        // promised, `tile` `512 >= MR * NR`.
        unsafe { T::tile(rows, a.as_ptr(), b, offsets, tile.as_mut_ptr().cast()) };
        for r in 0..rows {
            let o = first_row + r;
            let bias = bias.map_or(0.0, |b| b[o]);
            for run in &runs[..count] {
                // SAFETY: the tile wrote its `rows * NR` values, and `column + len <= NR`.
                let sums = unsafe {
                    std::slice::from_raw_parts(
                        tile.as_ptr().add(r * T::NR + run.column).cast::<f32>(),
                        run.len,
                    )
                };
                let at = o * pixels + run.at;
                let residual = residual.map(|res| &res[at..at + run.len]);
                // SAFETY: `at..at + len` is inside `out` by the caller's contract.
                unsafe { store(out.add(at), sums, bias, residual, relu) };
            }
        }
    }
}

/// Writes `sums[j] + bias (+ residual[j])`, clamped at zero if `relu`, to `out[j]`: one loop
/// per case, so that each vectorizes.
///
/// # Safety
/// `out` is valid for `sums.len()` writes.
#[inline(always)]
unsafe fn store(out: *mut f32, sums: &[f32], bias: f32, residual: Option<&[f32]>, relu: bool) {
    let clamp = |v: f32| if relu { v.max(0.0) } else { v };
    match residual {
        Some(residual) => {
            for (j, (&s, &r)) in sums.iter().zip(residual).enumerate() {
                // SAFETY: `j < sums.len()`.
                unsafe { out.add(j).write(clamp(s + bias + r)) };
            }
        }
        None => {
            for (j, &s) in sums.iter().enumerate() {
                // SAFETY: as above.
                unsafe { out.add(j).write(clamp(s + bias)) };
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

/// Plain Rust, vectorized by the compiler for the build's target. It fuses the multiply-add
/// where the target has FMA (so it agrees with the SIMD tiles bit for bit) and rounds twice
/// where it has not (where `mul_add` would be a slow library call).
struct Portable;

impl Tile for Portable {
    const MR: usize = 4;
    const NR: usize = 16;

    unsafe fn tile(rows: usize, a: *const f32, b: *const f32, offsets: &[usize], tile: *mut f32) {
        // SAFETY: forwarded.
        unsafe { by_rows!(rows, portable_tile, [1, 2, 3, 4], (a, b, offsets, tile)) }
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
unsafe fn portable_tile<const R: usize>(
    a: *const f32,
    b: *const f32,
    offsets: &[usize],
    tile: *mut f32,
) {
    let mut acc = [[0.0f32; 16]; R];
    for (k, &offset) in offsets.iter().enumerate() {
        // SAFETY: `k * 16 + 16 <= depth * 16` values of `b`, `k * R + R` of `a`.
        let pixels = unsafe { &*b.add(offset).cast::<[f32; 16]>() };
        for (r, row) in acc.iter_mut().enumerate() {
            let w = unsafe { *a.add(k * R + r) };
            for (s, &p) in row.iter_mut().zip(pixels) {
                *s = madd(w, p, *s);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: `tile` holds `MR * NR >= R * 16` values.
        unsafe { tile.add(r * 16).cast::<[f32; 16]>().write(*row) };
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Epilogue, PackedWeight, Tile, panel_with};
    use std::arch::x86_64::*;

    pub(super) struct Avx2;
    pub(super) struct Avx512;

    /// Pixel vectors per tile row of the AVX2 tile. With 16 ymm registers, 4 x 2
    /// accumulators, two pixel vectors and a broadcast weight measured fastest on the CIFAR
    /// ResNets (6 x 2 spills; 3 x 4, 2 x 6 and 4 x 3 spill or run short of registers, at half
    /// the speed).
    const AVX2_VECTORS: usize = 2;

    impl Tile for Avx2 {
        const MR: usize = 4;
        const NR: usize = 8 * AVX2_VECTORS;

        #[inline(always)]
        unsafe fn tile(
            rows: usize,
            a: *const f32,
            b: *const f32,
            offsets: &[usize],
            tile: *mut f32,
        ) {
            // SAFETY: forwarded.
            unsafe { by_rows!(rows, avx2_tile, [1, 2, 3, 4], (a, b, offsets, tile)) }
        }
    }

    /// Pixel vectors per tile row of the AVX-512 tile. With 32 zmm registers, 6 x 3
    /// accumulators (18) and three pixel vectors: six broadcasts per 18 FMAs. 8 x 2 (eight
    /// broadcasts per 16 FMAs) ran 13% slower on the CIFAR ResNets; 6 x 4 and 4 x 4 as fast.
    const AVX512_VECTORS: usize = 3;

    impl Tile for Avx512 {
        const MR: usize = 6;
        const NR: usize = 16 * AVX512_VECTORS;

        #[inline(always)]
        unsafe fn tile(
            rows: usize,
            a: *const f32,
            b: *const f32,
            offsets: &[usize],
            tile: *mut f32,
        ) {
            // SAFETY: forwarded.
            unsafe { by_rows!(rows, avx512_tile, [1, 2, 3, 4, 5, 6], (a, b, offsets, tile)) }
        }
    }

    /// # Safety
    /// See [`super::panel`]; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn panel_avx2(
        weight: &PackedWeight,
        b: *const f32,
        offsets: &[usize],
        at: (usize, usize),
        epilogue: &Epilogue,
        out: *mut f32,
    ) {
        // SAFETY: forwarded.
        unsafe { panel_with::<Avx2>(weight, b, offsets, at, epilogue, out) }
    }

    /// # Safety
    /// See [`super::panel`]; the CPU has AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn panel_avx512(
        weight: &PackedWeight,
        b: *const f32,
        offsets: &[usize],
        at: (usize, usize),
        epilogue: &Epilogue,
        out: *mut f32,
    ) {
        // SAFETY: forwarded.
        unsafe { panel_with::<Avx512>(weight, b, offsets, at, epilogue, out) }
    }

    /// The tile of one vector width: `R` rows of `V` vectors of `$lanes` pixels, summed over
    /// the depth with one FMA per product (so every width gives the same bits).
    macro_rules! simd_tile {
        ($name:ident, $features:literal, $vectors:ident, $lanes:literal,
         $zero:ident, $load:ident, $splat:ident, $fma:ident, $store:ident) => {
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn $name<const R: usize>(
                a: *const f32,
                b: *const f32,
                offsets: &[usize],
                tile: *mut f32,
            ) {
                const V: usize = $vectors;
                let mut acc = [[$zero(); V]; R];
                for (k, &offset) in offsets.iter().enumerate() {
                    // SAFETY: `b + offset` holds `lanes * V` values and `a` `depth * R` (the
                    // caller's contract).
                    unsafe {
                        let mut p = [$zero(); V];
                        for (v, p) in p.iter_mut().enumerate() {
                            *p = $load(b.add(offset + $lanes * v));
                        }
                        for (r, row) in acc.iter_mut().enumerate() {
                            let w = $splat(*a.add(k * R + r));
                            for (s, &p) in row.iter_mut().zip(&p) {
                                *s = $fma(w, p, *s);
                            }
                        }
                    }
                }
                for (r, row) in acc.iter().enumerate() {
                    for (v, &s) in row.iter().enumerate() {
                        // SAFETY: `tile` holds `MR * NR >= R * lanes * V` values.
                        unsafe { $store(tile.add(r * $lanes * V + $lanes * v), s) };
                    }
                }
            }
        };
    }

    simd_tile!(
        avx2_tile,
        "avx2,fma",
        AVX2_VECTORS,
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_storeu_ps
    );
    simd_tile!(
        avx512_tile,
        "avx512f,avx2,fma",
        AVX512_VECTORS,
        16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_storeu_ps
    );
}
