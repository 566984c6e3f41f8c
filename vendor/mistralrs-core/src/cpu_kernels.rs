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

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn gelu_tanh_slice(src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked at run time).
        return unsafe { avx2::gelu_tanh_slice(src, dst) };
    }
    gelu_tanh_slice_generic(src, dst)
}

fn softmax_row(row: &mut [f32], mask: Option<&[f32]>) {
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

/// In place on `scores` (contiguous f32, shape (b, heads, rows, keys)): adds the mask and takes the softmax over the
/// keys, row by row on every core. `mask` is contiguous f32 of shape (mask_b, mask_heads, rows, keys) with
/// mask_b ∈ {1, b} and mask_heads ∈ {1, heads} (broadcast over the other).
pub struct MaskedSoftmax {
    pub dims: (usize, usize, usize, usize),
    pub mask: Option<(Vec<f32>, usize, usize)>,
}

impl InplaceOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "glimpse-masked-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let (b, heads, rows, keys) = self.dims;
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("masked softmax: f32 only")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("masked softmax: scores must be contiguous")
        };
        let data = &mut data[start..end];
        debug_assert_eq!(data.len(), b * heads * rows * keys);
        data.par_chunks_mut(keys).with_min_len((CHUNK / keys.max(1)).max(1)).enumerate().for_each(|(i, row)| {
            let mask_row = self.mask.as_ref().map(|(mask, mask_b, mask_heads)| {
                let (bi, hi, qi) = (i / (heads * rows), (i / rows) % heads, i % rows);
                let index = ((bi % mask_b) * mask_heads + hi % mask_heads) * rows + qi;
                &mask[index * keys..(index + 1) * keys]
            });
            softmax_row(row, mask_row);
        });
        Ok(())
    }
}

/// `MaskedSoftmax`'s mask argument from an attention mask broadcastable to (b, heads, rows, keys): rank 2
/// (rows, keys), 3 (b, rows, keys) or 4 (b or 1, heads or 1, rows, keys).
pub fn mask_for_rows(mask: &Tensor, rows: usize, keys: usize) -> Result<(Vec<f32>, usize, usize)> {
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
