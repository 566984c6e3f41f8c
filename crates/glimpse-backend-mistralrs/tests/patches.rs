//! The Qwen-VL processors' one-pass `pixel_values` (vendored mistralrs-core, `qwen_vl_patches`) against their
//! general path as released (two same-size resizes, `ToTensor`, `Normalize`, repeat, patch permutation): equal
//! bit for bit, for the two families' normalisations and for images with more than one merge window per side.

use candle_core::{Device, Tensor};
use image::imageops::FilterType;
use image::{DynamicImage, Rgb, RgbImage};
use mistralrs_vision::{ApplyTensorTransforms, ApplyTransforms, Normalize, TensorTransforms, ToTensor, Transforms};

/// mistralrs 0.8.1's `preprocess_inner` for one image already at its size.
fn general_path(image: &RgbImage, mean: [f64; 3], std: [f64; 3], temporal: usize, patch: usize, merge: usize) -> Tensor {
    let device = Device::Cpu;
    let (w, h) = image.dimensions();
    let image = DynamicImage::ImageRgb8(image.clone()).resize_exact(w, h, FilterType::CatmullRom);
    let image = DynamicImage::ImageRgb8(image.to_rgb8()).resize_exact(w, h, FilterType::CatmullRom);
    let tensor = image.apply(Transforms { input: &ToTensor, inner_transforms: &[] }, &device).unwrap();
    let normalize = Normalize { mean: mean.to_vec(), std: std.to_vec() };
    let tensor =
        <Tensor as ApplyTensorTransforms>::apply(&tensor, TensorTransforms { inner_transforms: &[&normalize] }, &device).unwrap();
    let patches = Tensor::stack(&[tensor], 0).unwrap().repeat((temporal, 1, 1, 1)).unwrap();
    let (grid_h, grid_w) = (h as usize / patch, w as usize / patch);
    patches
        .reshape(&[1, temporal, 3, grid_h / merge, merge, patch, grid_w / merge, merge, patch])
        .unwrap()
        .permute([0, 3, 6, 4, 7, 2, 1, 5, 8])
        .unwrap()
        .reshape((grid_h * grid_w, 3 * temporal * patch * patch))
        .unwrap()
}

#[test]
fn one_pass_patches_equal_the_general_path_bit_for_bit() {
    let clip = ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]);
    let half = ([0.5; 3], [0.5; 3]);
    for ((mean, std), (width, height), patch) in [(clip, (84, 56), 14), (half, (96, 64), 16), (clip, (28, 28), 14)] {
        let image = RgbImage::from_fn(width, height, |x, y| Rgb([(x * 7 + y) as u8, (y * 13) as u8, (x ^ y) as u8]));
        let fast = mistralrs_core::qwen_vl_patches(&image, mean, std, 2, patch, 2).unwrap();
        let reference = general_path(&image, mean, std, 2, patch, 2);
        assert_eq!(fast.dims(), reference.dims());
        let (a, b) = (fast.flatten_all().unwrap().to_vec1::<f32>().unwrap(), reference.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let first_difference = a.iter().zip(&b).position(|(x, y)| x.to_bits() != y.to_bits());
        assert_eq!(first_difference, None, "{width}x{height}, patch {patch}");
    }
}
