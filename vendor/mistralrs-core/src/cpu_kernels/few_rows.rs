//! Glimpse patch: `x · wᵀ` for the few rows of a decode step (one row per sequence decoding), f32, AVX-512 or
//! AVX2 + FMA.
//!
//! A decode step multiplies 1 to 32 rows by every weight matrix of the language model, and the matrices stream
//! from memory once per step. gemm, which candle and the column-major product before this used, is built for many
//! rows: with 4 rows its `1 × 6` kernel kept half of each vector register empty (`perf`: 68% of a 4-sequence step's
//! samples in it), a step of 4 sequences cost 2–3× a step of one, and 4 requests at once gave 1.4–1.8× one
//! request's tokens/s. Here every weight row is read once, front to back, and multiplied into the input rows'
//! sums; the input rows stay in the core's nearest caches.
//!
//! Three kernels, chosen at run time, measured on different machines:
//! - **AVX-512, 1 to 8 rows** (`avx512::weight_rows`): 3 weight rows side by side against blocks of 8 input rows
//!   (24 sums in registers, 11 loads per 24 multiply-adds), the weight prefetched 4 KiB ahead (one row: one weight
//!   row at a time, not prefetched; see `avx512::weight_rows`). On a 2-core Intel
//!   Xeon (Sapphire Rapids) over every matrix of SmolVLM-256M's language model, weights streaming from memory (a
//!   side-by-side, not committed): 1 / 4 / 8 / 16 / 32 rows 29 / 33 / 38 / 46 / 65 ms, against the AVX2 kernel's
//!   32 / 44 / 51 / 61 / 110 ms and gemm's 46 / 69 / 67 / 68 / 73 ms; Qwen3-VL-2B's 8 / 16 rows 308 / 446 ms
//!   against gemm's 481 / 502. Without the prefetch the same kernel was 20% slower from 4 rows up: the
//!   multiply-adds and the loads from memory did not overlap.
//! - **AVX-512, 9 to 32 rows** (`avx512::input_lanes`): the input transposed so that its rows are the lanes of one
//!   or two vectors; each weight element is broadcast against all of them, 8 weight rows at a time. The dot-product
//!   kernel reads the whole input from the core's second cache once per 3 weight rows, and with 16 rows of Qwen's
//!   2,048 that, not the memory, bounded it: on a 2-core AMD EPYC (Zen 4, AVX-512) over one Qwen3-VL-2B layer's
//!   matrices, weights from memory (a side-by-side, not committed), 16 rows took 9.6–10 ms against the dot
//!   products' 23–47 ms (this machine's speed drifts), 32 rows 17 against 36; SmolVLM-256M's 16 rows 1.1 against
//!   2.3–2.4 ms. At 8 rows and fewer the dot products win (10.5 against 16 ms).
//! - **AVX2 + FMA** (`avx2`): one weight row at a time against blocks of 4 input rows, up to 8 rows. Reading one
//!   weight row at a time mattered on the AMD EPYC it was measured on: the same kernel reading 2 or 3 weight rows
//!   side by side (more sums per load, no prefetch) streamed at half the speed once the weights no longer fit in
//!   the caches (a side-by-side over SmolVLM-256M's and Qwen3-VL-2B's matrices, not committed).
//!
//! A row's result never depends on the other rows: each output is the dot product of one input row and one weight
//! row summed in one order (the dot-product kernels: one 16-lane sum over `k`, the lanes added in a fixed tree, or
//! two 8-lane sums over alternate vectors of `k`, added, the lanes added pairwise, then the remainder; the lanes
//! kernel: one sum over `k` in order). So a sequence's logits have the same bits whether it decodes alone or beside
//! up to 7 others, and the same bits in any batch of 9 to 32 (`as_lanes`), while its batch is one this product
//! takes (`fits`); between the two they differ by rounding.

use rayon::prelude::*;

/// Most rows the AVX2 kernel takes: every weight row is multiplied into every input row, and beyond 8 the packed
/// products of gemm, which reuse each loaded input across several weight rows, win (a step of 16 SmolVLM-256M
/// sequences took 111 ms with this product for its 576-long inputs, 88 ms with gemm's).
const MAX_ROWS: usize = 8;

/// Most input elements for the AVX2 kernel (48 KiB of rows): every weight row passes over all of them, so they must
/// stay in the core's first caches. Beyond it gemm won (Qwen3-VL-2B's 8 rows of 2,048: 571 ms against 483 over its
/// matrices).
const MAX_INPUT: usize = 12 * 1024;

/// Most rows the AVX-512 dot-product kernel takes; more go to the lanes kernel.
const AVX512_DOT_ROWS: usize = 8;

/// Most input elements for the AVX-512 dot-product kernel (192 KiB of rows, in the core's second cache): Qwen3-VL-2B's
/// 32 rows of 2,048 took 680 ms there against gemm's 599, its 8 rows of 6,144 (192 KiB) 308 ms against 481, over
/// its matrices.
const AVX512_MAX_INPUT: usize = 48 * 1024;

/// Most rows the AVX-512 lanes kernel takes (two vectors of input rows); beyond, gemm's packed products.
const LANES_MAX_ROWS: usize = 32;

/// Most elements of the lanes kernel's transposed input (rows rounded up to 16; 1 MiB, half the core's second
/// cache): every weight row passes over all of it.
const LANES_MAX_INPUT: usize = 256 * 1024;

/// Whether `rows` inputs of length `k` are this product's case on this CPU.
pub fn fits(rows: usize, k: usize) -> bool {
    if k == 0 || rows == 0 {
        return false;
    }
    if !super::has_avx512() {
        return rows <= MAX_ROWS && rows * k <= MAX_INPUT;
    }
    if rows <= AVX512_DOT_ROWS {
        rows * k <= AVX512_MAX_INPUT
    } else {
        rows <= LANES_MAX_ROWS && rows.next_multiple_of(16) * k <= LANES_MAX_INPUT
    }
}

/// Whether this CPU multiplies `rows` input rows as the lanes of its vectors (`avx512::input_lanes`) rather than by
/// dot products: a row's bits then depend on which of the two its batch's size picks, never on the other rows.
pub fn as_lanes(rows: usize) -> bool {
    rows > AVX512_DOT_ROWS && super::has_avx512()
}

/// Multiply-adds below which one thread does the whole product: splitting costs more than it saves.
const SEQUENTIAL_MACS: usize = 512 * 1024;

/// Weight elements one rayon task takes (256 KiB of consecutive rows).
const TASK_WEIGHTS: usize = 64 * 1024;

/// `x · wᵀ` (`rows × n`, row-major) for `x` of `rows × k` and `w` of `n × k`, both row-major; `None` when the
/// CPU has neither AVX-512 nor AVX2 and FMA, or the shape is not this product's (`fits`): the caller multiplies
/// another way.
pub(super) fn product(x: &[f32], w: &[f32], rows: usize, k: usize, n: usize) -> Option<Vec<f32>> {
    if !fits(rows, k) || n == 0 || x.len() != rows * k || w.len() != n * k || !super::has_avx2() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let lanes_input;
        let (kernel, input, group): (unsafe fn(&[f32], &[f32], usize, usize, &mut [f32]), &[f32], usize) =
            if as_lanes(rows) {
                lanes_input = candle_core::cpu::product_layout::transposed_padded(x, rows, k);
                let kernel = if rows <= 16 { avx512::input_lanes::<1> } else { avx512::input_lanes::<2> };
                (kernel, &lanes_input, avx512::LANES_WEIGHT_ROWS)
            } else if super::has_avx512() {
                (avx512::weight_rows, x, 1)
            } else {
                (avx2::weight_rows, x, 1)
            };
        // Column j of the result, all rows, lies at out_t[j * rows..]: a task owns a contiguous range of outputs.
        let mut out_t = vec![0f32; n * rows];
        if n * k * rows < SEQUENTIAL_MACS {
            // SAFETY: the kernel's instructions were detected above; the lengths were checked against rows, k and n
            // (the lanes kernel's input is the transposed one it takes).
            unsafe { kernel(input, w, k, rows, &mut out_t) };
        } else {
            let task = (TASK_WEIGHTS / k).max(8).min(n.div_ceil(2 * rayon::current_num_threads())).max(1).next_multiple_of(group);
            out_t.par_chunks_mut(task * rows).zip(w.par_chunks(task * k)).for_each(|(out, weights)| {
                // SAFETY: as above; each task gets whole weight rows and the matching whole result columns.
                unsafe { kernel(input, weights, k, rows, out) }
            });
        }
        Some(if rows == 1 { out_t } else { super::rows_from_columns(&out_t, rows, n) })
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `out_t[j * rows + i] = x[i] · w[j]` for every input row `i` and every row `j` of this slice of the weight,
    /// the weight rows in order, each against blocks of up to 4 input rows.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `x.len() == rows * k`, `w.len()` a multiple of `k`, `out_t.len() == w.len() / k * rows`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_rows(x: &[f32], w: &[f32], k: usize, rows: usize, out_t: &mut [f32]) {
        debug_assert!(x.len() == rows * k && w.len() % k == 0 && out_t.len() == w.len() / k * rows);
        for j in 0..w.len() / k {
            let mut i = 0;
            while i < rows {
                let block = (rows - i).min(4);
                match block {
                    1 => dots::<1>(x, w, k, rows, i, j, out_t),
                    2 => dots::<2>(x, w, k, rows, i, j, out_t),
                    3 => dots::<3>(x, w, k, rows, i, j, out_t),
                    _ => dots::<4>(x, w, k, rows, i, j, out_t),
                }
                i += block;
            }
        }
    }

    /// The dot products of input rows `i0..i0 + R` with weight row `j`: two sums per input row, over the even and
    /// the odd vectors of 8, so that two multiply-adds are in flight per row.
    #[inline(always)]
    unsafe fn dots<const R: usize>(x: &[f32], w: &[f32], k: usize, rows: usize, i0: usize, j: usize, out_t: &mut [f32]) {
        debug_assert!(i0 + R <= rows && (j + 1) * k <= w.len());
        let pairs = k / 16 * 16;
        let vectors = k / 8 * 8;
        let xp = x.as_ptr().add(i0 * k);
        let wp = w.as_ptr().add(j * k);
        let mut even = [_mm256_setzero_ps(); R];
        let mut odd = [_mm256_setzero_ps(); R];
        let mut c = 0;
        while c < pairs {
            let (w0, w1) = (_mm256_loadu_ps(wp.add(c)), _mm256_loadu_ps(wp.add(c + 8)));
            for r in 0..R {
                even[r] = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(r * k + c)), w0, even[r]);
                odd[r] = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(r * k + c + 8)), w1, odd[r]);
            }
            c += 16;
        }
        if c < vectors {
            let w0 = _mm256_loadu_ps(wp.add(c));
            for r in 0..R {
                even[r] = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(r * k + c)), w0, even[r]);
            }
        }
        for r in 0..R {
            let mut total = lanes_sum(_mm256_add_ps(even[r], odd[r]));
            for c in vectors..k {
                total = (*xp.add(r * k + c)).mul_add(*wp.add(c), total);
            }
            out_t[j * rows + i0 + r] = total;
        }
    }

    /// The 8 lanes' sum, always in the same order: (0+4, 1+5, 2+6, 3+7), then pairwise.
    #[inline(always)]
    unsafe fn lanes_sum(v: __m256) -> f32 {
        let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
        _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Weight rows multiplied side by side, and input rows per block: 24 sums, 3 weight vectors and an input
    /// vector fill 28 of the 32 vector registers.
    const WEIGHT_ROWS: usize = 3;
    const INPUT_ROWS: usize = 8;

    /// How far ahead of the multiply-adds the weight is fetched, in elements (4 KiB).
    const PREFETCH: usize = 1024;

    /// `out_t[j * rows + i] = x[i] · w[j]` for every input row `i` and every row `j` of this slice of the weight:
    /// groups of 3 weight rows in order, each against blocks of up to 8 input rows.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `x.len() == rows * k`, `w.len()` a multiple of `k`, `out_t.len() == w.len() / k * rows`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn weight_rows(x: &[f32], w: &[f32], k: usize, rows: usize, out_t: &mut [f32]) {
        debug_assert!(x.len() == rows * k && w.len() % k == 0 && out_t.len() == w.len() / k * rows);
        let n = w.len() / k;
        // One input row (one sequence decoding): 3 weight rows side by side share only its one vector, and on a
        // 2-core AMD EPYC (Zen 4) they and the prefetch slowed the stream. Over SmolVLM-256M's language-model
        // matrices (a side-by-side, not committed; medians of 15 passes) 1 row took the weights at 15–17 GB/s,
        // 22–23 GB/s one weight row at a time without the prefetch (the machine streams 30–32 GB/s on 2 threads);
        // in the server one SmolVLM-256M f32 answer went 26–28 → 38–42 tokens/s, one Qwen3-VL-2B answer 2.9–3.5 →
        // 3.7–4.1. The sums are the same, so are the bits.
        let (side_by_side, prefetch) = if rows == 1 { (1, false) } else { (WEIGHT_ROWS, true) };
        let mut j = 0;
        while j < n {
            let group = (n - j).min(side_by_side);
            let mut i = 0;
            while i < rows {
                let block = (rows - i).min(INPUT_ROWS);
                // The first block streams the group's weight rows in from memory; the others find them cached.
                let fetch_ahead = prefetch && i == 0;
                match group {
                    1 => input_block::<1>(x, w, k, rows, i, block, j, out_t, fetch_ahead),
                    2 => input_block::<2>(x, w, k, rows, i, block, j, out_t, fetch_ahead),
                    _ => input_block::<3>(x, w, k, rows, i, block, j, out_t, fetch_ahead),
                }
                i += block;
            }
            j += group;
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn input_block<const W: usize>(
        x: &[f32], w: &[f32], k: usize, rows: usize, i0: usize, block: usize, j0: usize, out_t: &mut [f32], fetch_ahead: bool,
    ) {
        match block {
            1 => dots::<W, 1>(x, w, k, rows, i0, j0, out_t, fetch_ahead),
            2 => dots::<W, 2>(x, w, k, rows, i0, j0, out_t, fetch_ahead),
            3 => dots::<W, 3>(x, w, k, rows, i0, j0, out_t, fetch_ahead),
            4 => dots::<W, 4>(x, w, k, rows, i0, j0, out_t, fetch_ahead),
            5 => dots::<W, 5>(x, w, k, rows, i0, j0, out_t, fetch_ahead),
            6 => dots::<W, 6>(x, w, k, rows, i0, j0, out_t, fetch_ahead),
            7 => dots::<W, 7>(x, w, k, rows, i0, j0, out_t, fetch_ahead),
            _ => dots::<W, 8>(x, w, k, rows, i0, j0, out_t, fetch_ahead),
        }
    }

    /// The dot products of input rows `i0..i0 + R` with weight rows `j0..j0 + W`: one 16-lane sum per output over
    /// the vectors of `k` in order, the last partial vector loaded under a mask (its missing lanes are zeros).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn dots<const W: usize, const R: usize>(
        x: &[f32], w: &[f32], k: usize, rows: usize, i0: usize, j0: usize, out_t: &mut [f32], fetch_ahead: bool,
    ) {
        debug_assert!(i0 + R <= rows && (j0 + W) * k <= w.len());
        let xp = x.as_ptr().add(i0 * k);
        let wp = w.as_ptr().add(j0 * k);
        let mut sums = [[_mm512_setzero_ps(); R]; W];
        let mut c = 0;
        while c + 16 <= k {
            if fetch_ahead {
                // One cache line per weight row per 16 elements: the lines PREFETCH elements ahead (past a row's
                // end, the next rows'; past the slice's end the hint is dropped, a prefetch never faults).
                for q in 0..W {
                    _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(q * k + c + PREFETCH).cast::<i8>());
                }
            }
            let mut wv = [_mm512_setzero_ps(); W];
            for q in 0..W {
                wv[q] = _mm512_loadu_ps(wp.add(q * k + c));
            }
            for r in 0..R {
                let xv = _mm512_loadu_ps(xp.add(r * k + c));
                for q in 0..W {
                    sums[q][r] = _mm512_fmadd_ps(xv, wv[q], sums[q][r]);
                }
            }
            c += 16;
        }
        if c < k {
            let mask: __mmask16 = (1u16 << (k - c)) - 1;
            let mut wv = [_mm512_setzero_ps(); W];
            for q in 0..W {
                wv[q] = _mm512_maskz_loadu_ps(mask, wp.add(q * k + c));
            }
            for r in 0..R {
                let xv = _mm512_maskz_loadu_ps(mask, xp.add(r * k + c));
                for q in 0..W {
                    sums[q][r] = _mm512_fmadd_ps(xv, wv[q], sums[q][r]);
                }
            }
        }
        for q in 0..W {
            for r in 0..R {
                out_t[(j0 + q) * rows + i0 + r] = lanes_sum(sums[q][r]);
            }
        }
    }

    /// The 16 lanes' sum, always in the same order: the halves added (0+8 … 7+15), then as the AVX2 kernel adds 8.
    #[inline(always)]
    unsafe fn lanes_sum(v: __m512) -> f32 {
        let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        let eight = _mm256_add_ps(_mm512_castps512_ps256(v), high);
        let halves = _mm_add_ps(_mm256_castps256_ps128(eight), _mm256_extractf128_ps::<1>(eight));
        let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
        _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<1>(pairs, pairs)))
    }

    /// Weight rows the lanes kernel multiplies together (a task takes a multiple of it): 8 weight rows streaming side
    /// by side from memory, against all of 16 or 32 input rows (8 or 16 sums in registers). Over Qwen3-VL-2B's layer
    /// matrices (16 rows, weights from memory; a side-by-side, not committed) 4 / 6 / 8 / 12 / 14 weight rows took
    /// 11.7 / 10.0 / 9.6 / 12.5 / 15.0 ms: more sums per loaded input, but more streams than the memory's
    /// prefetchers follow. A software prefetch, which the dot-product kernel needs, made it slower here.
    pub(super) const LANES_WEIGHT_ROWS: usize = 8;

    /// `out_t[j * rows + i] = x[i] · w[j]` with the input transposed (`xt`: `k` groups of `V` vectors, element
    /// (p, i) at p · 16V + i, zeros past `rows`; `candle_core::cpu::product_layout::transposed_padded`): each weight
    /// element, broadcast from memory, is multiplied into all the input rows at once (one multiply-add per weight
    /// element and vector of rows), 8 weight rows at a time, each output summed over `k` in order. The input is read
    /// from the core's caches once per 8 weight rows, where the dot-product kernel reads it once per 3.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `xt.len() == k * 16 * V`, `rows <= 16 * V`, `w.len()` a multiple of `k`,
    /// `out_t.len() == w.len() / k * rows`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn input_lanes<const V: usize>(xt: &[f32], w: &[f32], k: usize, rows: usize, out_t: &mut [f32]) {
        debug_assert!(xt.len() == k * 16 * V && rows <= 16 * V && w.len() % k == 0 && out_t.len() == w.len() / k * rows);
        let n = w.len() / k;
        let mut j = 0;
        while j + LANES_WEIGHT_ROWS <= n {
            lane_sums::<V, LANES_WEIGHT_ROWS>(xt, w, k, rows, j, out_t);
            j += LANES_WEIGHT_ROWS;
        }
        while j + 4 <= n {
            lane_sums::<V, 4>(xt, w, k, rows, j, out_t);
            j += 4;
        }
        while j < n {
            lane_sums::<V, 1>(xt, w, k, rows, j, out_t);
            j += 1;
        }
    }

    /// Weight rows `j0..j0 + W` against every input row: `W × V` sums of 16 lanes, written to their columns of `out_t`.
    #[inline(always)]
    unsafe fn lane_sums<const V: usize, const W: usize>(xt: &[f32], w: &[f32], k: usize, rows: usize, j0: usize, out_t: &mut [f32]) {
        debug_assert!((j0 + W) * k <= w.len() && (j0 + W) * rows <= out_t.len());
        let xp = xt.as_ptr();
        let wp = w.as_ptr().add(j0 * k);
        let mut sums = [[_mm512_setzero_ps(); V]; W];
        for p in 0..k {
            let mut xv = [_mm512_setzero_ps(); V];
            for v in 0..V {
                xv[v] = _mm512_loadu_ps(xp.add((p * V + v) * 16));
            }
            for q in 0..W {
                let weight = _mm512_set1_ps(*wp.add(q * k + p));
                for v in 0..V {
                    sums[q][v] = _mm512_fmadd_ps(xv[v], weight, sums[q][v]);
                }
            }
        }
        for q in 0..W {
            for v in 0..V {
                // The rows this vector holds (V = 2 only for more than 16 rows, so at least one), stored under a mask.
                let lanes = rows.saturating_sub(v * 16).min(16);
                let mask = ((1u32 << lanes) - 1) as __mmask16;
                _mm512_mask_storeu_ps(out_t.as_mut_ptr().add((j0 + q) * rows + v * 16), mask, sums[q][v]);
            }
        }
    }
}
