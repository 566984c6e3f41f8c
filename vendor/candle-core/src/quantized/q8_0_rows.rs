//! Glimpse patch: the q8_0 matrix product on the CPU (`--isq q8_0`), with each weight block read once for two input
//! rows. A prompt's many rows go to `dequantised_rows` instead, whatever the block type.
//!
//! candle's `k_quants::matmul` takes the input rows one at a time and, for each, walks every weight row through
//! `vec_dot` (one 8-lane sum per dot product): four sequences decoding together read the whole weight four times,
//! and a prompt of hundreds of tokens hundreds of times. Here each rayon task takes a run of consecutive weight rows
//! (about 32 KiB, so they stay in the cache while the input rows pass over them) and, for each pair of input rows,
//! reads a weight block once, takes its absolute value once and multiplies it into both rows' sums. Measured on
//! SmolVLM-256M's language model (a 2-core Xeon; throwaway side-by-sides and a server's step times, not
//! committed): a decode step of 4 sequences spent 42 ms in these products with groups of four rows and 25 ms with
//! pairs (in a side-by-side outside the server four were faster, 21 against 26 ms: the server decides); candle's
//! own took 52 ms.
//!
//! Each row's sum runs in one order whatever the other rows (two 8-lane sums over the even and odd blocks, added at
//! the end), so a decoding sequence's result has the same bits alone as beside others. It differs from candle's
//! `vec_dot_q8_0_q8_0` (one sum over all blocks) by f32 rounding only.

use super::avx::{hsum_float_8, mul_sum_us8_pairs_float};
use super::dequantised_rows::{rows_per_task, weight_row_tasks, OutPtr};
use super::k_quants::{BlockQ8_0, GgmlType, QK8_0};
use rayon::prelude::*;
use std::arch::x86_64::*;

/// Input rows that share each weight block's loads (see the module's comment for why not four).
const GROUP_ROWS: usize = 2;

/// Weight bytes one task takes (consecutive weight rows): small enough to stay in the cache while every group of
/// input rows passes over them, large enough that a decode step's product is a handful of tasks per thread.
const TASK_BYTES: usize = 32 * 1024;

/// How far ahead of the multiply-adds the weight is fetched (two cache lines per pair of blocks): without it the
/// kernel waited on its weight loads, 16 ms for one row over SmolVLM-256M's language-model matrices against 11 with
/// it, 28 against 18 for four (2 or 8 KiB ahead measured the same).
const PREFETCH_BYTES: usize = 4096;

/// `dst = lhs · rhs_tᵀ` for f32 `lhs` (m × k) and q8_0 `rhs_t` (n rows of k / 32 blocks), `dst` m × n.
pub(crate) fn matmul((m, k, n): (usize, usize, usize), lhs: &[f32], rhs_t: &[BlockQ8_0], dst: &mut [f32]) {
    let blocks = k / QK8_0;
    debug_assert_eq!(k % QK8_0, 0, "q8_0 rows are whole blocks");
    debug_assert_eq!(rhs_t.len(), n * blocks);
    debug_assert_eq!(lhs.len(), m * k);
    debug_assert_eq!(dst.len(), m * n);
    let mut lhs_q = vec![BlockQ8_0::zeros(); m * blocks];
    for (row, row_q) in lhs.chunks_exact(k).zip(lhs_q.chunks_exact_mut(blocks)) {
        BlockQ8_0::from_float(row, row_q);
    }
    let task_cols = rows_per_task(TASK_BYTES, blocks * std::mem::size_of::<BlockQ8_0>());
    let out = OutPtr(dst.as_mut_ptr());
    weight_row_tasks(n, task_cols).for_each(|cols| {
        let mut row = 0;
        while row < m {
            let group = (m - row).min(GROUP_ROWS);
            // SAFETY: every task writes only its own columns `cols` of dst (m × n, row-major), rows row..row + group <= m.
            unsafe {
                match group {
                    GROUP_ROWS => group_product::<GROUP_ROWS>(rhs_t, &lhs_q, blocks, row, cols.clone(), out, n),
                    _ => group_product::<1>(rhs_t, &lhs_q, blocks, row, cols.clone(), out, n),
                }
            }
            row += group;
        }
    });
}

/// Input rows `first..first + R` against weight rows `cols`, written to dst's columns `cols`. Not inlined into the
/// task loop: one copy per group size keeps each one's registers to itself (inlined together, a group's product
/// ran at half speed in a side-by-side).
#[inline(never)]
unsafe fn group_product<const R: usize>(
    rhs_t: &[BlockQ8_0],
    lhs_q: &[BlockQ8_0],
    blocks: usize,
    first: usize,
    cols: std::ops::Range<usize>,
    out: OutPtr,
    n: usize,
) {
    let ys: [&[BlockQ8_0]; R] = std::array::from_fn(|r| &lhs_q[(first + r) * blocks..(first + r + 1) * blocks]);
    for col in cols {
        let sums = dot::<R>(&rhs_t[col * blocks..(col + 1) * blocks], &ys);
        for (r, sum) in sums.into_iter().enumerate() {
            *out.get().add((first + r) * n + col) = sum;
        }
    }
}

/// Block `b` of one weight row multiplied into R input rows' sums.
#[inline(always)]
unsafe fn block<const R: usize>(w: &[BlockQ8_0], ys: &[&[BlockQ8_0]; R], b: usize, sums: &mut [__m256; R]) {
    let wb = w.get_unchecked(b);
    let dw = wb.d.to_f32();
    let wq = _mm256_loadu_si256(wb.qs.as_ptr() as *const __m256i);
    // candle's maddubs + madd (`mul_sum_us8_pairs_float`): unsigned by signed bytes, |w| against y with w's sign, summed
    // in pairs into i16 and those in pairs into i32; |w| and |y| are at most 127 in q8_0, so the i16 sums (at most
    // 32,258) never saturate.
    let abs_w = _mm256_sign_epi8(wq, wq);
    for r in 0..R {
        // SAFETY (get_unchecked): every input row has as many blocks as the weight row, b < w.len().
        let yb = ys[r].get_unchecked(b);
        let y_signed = _mm256_sign_epi8(_mm256_loadu_si256(yb.qs.as_ptr() as *const __m256i), wq);
        let products = mul_sum_us8_pairs_float(abs_w, y_signed);
        sums[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * yb.d.to_f32()), products, sums[r]);
    }
}

/// One weight row's dot products with R quantised input rows (the same number of blocks).
#[inline(always)]
unsafe fn dot<const R: usize>(w: &[BlockQ8_0], ys: &[&[BlockQ8_0]; R]) -> [f32; R] {
    let mut even = [_mm256_setzero_ps(); R];
    let mut odd = [_mm256_setzero_ps(); R];
    let pairs = w.len() / 2;
    for p in 0..pairs {
        // Past the weight's end the hint is dropped: a prefetch never faults.
        let ahead = (w.as_ptr().add(2 * p) as *const i8).wrapping_add(PREFETCH_BYTES);
        _mm_prefetch::<_MM_HINT_T0>(ahead);
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
        block::<R>(w, ys, 2 * p, &mut even);
        block::<R>(w, ys, 2 * p + 1, &mut odd);
    }
    if w.len() % 2 == 1 {
        block::<R>(w, ys, w.len() - 1, &mut even);
    }
    std::array::from_fn(|r| hsum_float_8(_mm256_add_ps(even[r], odd[r])))
}
