//! The vendored engine's CPU kernels (`mistralrs_core::cpu_kernels`, vendor/README.md fourteenth change) against
//! what they replace: libm's `expf`, candle's tanh GELU, candle's mask add + softmax over the last dimension, and
//! the linear layers' bias add (seventeenth change).
//! The model-level parity tests (`parity.rs`) run through them too; these pin each kernel on its own, including the
//! edges a model rarely reaches (masked and fully masked rows, saturated GELU inputs).

use candle_core::{DType, Device, Tensor, D};
use mistralrs_core::cpu_kernels::{exp, gelu_tanh, linear, linear_nn, mask_for_rows, MaskedSoftmax};
use mistralrs_quant::{QuantMethod, QuantMethodConfig, UnquantLinear};

#[test]
fn exp_is_within_2e_7_of_libm_and_zero_below_the_normal_range() {
    let mut worst = 0f64;
    let mut x = -87.0f32;
    while x < 88.0 {
        let want = f64::from(x).exp();
        worst = worst.max(((f64::from(exp(x)) - want) / want).abs());
        x += 0.0137;
    }
    assert!(worst < 2e-7, "relative error {worst}");
    assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    assert_eq!(exp(-1e30), 0.0);
    assert_eq!(exp(0.0), 1.0);
}

#[test]
fn gelu_matches_candle_including_saturated_inputs() {
    let xs = Tensor::arange(-4000i64, 4000, &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap().affine(0.005, 0.0).unwrap();
    let ours = gelu_tanh(&xs).unwrap().expect("a contiguous f32 CPU tensor").to_vec1::<f32>().unwrap();
    let theirs = xs.gelu().unwrap().to_vec1::<f32>().unwrap();
    for (a, b) in ours.iter().zip(&theirs) {
        assert!((a - b).abs() <= 1e-6 + 1e-6 * b.abs(), "{a} vs {b}");
    }
    // Not its case: left to candle.
    assert!(gelu_tanh(&xs.to_dtype(DType::F64).unwrap()).unwrap().is_none());
    assert!(gelu_tanh(&xs.reshape((80, 100)).unwrap().t().unwrap()).unwrap().is_none());
}

fn reference_softmax(scores: &Tensor, mask: &Tensor) -> Vec<f32> {
    let x = scores.broadcast_add(mask).unwrap();
    let max = x.max_keepdim(D::Minus1).unwrap();
    let e = x.broadcast_sub(&max).unwrap().exp().unwrap();
    let sum = e.sum_keepdim(D::Minus1).unwrap();
    e.broadcast_div(&sum).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn masked_softmax_matches_candle_for_each_mask_layout() {
    let (b, heads, rows, keys) = (2, 3, 5, 37);
    let scores = Tensor::randn(0f32, 3.0, (b, heads, rows, keys), &Device::Cpu).unwrap();
    let causal: Vec<f32> =
        (0..rows * keys).map(|i| if i % keys > i / keys + 30 { f32::NEG_INFINITY } else { 0.0 }).collect();
    let masks = [
        Tensor::from_vec(causal, (rows, keys), &Device::Cpu).unwrap(),
        Tensor::randn(0f32, 1.0, (b, rows, keys), &Device::Cpu).unwrap().unsqueeze(1).unwrap(),
        Tensor::randn(0f32, 1.0, (1, heads, rows, keys), &Device::Cpu).unwrap(),
    ];
    for mask in &masks {
        let want = reference_softmax(&scores, mask);
        let got = scores.copy().unwrap();
        got.inplace_op1(&MaskedSoftmax { dims: (b, heads, rows, keys), mask: Some(mask_for_rows(mask, rows, keys).unwrap()) })
            .unwrap();
        for (a, w) in got.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().zip(&want) {
            assert!((a - w).abs() < 1e-6, "{a} vs {w} (mask {:?})", mask.dims());
        }
    }
}

#[test]
fn a_fully_masked_row_gets_no_weight() {
    let scores = Tensor::ones((1, 1, 2, 4), DType::F32, &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(vec![0f32, 0.0, 0.0, 0.0, f32::NEG_INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY], (2, 4), &Device::Cpu)
        .unwrap();
    scores.inplace_op1(&MaskedSoftmax { dims: (1, 1, 2, 4), mask: Some(mask_for_rows(&mask, 2, 4).unwrap()) }).unwrap();
    assert_eq!(scores.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0.25, 0.25, 0.25, 0.25, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn linear_layers_give_the_same_bits_as_their_own_forward() {
    let cpu = &Device::Cpu;
    let (w, b) = (Tensor::randn(0f32, 1.0, (48, 32), cpu).unwrap(), Tensor::randn(0f32, 1.0, 48, cpu).unwrap());
    let nn = candle_nn::Linear::new(w.clone(), Some(b.clone()));
    let quant = UnquantLinear::new(QuantMethodConfig::Unquantized(nn.clone())).unwrap();
    // Rank 2, 3 and 4 inputs, as the vision towers pass them, with enough rows to split over the pool.
    for shape in [vec![700, 32], vec![2, 700, 32], vec![2, 3, 50, 32]] {
        let xs = Tensor::randn(0f32, 1.0, shape.as_slice(), cpu).unwrap();
        let want = candle_nn::Module::forward(&nn, &xs).unwrap();
        for got in [linear_nn(&nn, &xs).unwrap(), linear(&quant, &xs).unwrap()] {
            assert_eq!(got.dims(), want.dims());
            let (got, want) = (got.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "shape {shape:?}");
        }
    }
    // Not its case (another dtype, no bias): through the layer as before.
    let xs = Tensor::randn(0f32, 1.0, (5, 32), cpu).unwrap();
    let f64_layer = candle_nn::Linear::new(w.to_dtype(DType::F64).unwrap(), Some(b.to_dtype(DType::F64).unwrap()));
    assert_eq!(linear_nn(&f64_layer, &xs.to_dtype(DType::F64).unwrap()).unwrap().dtype(), DType::F64);
    let no_bias = UnquantLinear::new(QuantMethodConfig::Unquantized(candle_nn::Linear::new(w, None))).unwrap();
    assert_eq!(linear(&no_bias, &xs).unwrap().to_vec2::<f32>().unwrap(), no_bias.forward(&xs).unwrap().to_vec2::<f32>().unwrap());
}
