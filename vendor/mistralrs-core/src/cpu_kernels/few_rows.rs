//! Glimpse patch: `x · wᵀ` for the few rows of a decode step (one row per sequence decoding), f32, AVX2 + FMA.
//!
//! A decode step multiplies 1 to 32 rows by every weight matrix of the language model, and the matrices stream
//! from memory once per step. gemm, which candle and the column-major product before this used, is built for many
//! rows: with 4 rows its `1 × 6` kernel kept half of each vector register empty (`perf`: 68% of a 4-sequence step's
//! samples in it), a step of 4 sequences cost 2–3× a step of one, and 4 requests at once gave 1.4–1.8× one
//! request's tokens/s. Here every weight row is read once, front to back, and multiplied into the input rows'
//! sums; the input rows stay in the core's nearest caches. Reading one weight row at a time matters on this
//! hardware: the same kernel reading 2 or 3 weight rows side by side (more sums per load) streamed at half the
//! speed once the weights no longer fit in the caches (a side-by-side over SmolVLM-256M's and Qwen3-VL-2B's
//! matrices, not committed).
//!
//! Each output is the dot product of one input row and one weight row summed in one order whatever the other
//! rows (two 8-lane sums over alternate vectors of `k`, added, the lanes added pairwise, then the remainder): a
//! sequence's logits have the same bits whether it decodes alone or beside others, while its batch is one this
//! product takes (`fits`).

use rayon::prelude::*;

/// Most rows this product takes: every weight row is multiplied into every input row, and beyond 8 the packed
/// products of gemm, which reuse each loaded input across several weight rows, win (a step of 16 SmolVLM-256M
/// sequences took 111 ms with this product for its 576-long inputs, 88 ms with gemm's).
const MAX_ROWS: usize = 8;

/// Most input elements (48 KiB of rows): every weight row passes over all of them, so they must stay in the
/// core's first caches. Beyond it gemm won (Qwen3-VL-2B's 8 rows of 2,048: 571 ms against 483 over its matrices).
const MAX_INPUT: usize = 12 * 1024;

/// Whether `rows` inputs of length `k` are this product's case.
pub fn fits(rows: usize, k: usize) -> bool {
    (1..=MAX_ROWS).contains(&rows) && k > 0 && rows * k <= MAX_INPUT
}

/// Multiply-adds below which one thread does the whole product: splitting costs more than it saves.
const SEQUENTIAL_MACS: usize = 512 * 1024;

/// Weight elements one rayon task takes (256 KiB of consecutive rows).
const TASK_WEIGHTS: usize = 64 * 1024;

/// `x · wᵀ` (`rows × n`, row-major) for `x` of `rows × k` and `w` of `n × k`, both row-major; `None` when the
/// CPU has no AVX2 and FMA or the shape is not this product's (`fits`): the caller multiplies another way.
pub(super) fn product(x: &[f32], w: &[f32], rows: usize, k: usize, n: usize) -> Option<Vec<f32>> {
    if !fits(rows, k) || n == 0 || x.len() != rows * k || w.len() != n * k || !super::has_avx2() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // Column j of the result, all rows, lies at out_t[j * rows..]: a task owns a contiguous range of outputs.
        let mut out_t = vec![0f32; n * rows];
        if n * k * rows < SEQUENTIAL_MACS {
            // SAFETY: AVX2 and FMA were detected above; the lengths were checked against rows, k and n.
            unsafe { avx2::weight_rows(x, w, k, rows, &mut out_t) };
        } else {
            let task = (TASK_WEIGHTS / k).max(8).min(n.div_ceil(2 * rayon::current_num_threads())).max(1);
            out_t.par_chunks_mut(task * rows).zip(w.par_chunks(task * k)).for_each(|(out, weights)| {
                // SAFETY: as above; each task gets whole weight rows and the matching whole result columns.
                unsafe { avx2::weight_rows(x, weights, k, rows, out) }
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
