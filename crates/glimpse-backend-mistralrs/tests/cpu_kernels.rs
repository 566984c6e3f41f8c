//! The vendored engine's CPU kernels (`mistralrs_core::cpu_kernels`, vendor/README.md fourteenth change) against
//! what they replace: libm's `expf`, candle's tanh GELU, the linear layers' bias add (seventeenth change), and the
//! prompt step's attention as products, mask add and candle's softmax (eighteenth change).
//! The model-level parity tests (`parity.rs`) run through them too; these pin each kernel on its own, including the
//! edges a model rarely reaches (masked and fully masked rows, saturated GELU inputs).

use candle_core::{DType, Device, Tensor, D};
use candle_core::cpu::product_layout::weight_in_place;
use mistralrs_core::cpu_kernels::{attention, exp, few_rows, gelu_tanh, linear, linear_nn, linear_unbiased};
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

/// Attention as the general path computes it: keys and values repeated per query head, one product for the scores,
/// the mask added, candle's softmax, a second product.
fn reference_attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, scale: f64, groups: usize) -> Vec<f32> {
    let repeat = |x: &Tensor| {
        let (b, heads, len, d) = x.dims4().unwrap();
        Tensor::cat(&vec![x; groups], 2).unwrap().reshape((b, heads * groups, len, d)).unwrap()
    };
    let (k, v) = (repeat(k), repeat(v));
    let mut scores = (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap();
    if let Some(mask) = mask {
        scores = scores.broadcast_add(mask).unwrap();
    }
    let max = scores.max_keepdim(D::Minus1).unwrap();
    let e = scores.broadcast_sub(&max).unwrap().exp().unwrap();
    let probs = e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap();
    probs.matmul(&v.contiguous().unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn fused(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, scale: f64, groups: usize) -> Vec<f32> {
    let out = attention(q, k, v, mask, scale as f32, groups).unwrap().expect("f32 tensors on the CPU");
    assert_eq!(out.dims(), q.dims());
    out.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// (rows, keys) with `-inf` where `masked(row, key)`.
fn mask_where(rows: usize, keys: usize, masked: impl Fn(usize, usize) -> bool) -> Tensor {
    let values = (0..rows * keys).map(|i| if masked(i / keys, i % keys) { f32::NEG_INFINITY } else { 0.0 }).collect();
    Tensor::from_vec(values, (rows, keys), &Device::Cpu).unwrap()
}

#[test]
fn fused_attention_matches_the_general_path_for_each_mask_layout() {
    let cpu = &Device::Cpu;
    // 70 query rows: a block of 64 and a short one; grouped queries (6 heads on 2 key heads); a prompt continuing
    // after 80 cached keys.
    let (b, heads, kv_heads, rows, keys, d) = (2, 6, 2, 70, 150, 16);
    let q = Tensor::randn(0f32, 1.0, (b, heads, rows, d), cpu).unwrap();
    let k = Tensor::randn(0f32, 1.0, (b, kv_heads, keys, d), cpu).unwrap();
    let v = Tensor::randn(0f32, 1.0, (b, kv_heads, keys, d), cpu).unwrap();
    let scale = 0.25;
    let masks = [
        None,
        Some(mask_where(rows, keys, |r, key| key > r + 80)),
        // A sliding window of 20: keys masked on both sides.
        Some(mask_where(rows, keys, |r, key| key > r + 80 || key + 20 < r + 80)),
        Some(Tensor::randn(0f32, 1.0, (b, rows, keys), cpu).unwrap().unsqueeze(1).unwrap()),
        Some(Tensor::randn(0f32, 1.0, (1, heads, rows, keys), cpu).unwrap()),
        // One row for every query (a padding mask).
        Some(mask_where(1, keys, |_, key| key < 5).reshape((1, 1, 1, keys)).unwrap()),
    ];
    for mask in &masks {
        let want = reference_attention(&q, &k, &v, mask.as_ref(), scale, heads / kv_heads);
        let got = fused(&q, &k, &v, mask.as_ref(), scale, heads / kv_heads);
        for (a, w) in got.iter().zip(&want) {
            assert!((a - w).abs() < 1e-5, "{a} vs {w} (mask {:?})", mask.as_ref().map(|m| m.dims().to_vec()));
        }
    }
}

#[test]
fn a_decode_step_agrees_with_the_general_path_and_each_sequence_gets_the_bits_it_gets_alone() {
    let cpu = &Device::Cpu;
    // One query row per sequence, 6 heads on 2 key heads (taken as blocks of 3 rows), sequences of different lengths
    // padded on the left (a (b, 1, 1, keys) mask), and a mask that differs per head (not grouped).
    let (b, heads, kv_heads, keys, d) = (5, 6, 2, 37, 16);
    let q = Tensor::randn(0f32, 1.0, (b, heads, 1, d), cpu).unwrap();
    // Keys and values as a cache holds them: room for 50 positions, narrowed to the 37 written (read in place).
    let cache = || Tensor::randn(0f32, 1.0, (b, kv_heads, 50, d), cpu).unwrap().narrow(2, 0, keys).unwrap();
    let (k, v) = (cache(), cache());
    assert!(!k.is_contiguous());
    let padding = mask_where(b, keys, |sequence, key| key < 3 * sequence).reshape((b, 1, 1, keys)).unwrap();
    let per_head = Tensor::randn(0f32, 1.0, (1, heads, 1, keys), cpu).unwrap();
    for mask in [None, Some(&padding), Some(&per_head)] {
        let want = reference_attention(&q, &k, &v, mask, 0.25, heads / kv_heads);
        let got = fused(&q, &k, &v, mask, 0.25, heads / kv_heads);
        for (a, w) in got.iter().zip(&want) {
            assert!((a - w).abs() < 1e-5, "{a} vs {w} (mask {:?})", mask.map(|m| m.dims().to_vec()));
        }
    }
    let together = fused(&q, &k, &v, Some(&padding), 0.25, heads / kv_heads);
    for (sequence, got) in together.chunks(heads * d).enumerate() {
        let one = |t: &Tensor| t.narrow(0, sequence, 1).unwrap();
        let alone = fused(&one(&q), &one(&k), &one(&v), Some(&one(&padding)), 0.25, heads / kv_heads);
        assert!(got.iter().zip(&alone).all(|(a, b)| a.to_bits() == b.to_bits()), "sequence {sequence} differs from its step alone");
    }
}

#[test]
fn fused_attention_over_many_keys_uses_smaller_blocks_and_agrees() {
    // 4,000 keys: blocks of 49 rows (the scores of a block stay under 768 KiB).
    let cpu = &Device::Cpu;
    let q = Tensor::randn(0f32, 1.0, (1, 2, 100, 8), cpu).unwrap();
    let k = Tensor::randn(0f32, 1.0, (1, 2, 4000, 8), cpu).unwrap();
    let v = Tensor::randn(0f32, 1.0, (1, 2, 4000, 8), cpu).unwrap();
    let mask = mask_where(100, 4000, |r, key| key > r + 3900);
    let want = reference_attention(&q, &k, &v, Some(&mask), 0.3, 1);
    for (a, w) in fused(&q, &k, &v, Some(&mask), 0.3, 1).iter().zip(&want) {
        assert!((a - w).abs() < 1e-5, "{a} vs {w}");
    }
}

#[test]
fn fully_masked_rows_and_blocks_get_no_weight() {
    let cpu = &Device::Cpu;
    let (rows, keys, d) = (80, 10, 4);
    let q = Tensor::ones((1, 1, rows, d), DType::F32, cpu).unwrap();
    let k = Tensor::ones((1, 1, keys, d), DType::F32, cpu).unwrap();
    let v = Tensor::arange(0f32, (keys * d) as f32, cpu).unwrap().reshape((1, 1, keys, d)).unwrap();
    // Row 1 sees nothing; rows 64.. (the whole second block) see nothing; the others see every key.
    let mask = mask_where(rows, keys, |r, _| r == 1 || r >= 64);
    let got = fused(&q, &k, &v, Some(&mask), 1.0, 1);
    let mean: Vec<f32> = (0..d).map(|c| (0..keys).map(|key| (key * d + c) as f32).sum::<f32>() / keys as f32).collect();
    for (r, row) in got.chunks(d).enumerate() {
        if r == 1 || r >= 64 {
            assert_eq!(row, &[0.0; 4][..], "row {r}");
        } else {
            for (a, m) in row.iter().zip(&mean) {
                assert!((a - m).abs() < 1e-4, "row {r}: {a} vs {m}");
            }
        }
    }
}

#[test]
fn fused_attention_leaves_other_dtypes_to_the_general_path() {
    let q = Tensor::zeros((1, 1, 4, 8), DType::F16, &Device::Cpu).unwrap();
    assert!(attention(&q, &q, &q, None, 1.0, 1).unwrap().is_none());
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

#[test]
fn a_few_sequences_decoding_together_match_the_layer_and_get_the_bits_they_get_alone() {
    let cpu = &Device::Cpu;
    let to_vec = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // A language model's shapes, small: one thread (a length that is no multiple of the vector width), and enough
    // work to be split over the pool; and a large one (Qwen's 2,048 × 2,048). Rows the few-rows product takes
    // (`fits`: up to 8 with AVX2, 32 with AVX-512) get the bits they get alone up to 8 rows, and from 9 (AVX-512:
    // the rows as a vector's lanes) those they get among 32; other rows up to `product_layout`'s count go to gemm's
    // column-major product (within rounding), more to candle's (the same bits). A long input (a down projection's
    // 6,150) takes the lanes kernel where the dot products' input bound sends it to gemm.
    for (outputs, hidden, most_rows) in [(300, 97, 60), (1100, 520, 60), (2048, 2048, 170), (100, 6150, 40)] {
        let w = Tensor::randn(0f32, 1.0, (outputs, hidden), cpu).unwrap();
        let layer = UnquantLinear::new(QuantMethodConfig::Unquantized(candle_nn::Linear::new(w, None))).unwrap();
        // Decode steps come as (sequences, 1, hidden).
        let inputs = Tensor::randn(0f32, 1.0, (most_rows, 1, hidden), cpu).unwrap();
        let alone: Vec<Vec<f32>> =
            (0..32).map(|i| to_vec(&linear_unbiased(&layer, &inputs.narrow(0, i, 1).unwrap()).unwrap())).collect();
        let among_32 = to_vec(&linear_unbiased(&layer, &inputs.narrow(0, 0, 32).unwrap()).unwrap());
        for rows in [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 48, 49, 60, 160, 161, 170].into_iter().filter(|&r| r <= most_rows) {
            let xs = inputs.narrow(0, 0, rows).unwrap();
            let want = layer.forward(&xs).unwrap();
            let got = linear_unbiased(&layer, &xs).unwrap();
            assert_eq!(got.dims(), want.dims());
            let (got, want) = (to_vec(&got), to_vec(&want));
            if !weight_in_place(rows, outputs, hidden) {
                assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{rows} rows: candle's product");
                continue;
            }
            // Another order of additions: within f32 rounding over `hidden` terms of about 1 (the outputs are ~√hidden).
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-6 * hidden as f32, "{outputs}x{hidden}, {rows} rows: {worst:e} from candle's product");
            if !few_rows::fits(rows, hidden) {
                continue;
            }
            for (i, row) in got.chunks(outputs).enumerate() {
                let (reference, among) = if few_rows::as_lanes(rows) {
                    assert!(few_rows::fits(32, hidden) && few_rows::as_lanes(32));
                    (&among_32[i * outputs..(i + 1) * outputs], "among 32")
                } else {
                    (&alone[i][..], "alone")
                };
                assert!(row.iter().zip(reference).all(|(a, b)| a.to_bits() == b.to_bits()), "{rows} rows: row {i} differs from its product {among}");
            }
        }
    }
    // A layer with its bias inside the weight's layer is not this function's case: through the layer, bias included.
    let w = Tensor::randn(0f32, 1.0, (300, 96), cpu).unwrap();
    let biased = UnquantLinear::new(QuantMethodConfig::Unquantized(candle_nn::Linear::new(w, Some(Tensor::ones(300, DType::F32, cpu).unwrap()))))
        .unwrap();
    let xs = Tensor::randn(0f32, 1.0, (4, 1, 96), cpu).unwrap();
    assert_eq!(
        linear_unbiased(&biased, &xs).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        biased.forward(&xs).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}
