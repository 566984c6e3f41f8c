//! Glimpse patch: a quantised matrix product over many input rows (a prompt's prefill) as gemm's f32 product on
//! weights dequantised a few hundred rows at a time.
//!
//! candle's `k_quants::matmul` walks every weight row through `vec_dot` once per input row: a prompt of a thousand
//! tokens reads and unpacks the whole weight a thousand times and runs 8-lane integer sums, where gemm's f32
//! kernels reuse each loaded weight across many rows. Dequantising costs about what ten rows of the quantised product do, so from
//! `DEQUANTISE_ROWS` rows on this wins for every block type (over SmolVLM-256M's matrices in q8_0: level at 32
//! rows, 1.3× faster at 64 and 1.8× at 256; its photo prompts in q4_1/q4k: see vendor/README.md).
//! The input is not rounded to the weight's dot-product type here, so a prompt's rows are slightly more exact
//! than a decode step's. For large weights and up to `cpu::product_layout`'s row count gemm reads the dequantised
//! weights where they lie (a 36-token prompt over Qwen2.5-VL-3B's q8_0 matrices: 1.2 s against 2.8 s packing them).

use super::k_quants::GgmlType;
use crate::cpu::product_layout;
use rayon::prelude::*;

/// From this many input rows the weights are dequantised and multiplied by gemm.
pub(crate) const DEQUANTISE_ROWS: usize = 32;

/// At most this many weight rows are dequantised at a time: with k = 1,536 (a feed-forward's down projection)
/// 1.5 MB of f32, which stays in the L2 cache while gemm reads it.
const MAX_TASK_COLS: usize = 256;

/// `dst = lhs · rhs_tᵀ` for f32 `lhs` (m × k), `rhs_t` n rows of k / `T::BLCK_SIZE` blocks, `dst` m × n.
/// k must be a whole number of blocks.
pub(crate) fn matmul<T: GgmlType>((m, k, n): (usize, usize, usize), lhs: &[f32], rhs_t: &[T], dst: &mut [f32]) {
    let blocks = k / T::BLCK_SIZE;
    debug_assert_eq!(k % T::BLCK_SIZE, 0, "weight rows are whole blocks");
    debug_assert_eq!(rhs_t.len(), n * blocks);
    debug_assert_eq!(lhs.len(), m * k);
    debug_assert_eq!(dst.len(), m * n);
    // As many tasks as threads (or a multiple), so that a 576-wide matrix on 2 threads is 4 × 144 columns, not
    // 256 + 256 + 64 with one thread idle for a third of the time.
    let threads = rayon::current_num_threads().max(1);
    let tasks = n.div_ceil(MAX_TASK_COLS).div_ceil(threads) * threads;
    let task_cols = n.div_ceil(tasks).max(1);
    let out = OutPtr(dst.as_mut_ptr());
    // For large weights, the input transposed once for every task (`product_layout`).
    let lhs_t = product_layout::dequantised_weight_in_place(m, n, k).then(|| product_layout::transposed_padded(lhs, m, k));
    weight_row_tasks(n, task_cols).for_each(|cols| {
        let mut weights = vec![0f32; cols.len() * k];
        T::to_float(&rhs_t[cols.start * blocks..cols.end * blocks], &mut weights);
        if let Some(lhs_t) = &lhs_t {
            product_in_place(lhs_t, m, k, &weights, out, n, cols);
            return;
        }
        // SAFETY: dst is m × n row-major and this task writes only its columns `cols` (m rows from column
        // cols.start, row stride n); lhs is m × k row-major, weights cols.len() × k row-major, read as k × cols.len().
        unsafe {
            gemm::gemm(
                m, cols.len(), k,
                out.get().add(cols.start), 1, n as isize, false,
                lhs.as_ptr(), 1, k as isize,
                weights.as_ptr(), k as isize, 1,
                0.0, 1.0, false, false, false,
                gemm::Parallelism::None,
            );
        }
    });
}

/// One task's product with its dequantised `weights` (`cols` of dst) read where they lie: gemm writes it column by
/// column, and it is copied into dst's rows. `lhs_t` is the input from `product_layout::transposed_padded`.
fn product_in_place(lhs_t: &[f32], m: usize, k: usize, weights: &[f32], out: OutPtr, n: usize, cols: std::ops::Range<usize>) {
    let rows = lhs_t.len() / k;
    let mut product = vec![0f32; rows * cols.len()];
    // SAFETY: product is rows × cols.len() column-major; lhs_t is rows × k column-major (k columns of `rows`),
    // weights cols.len() rows of k, read as k × cols.len() column-major.
    unsafe {
        gemm::gemm(
            rows, cols.len(), k,
            product.as_mut_ptr(), rows as isize, 1, false,
            lhs_t.as_ptr(), rows as isize, 1,
            weights.as_ptr(), k as isize, 1,
            0.0, 1.0, false, false, false,
            gemm::Parallelism::None,
        );
    }
    // SAFETY: dst is m × n row-major; this task writes only its columns `cols` (product has cols.len() columns).
    unsafe { product_layout::columns_into_rows(&product, rows, m, out.get(), n, cols.start) };
}

/// Weight rows `0..n` as rayon tasks of `task_cols` consecutive rows each (the last may be shorter): the split the
/// quantised products share, each task then writing only its own columns of dst (`OutPtr`).
pub(crate) fn weight_row_tasks(n: usize, task_cols: usize) -> impl ParallelIterator<Item = std::ops::Range<usize>> {
    (0..n.div_ceil(task_cols)).into_par_iter().map(move |task| task * task_cols..((task + 1) * task_cols).min(n))
}

/// How many weight rows of `row_bytes` make a task of about `task_bytes` (at least one).
pub(crate) fn rows_per_task(task_bytes: usize, row_bytes: usize) -> usize {
    (task_bytes / row_bytes.max(1)).max(1)
}

/// The destination, shared by the tasks, each writing its own columns.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: the tasks write disjoint elements (their own columns), and the products hold `&mut dst` until they finish.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer, through a method so that closures capture the whole (Send) `OutPtr`, not its raw field.
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}
