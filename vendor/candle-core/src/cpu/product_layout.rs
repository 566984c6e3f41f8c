//! Glimpse patch: which way round a CPU product `x · wᵀ` of few input rows with a row-major weight goes to gemm.
//!
//! Asked for a row-major result, gemm computes its transpose with the weight on the packed side: it gathers every
//! weight element into its layout one float at a time, reading down the weight's columns `k` floats apart. Over
//! large matrices those strides fall on a few cache sets (Qwen2.5-VL-3B's k = 2,048 is 8 KiB), and a 36-token prompt
//! spent 62–74% of its time in that gather. A column-major result puts the input rows on the packed side and reads
//! the weight where it lies; from some number of rows the packed weight pays for itself again. Measured on a
//! 2-core Zen 5 (text prompts through the server, f32, the weights read in place against packed, first token):
//! - SmolVLM-256M (k 576 / 1,536): in place 0.056 s against 0.088 at 36 rows; 0.16 against 0.136 at ~70.
//! - SmolVLM-500M (k 960 / 2,560): 0.13 against 0.24 at 36 rows; level at ~70.
//! - Qwen2.5-VL-3B (k 2,048 / 11,008): 1.15 s against 2.8 at 36 rows; 3.85 against 4.86 at ~110; level at ~220;
//!   33.3 against 28.9 at ~1,030.
//! - Qwen3-VL-2B (k 2,048 / 6,144): 0.62 s against 1.82 at 36 rows.
//!
//! A quantised weight is dequantised a few hundred rows at a time (`quantized::dequantised_rows`), and gathering
//! a small one from the cache costs little: in place only pays for large weights there (`--isq q8_0`, SmolVLM-256M:
//! 0.070 s against 0.066 at 36 rows, 0.20 against 0.14 at ~70; Qwen2.5-VL-3B: 1.2 s against 2.8 at 36 rows, 3.9
//! against 5.0 at ~110, 7.3 against 7.6 at ~220, 36 against 31 at ~1,030).

/// Up to this many rows every weight is read in place.
const IN_PLACE_ROWS: usize = 48;

/// Up to this many rows a large weight (`LARGE_WEIGHT` elements or more) is read in place.
const IN_PLACE_ROWS_LARGE: usize = 160;

/// 4 Mi elements (16 MiB of f32): Qwen's 2,048 × 2,048 projections and larger; SmolVLM-500M's largest is 2.5 Mi.
const LARGE_WEIGHT: usize = 4 << 20;

/// Whether gemm should read the `n × k` f32 weight in place for `rows` input rows (a column-major result), rather
/// than pack it (a row-major one).
pub fn weight_in_place(rows: usize, n: usize, k: usize) -> bool {
    rows <= IN_PLACE_ROWS || large_in_place(rows, n, k)
}

/// `weight_in_place` for an `n × k` quantised weight dequantised a few hundred rows at a time.
pub fn dequantised_weight_in_place(rows: usize, n: usize, k: usize) -> bool {
    large_in_place(rows, n, k)
}

fn large_in_place(rows: usize, n: usize, k: usize) -> bool {
    rows <= IN_PLACE_ROWS_LARGE && n.saturating_mul(k) >= LARGE_WEIGHT
}

/// Copies a column-major product (`columns`: each column `column_len` long, of which the first `rows` are kept) into
/// the row-major `dst` (row stride `stride`), its first column landing in `dst`'s column `first_col`: gemm writes a
/// product whose weight it read in place column by column.
///
/// # Safety
/// `dst` must be valid for writes at `i * stride + first_col + j` for every `i < rows` and
/// `j < columns.len() / column_len`, and nothing else may access those elements meanwhile.
pub unsafe fn columns_into_rows(columns: &[f32], column_len: usize, rows: usize, dst: *mut f32, stride: usize, first_col: usize) {
    debug_assert!(rows <= column_len);
    for (j, column) in columns.chunks_exact(column_len).enumerate() {
        for (i, &value) in column[..rows].iter().enumerate() {
            *dst.add(i * stride + first_col + j) = value;
        }
    }
}

/// f32 lanes of the widest vectors (AVX-512): `transposed_padded` rounds the rows up to a multiple of them.
const LANES: usize = 16;

/// `lhs` (m × k row-major) as `rows` × k column-major, `rows` being m rounded up to whole vectors (zero past m):
/// the layout gemm's kernel reads without packing it, and each column one or more whole vectors.
pub fn transposed_padded(lhs: &[f32], m: usize, k: usize) -> Vec<f32> {
    let rows = m.next_multiple_of(LANES);
    let mut lhs_t = vec![0f32; rows * k];
    for (i, row) in lhs.chunks_exact(k).enumerate() {
        for (p, &v) in row.iter().enumerate() {
            lhs_t[p * rows + i] = v;
        }
    }
    lhs_t
}
