//! `--isq q8_0`'s matrix product on the CPU (vendored candle-core, `quantized/q8_0_rows.rs`, vendor/README.md) against
//! the exact products of what it multiplies: the q8_0 weight's values, and for a decode step's few rows the input as
//! q8_0 rounds it, or for a prompt's many rows the input itself. Candle's own tests of its quantised types do not
//! run on the vendored crate, so the rows, shapes and edges a model reaches are pinned here.

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

/// `x` as q8_0 stores it (each block of 32 rounded to its scale), as f32.
fn q8_0_rounded(x: &Tensor) -> Tensor {
    QTensor::quantize(x, GgmlDType::Q8_0).unwrap().dequantize(&Device::Cpu).unwrap()
}

/// Σ x·w in f64: the exact product of the values given.
fn exact_product(x: &Tensor, w: &Tensor) -> Vec<Vec<f64>> {
    let x = x.to_vec2::<f32>().unwrap();
    let w = w.to_vec2::<f32>().unwrap();
    x.iter()
        .map(|row| w.iter().map(|col| row.iter().zip(col).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()).collect())
        .collect()
}

/// The q8_0 product of `rows` input rows with an `n × k` weight, with the largest difference from the exact product
/// of the weight's q8_0 values and the input (q8_0-rounded below 32 rows, where the product rounds it), relative to
/// the largest exact value.
fn product_error(rows: usize, k: usize, n: usize) -> (Vec<Vec<f32>>, f64) {
    let x = Tensor::from_vec(values(rows * k, 1 + rows as u64), (rows, k), &Device::Cpu).unwrap();
    let w = Tensor::from_vec(values(n * k, 7), (n, k), &Device::Cpu).unwrap();
    let qw = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
    let w_values = qw.dequantize(&Device::Cpu).unwrap();
    let got = QMatMul::from_qtensor(qw).unwrap().forward(&x).unwrap().to_vec2::<f32>().unwrap();
    let x_values = if rows < 32 { q8_0_rounded(&x) } else { x };
    let want = exact_product(&x_values, &w_values);
    let scale = want.iter().flatten().fold(0f64, |a, b| a.max(b.abs()));
    let worst = got.iter().flatten().zip(want.iter().flatten()).fold(0f64, |a, (g, e)| a.max((f64::from(*g) - e).abs()));
    (got, worst / scale)
}

#[test]
fn q8_0_products_match_the_exact_product_for_decode_steps_and_prompts() {
    // k = 576 and 1,536 are SmolVLM-256M's; 96 has an odd number of blocks (the kernel's last block on its own);
    // n = 50 leaves a short last task; 1–31 rows take the q8_0 kernel (pairs and a single row), 32 and 45 the
    // dequantised product.
    for (k, n) in [(576, 192), (1536, 50), (96, 700)] {
        for rows in [1, 2, 3, 4, 7, 31, 32, 45] {
            let (_, error) = product_error(rows, k, n);
            assert!(error < 1e-5, "{rows} rows, k {k}, n {n}: relative error {error}");
        }
    }
}

#[test]
fn a_decoding_sequences_q8_0_product_has_the_bits_it_has_alone() {
    let (k, n) = (576, 300);
    let w = Tensor::from_vec(values(n * k, 11), (n, k), &Device::Cpu).unwrap();
    let layer = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap();
    let x = Tensor::from_vec(values(5 * k, 13), (5, k), &Device::Cpu).unwrap();
    let together = layer.forward(&x).unwrap().to_vec2::<f32>().unwrap();
    for (row, got) in together.iter().enumerate() {
        let alone = layer.forward(&x.narrow(0, row, 1).unwrap()).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(got, &alone[0], "row {row} of 5");
    }
}
