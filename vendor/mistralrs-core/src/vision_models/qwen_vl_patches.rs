//! Glimpse patch: the Qwen-VL families' `pixel_values` for one image already at its planned size, in one pass.
//!
//! The processors' general path makes, for every image, two same-size `resize_exact` copies, an RGB8 copy, a u8
//! tensor, its f32 conversion, the rescale, the normalisation's subtraction and division, the temporal repeat and
//! the patch permutation: nine full-size buffers, which for a one-megapixel image took longer than decoding the
//! JPEG. This writes each value once, straight into the patch layout, with the same float operations in the same
//! order (`x * (1/255) + 0`, then `- mean`, then `/ std`, all in f32, as candle's `affine`, `broadcast_sub` and
//! `broadcast_div` compute them), so the result is bit-identical.

use candle_core::{Device, Result, Tensor};
use image::RgbImage;

/// Rows of `channels * temporal * patch * patch` values, one per patch, patches ordered by merge window (the
/// layout of `reshape(1, t, c, gh/m, m, p, gw/m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)`), for one image (the
/// temporal axis repeats it). The image's sides must be multiples of `patch * merge`.
pub fn qwen_vl_patches(
    image: &RgbImage,
    mean: [f64; 3],
    std: [f64; 3],
    temporal: usize,
    patch: usize,
    merge: usize,
) -> Result<Tensor> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    if temporal == 0 || patch == 0 || merge == 0 || width % (patch * merge) != 0 || height % (patch * merge) != 0 {
        candle_core::bail!("image {width}x{height} does not divide into patches of {patch} merged by {merge}");
    }
    let rescale = (1.0f64 / 255.0) as f32;
    let mut table = [[0f32; 256]; 3];
    for (c, row) in table.iter_mut().enumerate() {
        for (value, slot) in row.iter_mut().enumerate() {
            let scaled = value as f32 * rescale + 0.0;
            *slot = (scaled - mean[c] as f32) / std[c] as f32;
        }
    }
    let raw = image.as_raw();
    let (grid_h, grid_w) = (height / patch, width / patch);
    let row_len = 3 * temporal * patch * patch;
    let mut out = Vec::with_capacity(grid_h * grid_w * row_len);
    for block_y in 0..grid_h / merge {
        for block_x in 0..grid_w / merge {
            for merge_y in 0..merge {
                for merge_x in 0..merge {
                    let y0 = (block_y * merge + merge_y) * patch;
                    let x0 = (block_x * merge + merge_x) * patch;
                    for (c, lookup) in table.iter().enumerate() {
                        for _ in 0..temporal {
                            for y in y0..y0 + patch {
                                let line = &raw[(y * width + x0) * 3..(y * width + x0 + patch) * 3];
                                out.extend(line.iter().skip(c).step_by(3).map(|&v| lookup[v as usize]));
                            }
                        }
                    }
                }
            }
        }
    }
    Tensor::from_vec(out, (grid_h * grid_w, row_len), &Device::Cpu)
}
