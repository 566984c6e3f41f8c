//! Glimpse patch: element-wise kernels for the CPU that run on every core and in the CPU's vector units.
//!
//! Profiling a SmolVLM-256M-shaped model's time to first token (13 tiles of 1,024 patches) showed half of it
//! outside the matrix products, in candle's element-wise CPU ops, which run on one thread and call libm's scalar
//! `tanhf` / `expf` per element: the vision MLP's tanh GELU (490 million elements), and the attention softmax with
//! its separate scale and mask passes over score matrices of 1,024 × 1,024 per head. These kernels do the same
//! arithmetic in one pass per buffer, split over rayon's pool (the one candle's gemm uses), with an exponential
//! that LLVM vectorises (AVX2/FMA when the CPU has them, chosen at run time; SSE2 otherwise).
//!
//! `exp` is Cephes' single-precision polynomial (relative error below 2e-7 on the range used here, against libm's
//! correctly rounded `expf`); the parity tests hold the models using it to transformers as before, and
//! `crates/glimpse-backend-mistralrs/tests/cpu_kernels.rs` each kernel to candle's own.

use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Result, Shape, Tensor};
use mistralrs_quant::QuantMethod;
use rayon::prelude::*;

pub mod few_rows;

/// Elements one rayon task takes: large enough that scheduling costs nothing next to the arithmetic.
const CHUNK: usize = 16 * 1024;

/// e^x in single precision, vectorisable (Cephes' polynomial after reducing by powers of two); exactly 0 below
/// the smallest normal result, as a masked score needs.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 × 2^23: adding and subtracting it rounds to the nearest integer
    let clamped = x.clamp(-87.336_55, 88.722_83);
    let shifted = clamped * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = clamped - n * C1 - n * C2;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let y = p * r2 + r + 1.0;
    // n as an integer from the bits of `shifted` (1.5 × 2^23 + n, whose last mantissa bits count n): the same
    // value as `n as i32`, but that cast saturates and maps NaN to 0, which LLVM did one lane at a time in scalar
    // code inside the vectorised loop.
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits((n_int.wrapping_add(127) << 23) as u32);
    // Below the clamp the true value is under 1.2e-38: exactly 0, as a masked score must give.
    if x < -87.336_55 {
        0.0
    } else {
        y * scale
    }
}

#[inline(always)]
fn gelu_tanh_one(x: f32) -> f32 {
    // 0.5·x·(1 + tanh(u)) = x · sigmoid(2u), u = √(2/π)·(x + 0.044715·x³): candle's and PyTorch's tanh GELU.
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let u = SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x);
    x / (1.0 + exp(-2.0 * u))
}

#[inline(always)]
fn gelu_tanh_slice_generic(src: &[f32], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = gelu_tanh_one(*s);
    }
}

/// Softmax of one row after adding its mask row: max, exponentials and sum in one pass each (a pass that did both
/// the exponentials and the sum did not vectorise: LLVM left it scalar, and a SmolVLM photo's first token took 9 s
/// longer).
#[inline(always)]
fn softmax_row_generic(row: &mut [f32], mask: Option<&[f32]>) {
    if let Some(mask) = mask {
        for (x, m) in row.iter_mut().zip(mask) {
            *x += *m;
        }
    }
    // Eight lanes, so that the reductions vectorise (a float reduction is not reordered otherwise).
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            lanes[i] = lanes[i].max(c[i]);
        }
    }
    let max = chunks.remainder().iter().fold(lanes.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b)), |a, b| a.max(*b));
    if max == f32::NEG_INFINITY {
        // Every key masked: no weight anywhere (the row-at-a-time kernel leaves such a row at zero too).
        row.iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    for x in row.iter_mut() {
        *x = exp(*x - max);
    }
    let mut sums = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            sums[i] += c[i];
        }
    }
    let sum: f32 = sums.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>();
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gelu_tanh_slice(src: &[f32], dst: &mut [f32]) {
        super::gelu_tanh_slice_generic(src, dst)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn softmax_row(row: &mut [f32], mask: Option<&[f32]>) {
        super::softmax_row_generic(row, mask)
    }
}

/// The same loops compiled for AVX-512 (LLVM vectorises the exponentials 16 lanes wide): the fused attention's
/// softmax was 7.5% of a SmolVLM photo's first token on a Zen 5 CPU at 8 lanes. The reductions keep their 8 explicit
/// lanes, so each row's bits are those of the AVX2 version.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn gelu_tanh_slice(src: &[f32], dst: &mut [f32]) {
        super::gelu_tanh_slice_generic(src, dst)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn softmax_row(row: &mut [f32], mask: Option<&[f32]>) {
        super::softmax_row_generic(row, mask)
    }
}

/// Whether the CPU has AVX2 and FMA (the 8-lane kernels) and, with `avx512`, AVX-512F too (the few-rows product's
/// wider kernel, the 16-lane softmax and GELU). `is_x86_feature_detected!` caches what it reads.
fn has_simd(avx512: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && (!avx512 || is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = avx512;
        false
    }
}

fn has_avx2() -> bool {
    has_simd(false)
}

fn has_avx512() -> bool {
    has_simd(true)
}

fn gelu_tanh_slice(src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked at run time).
        return unsafe { avx512::gelu_tanh_slice(src, dst) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked at run time).
        return unsafe { avx2::gelu_tanh_slice(src, dst) };
    }
    gelu_tanh_slice_generic(src, dst)
}

fn softmax_row(row: &mut [f32], mask: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked at run time).
        return unsafe { avx512::softmax_row(row, mask) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked at run time).
        return unsafe { avx2::softmax_row(row, mask) };
    }
    softmax_row_generic(row, mask)
}

/// The tanh GELU of a contiguous f32 tensor on the CPU; `None` for anything else (the caller falls back to candle).
pub fn gelu_tanh(xs: &Tensor) -> Result<Option<Tensor>> {
    if !xs.device().is_cpu() || xs.dtype() != DType::F32 || !xs.is_contiguous() {
        return Ok(None);
    }
    let out = {
        let (storage, layout) = xs.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else { return Ok(None) };
        let src = &cpu.as_slice::<f32>()?[layout.start_offset()..layout.start_offset() + xs.elem_count()];
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(dst, src)| gelu_tanh_slice(src, dst));
        out
    };
    Ok(Some(Tensor::from_vec(out, xs.shape(), &Device::Cpu)?))
}

/// `layer.forward_autocast(xs)`, with the bias added on every core when the layer is an unquantized f32 linear
/// layer with a bias on the CPU (see `matmul_add_bias`); anything else goes through the layer as before.
pub fn linear(layer: &dyn QuantMethod, xs: &Tensor) -> Result<Tensor> {
    if layer.quantized_act_type().is_none() {
        if let Some((w, Some(bias))) = layer.unquant_weight_bias() {
            if let Some(out) = matmul_add_bias(xs, &w, &bias)? {
                return Ok(out);
            }
        }
    }
    layer.forward_autocast(xs)
}

/// `layer.forward_autocast(xs)` for a layer built without a bias (`bias: false`), with a decode step's few rows
/// multiplied without candle's repacking of the weights on the CPU (`small_batch_product`). Only for such layers:
/// mistralrs-quant's parallel layers keep their bias outside the weight, where `unquant_weight_bias` does not show it.
pub fn linear_unbiased(layer: &dyn QuantMethod, xs: &Tensor) -> Result<Tensor> {
    if layer.quantized_act_type().is_none() {
        if let Some((w, None)) = layer.unquant_weight_bias() {
            if let Some(out) = small_batch_product(xs, &w)? {
                return Ok(out);
            }
        }
    }
    layer.forward_autocast(xs)
}

/// `xs · wᵀ` for the few rows of a decode step or a short prompt (candle-core's `cpu::product_layout` says how
/// few), f32 on the CPU; `None` otherwise.
///
/// With AVX2 and FMA and the few rows `few_rows` takes (`fits`: up to 8 with AVX2, 32 with AVX-512), its product:
/// 1.2–2.5× faster than gemm over SmolVLM-256M's and Qwen3-VL-2B's matrices for 1 to 4 rows, and a row's result
/// does not depend on the other rows. Otherwise, for 2 rows or more, gemm with a column-major result: candle asks
/// gemm for a row-major result, which gemm computes as its transpose with the weight on the packed side, copying
/// the whole weight matrix into gemm's layout at every call (a step of 2 sequences cost 4.5× a step of one; a 36-token prompt over
/// Qwen2.5-VL-3B's matrices 2.8 s against 1.15 s); a column-major result puts the few rows on the packed side and
/// reads the weight where it lies (the same products and order of additions as candle's).
fn small_batch_product(xs: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    if !xs.device().is_cpu() || xs.dtype() != DType::F32 || w.dtype() != DType::F32 || w.rank() != 2 {
        return Ok(None);
    }
    let (n, k) = w.dims2()?;
    let rows = xs.elem_count() / k.max(1);
    let in_place = rows > 0 && candle_core::cpu::product_layout::weight_in_place(rows, n, k);
    if !in_place || xs.dim(candle_core::D::Minus1)? != k || !xs.is_contiguous() || !w.is_contiguous() {
        return Ok(None);
    }
    let out = {
        let (x_guard, x_layout) = xs.storage_and_layout();
        let (w_guard, w_layout) = w.storage_and_layout();
        let (candle_core::Storage::Cpu(CpuStorage::F32(x_data)), candle_core::Storage::Cpu(CpuStorage::F32(w_data))) =
            (&*x_guard, &*w_guard)
        else {
            return Ok(None);
        };
        let x_data = &x_data[x_layout.start_offset()..x_layout.start_offset() + rows * k];
        let w_data = &w_data[w_layout.start_offset()..w_layout.start_offset() + n * k];
        match few_rows::product(x_data, w_data, rows, k, n) {
            Some(out) => out,
            None if rows >= 2 => column_major_product(x_data, w_data, rows, k, n),
            None => return Ok(None),
        }
    };
    let mut dims = xs.dims().to_vec();
    *dims.last_mut().expect("rank checked by dim(-1)") = n;
    Ok(Some(Tensor::from_vec(out, dims, &Device::Cpu)?))
}

/// `x · wᵀ` (`rows × n`) through gemm with a column-major destination, so that the weight is read in place.
fn column_major_product(x: &[f32], w: &[f32], rows: usize, k: usize, n: usize) -> Vec<f32> {
    let mut transposed = vec![0f32; n * rows];
    // SAFETY: x is rows × k and w is n × k, both row-major with exactly those lengths (sliced by the caller); the
    // destination is rows × n column-major (element (i, j) at j · rows + i) in a buffer of n · rows.
    unsafe {
        gemm::gemm(
            rows, n, k,
            transposed.as_mut_ptr(), rows as isize, 1, false,
            x.as_ptr(), 1, k as isize,
            w.as_ptr(), k as isize, 1,
            0.0, 1.0, false, false, false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
    rows_from_columns(&transposed, rows, n)
}

/// The row-major `rows × n` matrix whose column `j` is `columns[j * rows..(j + 1) * rows]`.
fn rows_from_columns(columns: &[f32], rows: usize, n: usize) -> Vec<f32> {
    assert_eq!(columns.len(), rows * n, "n columns of `rows`");
    let mut out = vec![0f32; rows * n];
    // SAFETY: out is rows × n row-major, and columns holds n columns of `rows` (asserted).
    unsafe { candle_core::cpu::product_layout::columns_into_rows(columns, rows, rows, out.as_mut_ptr(), n, 0) };
    out
}

/// `layer.forward(xs)` for candle's own linear layer, with the bias added on every core on the CPU.
pub fn linear_nn(layer: &candle_nn::Linear, xs: &Tensor) -> Result<Tensor> {
    if let Some(bias) = layer.bias() {
        if let Some(out) = matmul_add_bias(xs, layer.weight(), bias)? {
            return Ok(out);
        }
    }
    candle_nn::Module::forward(layer, xs)
}

/// `xs · wᵀ + bias` as candle's and mistralrs-quant's linear layers compute it (the same product, the same f32
/// additions: identical results), for f32 on the CPU; `None` otherwise. Those layers add the bias with candle's
/// `broadcast_add`, a branchy scalar loop on one thread: 4% of a SmolVLM photo's time to first token (1.1 billion
/// additions in its vision tower) while the other core waited. Here the rows are split over rayon's pool.
fn matmul_add_bias(xs: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Option<Tensor>> {
    if !xs.device().is_cpu() || [xs.dtype(), w.dtype(), bias.dtype()].iter().any(|d| *d != DType::F32) {
        return Ok(None);
    }
    let w = match *xs.dims() {
        [b1, b2, _, _] => w.broadcast_left((b1, b2))?,
        [b, _, _] => w.broadcast_left(b)?,
        _ => w.clone(),
    };
    let out = xs.matmul(&w.t()?)?;
    if out.dim(candle_core::D::Minus1)? != bias.elem_count() || !out.is_contiguous() {
        return Ok(Some(out.broadcast_add(bias)?));
    }
    out.inplace_op1(&AddBias(bias.flatten_all()?.to_vec1::<f32>()?))?;
    Ok(Some(out))
}

/// In place on a contiguous f32 tensor whose last dimension is the bias's length: adds the bias to every row.
struct AddBias(Vec<f32>);

impl InplaceOp1 for AddBias {
    fn name(&self) -> &'static str {
        "glimpse-add-bias"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let CpuStorage::F32(data) = storage else { candle_core::bail!("add bias: f32 only") };
        let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("add bias: not contiguous") };
        let n = self.0.len();
        data[start..end].par_chunks_mut(n).with_min_len((CHUNK / n.max(1)).max(1)).for_each(|row| {
            for (x, b) in row.iter_mut().zip(&self.0) {
                *x += b;
            }
        });
        Ok(())
    }
}

/// Bytes of attention scores one block of query rows holds (rows × live keys × 4): within a core's L2 cache (1 MiB
/// on the Zen 4 this was tuned on, 2 MiB on recent Intel server parts), so that the scores are written, turned into
/// probabilities and read back by the second product without leaving it.
const ATTENTION_BLOCK_BYTES: usize = 768 << 10;

/// Most query rows in one block: 48–64 were the fastest on a 3,072-patch tower (16 heads of 64), more gave nothing.
const ATTENTION_BLOCK_ROWS: usize = 64;

/// Softmax attention of a prompt step on the CPU, for f32: `softmax(q·kᵀ·scale + mask)·v`, fused per block of query
/// rows; `None` where it does not apply (another dtype or device, mismatched shapes), for the caller's general path.
///
/// The general path computes the scores of many rows and heads as one batched product, then the softmax, then a
/// second product: megabytes of scores written to memory and read twice. In Qwen3-VL-2B's tower (3,072 patches of
/// full attention, 16 heads, 24 blocks) those products ran at ~50 GFLOPS against ~180 for its linear layers; fused,
/// its photo's first token went from 48 s to 45 s (vendor/README.md, eighteenth change). Here each (sequence, head, block of ≤ 64 rows) is one task on rayon's pool:
/// one single-threaded product for its scores (sized to stay in L2), the mask and softmax row by row, and one
/// product into the output — the same arithmetic, on the 16-head tower 3.1× faster than the general path and level
/// with PyTorch's fused CPU attention (a side-by-side, not committed: 279 ms vs 293 ms for one layer's attention on 2 cores).
/// Keys that the mask removes for every row of a block (`-inf`: a causal prompt's future, a sliding window's past)
/// are left out of both products: their weights are exactly 0.
///
/// Shapes: q (b, heads, q_len, d); k and v (b, kv_heads, kv_len, d) with heads = kv_heads · `n_kv_groups` (grouped
/// queries share their key head without copying it); mask broadcastable to (b, heads, q_len, kv_len) or
/// (q_len, kv_len). Returns (b, heads, q_len, d). A row whose keys are all masked gets zeros.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f32,
    n_kv_groups: usize,
) -> Result<Option<Tensor>> {
    if !q.device().is_cpu() || [q, k, v].iter().any(|t| t.dtype() != DType::F32) {
        return Ok(None);
    }
    let (b, heads, q_len, d) = q.dims4()?;
    let (kv_b, kv_heads, kv_len, kv_d) = k.dims4()?;
    if q_len == 0 || kv_len == 0 || d == 0 || kv_b != b || kv_d != d || v.dims4()? != (b, kv_heads, kv_len, d) || kv_heads * n_kv_groups != heads {
        return Ok(None);
    }
    let q = q.contiguous()?;
    let (k, v) = (rows_in_place(k)?, rows_in_place(v)?);
    let mask = mask.map(|m| mask_for_rows(m, q_len, kv_len)).transpose()?;
    // Per mask row, the span of keys it keeps (first to last finite entry), found once rather than per head.
    let live_spans: Option<Vec<(usize, usize)>> = mask.as_ref().map(|(values, _, _)| {
        values.par_chunks(kv_len).map(live_span).collect()
    });
    let block_rows = (ATTENTION_BLOCK_BYTES / (kv_len * 4)).clamp(8, ATTENTION_BLOCK_ROWS).min(q_len);
    let mut out = vec![0f32; b * heads * q_len * d];
    {
        let (q_guard, q_layout) = q.storage_and_layout();
        let (k_guard, k_layout) = k.storage_and_layout();
        let (v_guard, v_layout) = v.storage_and_layout();
        let (
            candle_core::Storage::Cpu(CpuStorage::F32(q_data)),
            candle_core::Storage::Cpu(CpuStorage::F32(k_data)),
            candle_core::Storage::Cpu(CpuStorage::F32(v_data)),
        ) = (&*q_guard, &*k_guard, &*v_guard)
        else {
            return Ok(None);
        };
        let q_data = &q_data[q_layout.start_offset()..];
        let k_data = &k_data[k_layout.start_offset()..];
        let v_data = &v_data[v_layout.start_offset()..];
        // Where key head h of sequence bi starts in each (its rows lie d apart: `rows_in_place`).
        let (k_strides, v_strides) = (k_layout.stride(), v_layout.stride());
        let head_start = |strides: &[usize], bi: usize, h: usize| bi * strides[0] + h * strides[1];
        // (sequence × head, first row, output rows) for every block: the tasks. A decode step (one query row per
        // head) whose mask is the same for every head takes the query heads sharing a key head as one block: one
        // product of their rows over the keys they share (see `decode_groups`).
        let grouped = decode_groups(q_len, n_kv_groups, mask.as_ref().map(|(_, _, mask_heads)| *mask_heads));
        let mut blocks = Vec::with_capacity(b * heads * q_len.div_ceil(block_rows));
        if grouped {
            for (group, group_out) in out.chunks_mut(n_kv_groups * d).enumerate() {
                blocks.push((group * n_kv_groups, 0, group_out));
            }
        } else {
            for (bh, head_out) in out.chunks_mut(q_len * d).enumerate() {
                for (i, block_out) in head_out.chunks_mut(block_rows * d).enumerate() {
                    blocks.push((bh, i * block_rows, block_out));
                }
            }
        }
        let mask = mask.as_ref().map(|(values, mask_b, mask_heads)| (&values[..], *mask_b, *mask_heads));
        blocks.into_par_iter().for_each_init(Vec::new, |scores: &mut Vec<f32>, (bh, first_row, block_out)| {
            let (bi, head) = (bh / heads, bh % heads);
            let rows = block_out.len() / d;
            // The mask row (in `mask_for_rows`' layout) of the block's row r: in a grouped decode block the rows are
            // heads, which share their sequence's one mask row.
            let query_row = |r: usize| if grouped { 0 } else { first_row + r };
            let mask_index = |r: usize| {
                mask.map(|(_, mask_b, mask_heads)| ((bi % mask_b) * mask_heads + head % mask_heads) * q_len + query_row(r))
            };
            let (lo, hi) = match &live_spans {
                None => (0, kv_len),
                Some(spans) => (0..rows)
                    .filter_map(|r| mask_index(r).map(|index| spans[index]))
                    .filter(|(first, end)| first < end)
                    .fold((kv_len, 0), |(lo, hi), (first, end)| (lo.min(first), hi.max(end))),
            };
            if lo >= hi {
                // Every key masked for every row of the block: no weight anywhere (`out` starts at zero).
                return;
            }
            let width = hi - lo;
            scores.resize(rows * width, 0.0);
            let k_offset = head_start(k_strides, bi, head / n_kv_groups) + lo * d;
            let v_offset = head_start(v_strides, bi, head / n_kv_groups) + lo * d;
            // SAFETY: every pointer, with the sizes and strides given, stays inside its slice: q's block is rows × d
            // from `(bh · q_len + first_row) · d`, the keys and values are width packed rows of d from `k_offset` /
            // `v_offset` within their head, `scores` holds rows × width and `block_out` rows × d.
            unsafe {
                gemm::gemm(
                    rows, width, d,
                    scores.as_mut_ptr(), 1, width as isize, false,
                    q_data[(bh * q_len + first_row) * d..].as_ptr(), 1, d as isize,
                    k_data[k_offset..].as_ptr(), d as isize, 1,
                    0.0, scale, false, false, false, gemm::Parallelism::None,
                );
            }
            for (r, row) in scores.chunks_exact_mut(width).enumerate() {
                let mask_row = mask.zip(mask_index(r)).map(|((values, _, _), index)| &values[index * kv_len..][lo..hi]);
                softmax_row(row, mask_row);
            }
            // SAFETY: as above.
            unsafe {
                gemm::gemm(
                    rows, d, width,
                    block_out.as_mut_ptr(), 1, d as isize, false,
                    scores.as_ptr(), 1, width as isize,
                    v_data[v_offset..].as_ptr(), 1, d as isize,
                    0.0, 1.0, false, false, false, gemm::Parallelism::None,
                );
            }
        });
    }
    Ok(Some(Tensor::from_vec(out, (b, heads, q_len, d), &Device::Cpu)?))
}

/// `t` (b, heads, len, d) as it lies when each head's rows are packed (d apart, elements adjacent), whatever the
/// strides between heads and sequences: a key/value cache narrowed to the positions it holds is read where it lies
/// (copying it first was 5% of a 16-sequence decode's samples, as much as the attention's arithmetic); anything
/// else is copied.
fn rows_in_place(t: &Tensor) -> Result<Tensor> {
    let d = t.dim(3)?;
    match t.layout().stride() {
        [_, _, row, 1] if *row == d => Ok(t.clone()),
        _ => t.contiguous(),
    }
}

/// Whether `attention` takes a decode step's query heads that share a key head as one block of rows: one query row
/// per head (`q_len` 1), more than one head per key head, and a mask (if any) the same for every head. Their scores
/// are then one product over the keys loaded once, not `n_kv_groups` products of one row; a row's result does not
/// depend on how many sequences decode beside it, as every decode step is grouped alike.
fn decode_groups(q_len: usize, n_kv_groups: usize, mask_heads: Option<usize>) -> bool {
    q_len == 1 && n_kv_groups > 1 && mask_heads.is_none_or(|heads| heads == 1)
}

/// The keys a mask row keeps: from its first to its last entry that is not `-inf` (empty when there is none).
fn live_span(row: &[f32]) -> (usize, usize) {
    match row.iter().position(|m| *m != f32::NEG_INFINITY) {
        Some(first) => (first, row.iter().rposition(|m| *m != f32::NEG_INFINITY).map_or(first, |last| last + 1)),
        None => (0, 0),
    }
}

/// `attention`'s mask argument from an attention mask broadcastable to (b, heads, rows, keys): rank 2
/// (rows, keys), 3 (b, rows, keys) or 4 (b or 1, heads or 1, rows, keys).
fn mask_for_rows(mask: &Tensor, rows: usize, keys: usize) -> Result<(Vec<f32>, usize, usize)> {
    let mask = match mask.rank() {
        2 => mask.reshape((1, 1, rows, keys))?,
        3 => mask.unsqueeze(1)?,
        _ => mask.clone(),
    };
    let (mask_b, mask_heads, mask_rows, mask_keys) = mask.dims4()?;
    let mask = if mask_rows != rows || mask_keys != keys {
        mask.broadcast_as(Shape::from((mask_b, mask_heads, rows, keys)))?
    } else {
        mask
    };
    let values = mask.to_dtype(DType::F32)?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    Ok((values, mask_b, mask_heads))
}
