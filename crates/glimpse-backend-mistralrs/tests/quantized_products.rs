//! `--isq`'s matrix products on the CPU (vendored candle-core: `quantized/q8_0_rows.rs` for q8_0, the AVX2 q4_1 dot
//! product in `quantized/avx.rs`, `quantized/dequantised_rows.rs` for a prompt's many rows; vendor/README.md) against
//! the exact products of what they multiply: the weight's quantised values, and for a decode step's few rows the
//! input as the product rounds it, or for a prompt's many rows the input itself. Candle's own tests of its quantised
//! types do not run on the vendored crate, so the rows, shapes and edges a model reaches are pinned here.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

/// Deterministic values in [-1, 1) with a few larger ones, so that blocks get different scales.
fn values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            if i % 97 == 0 { unit * 8.0 } else { unit }
        })
        .collect()
}

/// `x` as a decode step's product rounds it before the dot products: q8_0 for q8_0 weights, and for q4_1 weights
/// q8_1, whose values and scale are q8_0's (q8_1 adds its blocks' sums, which candle cannot dequantise); q8k for
/// the k-quants.
fn input_rounded(x: &Tensor, weight: GgmlDType) -> Tensor {
    let dot_type = match weight {
        GgmlDType::Q4K => GgmlDType::Q8K,
        _ => GgmlDType::Q8_0,
    };
    QTensor::quantize(x, dot_type).unwrap().dequantize(&Device::Cpu).unwrap()
}

/// Σ x·w in f64: the exact product of the values given.
fn exact_product(x: &Tensor, w: &Tensor) -> Vec<Vec<f64>> {
    let x = x.to_vec2::<f32>().unwrap();
    let w = w.to_vec2::<f32>().unwrap();
    x.iter()
        .map(|row| w.iter().map(|col| row.iter().zip(col).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()).collect())
        .collect()
}

/// The `dtype` product of `rows` input rows with an `n × k` weight, with the largest difference from the exact product
/// of the weight's quantised values and the input (rounded below 32 rows, where the product rounds it), relative to
/// the largest exact value.
fn product_error(dtype: GgmlDType, rows: usize, k: usize, n: usize) -> (Vec<Vec<f32>>, f64) {
    let x = Tensor::from_vec(values(rows * k, 1 + rows as u64), (rows, k), &Device::Cpu).unwrap();
    let w = Tensor::from_vec(values(n * k, 7), (n, k), &Device::Cpu).unwrap();
    let qw = QTensor::quantize(&w, dtype).unwrap();
    let w_values = qw.dequantize(&Device::Cpu).unwrap();
    let got = QMatMul::from_qtensor(qw).unwrap().forward(&x).unwrap().to_vec2::<f32>().unwrap();
    let x_values = if rows < 32 { input_rounded(&x, dtype) } else { x };
    let want = exact_product(&x_values, &w_values);
    let scale = want.iter().flatten().fold(0f64, |a, b| a.max(b.abs()));
    let worst = got.iter().flatten().zip(want.iter().flatten()).fold(0f64, |a, (g, e)| a.max((f64::from(*g) - e).abs()));
    (got, worst / scale)
}

#[test]
fn q8_0_products_match_the_exact_product_for_decode_steps_and_prompts() {
    // k = 576 and 1,536 are SmolVLM-256M's; 96 has an odd number of blocks (the kernel's last block on its own);
    // n = 50 leaves a short last task; 1–31 rows take the q8_0 kernel (pairs and a single row), 32, 45 and 300 the
    // dequantised product; over a large weight (2,048 × 2,048) that product reads the weight in place up to 160
    // rows (45: padded to 48 for gemm), and packs it from 161.
    for (k, n, rows) in [
        (576, 192, &[1, 2, 3, 4, 7, 31, 32, 45, 300][..]),
        (1536, 50, &[1, 2, 3, 4, 7, 31, 32, 45, 300]),
        (96, 700, &[1, 2, 3, 4, 7, 31, 32, 45, 300]),
        (2048, 2048, &[1, 32, 45, 160, 161]),
    ] {
        for &rows in rows {
            let (_, error) = product_error(GgmlDType::Q8_0, rows, k, n);
            assert!(error < 1e-5, "{rows} rows, k {k}, n {n}: relative error {error}");
        }
    }
}

#[test]
fn q4_1_and_q4k_products_match_the_exact_product_for_decode_steps_and_prompts() {
    // `--isq q4k` on SmolVLM-256M: q4_1 for the 576-wide matrices (576 is no multiple of q4k's 256), q4k for the
    // 1,536-wide down projection. Below 32 rows q4_1 takes the AVX2 dot product with q8_1 inputs, whose block sums
    // are f16 (about 3 significant digits: the bound is looser); q4k candle's AVX2 dot product with q8k inputs; from
    // 32 rows both the dequantised gemm product.
    for (dtype, k, n, bound) in [
        (GgmlDType::Q4_1, 576, 192, 2e-3),
        (GgmlDType::Q4_1, 96, 700, 2e-3),
        (GgmlDType::Q4K, 1536, 50, 1e-5),
        (GgmlDType::Q4K, 256, 300, 1e-5),
    ] {
        for rows in [1, 2, 3, 31, 32, 45] {
            let (_, error) = product_error(dtype, rows, k, n);
            let bound = if rows < 32 { bound } else { 1e-5 };
            assert!(error < bound, "{dtype:?}, {rows} rows, k {k}, n {n}: relative error {error}");
        }
    }
}

#[test]
fn a_decoding_sequences_quantised_product_has_the_bits_it_has_alone() {
    let (k, n) = (768, 300);
    let w = Tensor::from_vec(values(n * k, 11), (n, k), &Device::Cpu).unwrap();
    let x = Tensor::from_vec(values(5 * k, 13), (5, k), &Device::Cpu).unwrap();
    for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_1, GgmlDType::Q4K] {
        let layer = QMatMul::from_qtensor(QTensor::quantize(&w, dtype).unwrap()).unwrap();
        let together = layer.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        for (row, got) in together.iter().enumerate() {
            let alone = layer.forward(&x.narrow(0, row, 1).unwrap()).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(got, &alone[0], "{dtype:?}: row {row} of 5");
        }
    }
}
