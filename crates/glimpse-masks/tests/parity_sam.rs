//! The committed random-weight SAM (fixtures/models/sam-tiny: ViT encoder) and MobileSAM
//! (fixtures/models/mobile-sam-tiny: TinyViT-5M encoder) against Meta's `segment-anything` `SamPredictor` on
//! the same checkpoints (fixtures/expected/*.safetensors, written by scripts/fixtures/make_tiny_sam.py): box
//! prompts, one mask each.
//!
//! Tolerances: the decoder's 256×256 logits within 1e-3 (float32 in both; measured 2.0e-4), the predicted IoU
//! within 1e-4, and the full-size 0–255 probability maps equal within 1 level on all but 0.1 % of pixels
//! (sigmoid rounding at .5 boundaries), never off by more than 2.

use std::path::PathBuf;

use glimpse_core::grounding::{pixel_crop, MaskModel};
use glimpse_masks::SamMasks;
use safetensors::SafeTensors;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn floats(tensors: &SafeTensors, name: &str) -> Vec<f32> {
    let view = tensors.tensor(name).unwrap();
    view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn sam_vit_box_masks_match_segment_anything() {
    check("sam-tiny");
}

/// MobileSAM: the TinyViT-5M encoder (reference: the MobileSAM port in ultralytics, see the script).
#[test]
fn mobile_sam_box_masks_match_the_reference() {
    check("mobile-sam-tiny");
}

fn check(name: &str) {
    let root = root();
    let model = SamMasks::load(&root.join("fixtures/models").join(name)).unwrap();
    let image = image::open(root.join("fixtures/images/sam_scene_1024x768.png")).unwrap();
    let bytes = std::fs::read(root.join(format!("fixtures/expected/{name}.safetensors"))).unwrap();
    let expected = SafeTensors::deserialize(&bytes).unwrap();
    let boxes: Vec<[f64; 4]> =
        floats(&expected, "boxes").chunks(4).map(|b| [b[0] as f64, b[1] as f64, b[2] as f64, b[3] as f64]).collect();
    let low_res = floats(&expected, "low_res_logits");
    let iou = floats(&expected, "iou");
    let probability = expected.tensor("probability").unwrap().data().to_vec();

    let got = model.segment(&image, &boxes).unwrap();
    let plane = 256 * 256;
    let pixels = (image.width() * image.height()) as usize;
    for (i, seg) in got.iter().enumerate() {
        let want = &low_res[i * plane..(i + 1) * plane];
        let max_logit = seg.low_res_logits.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let spread = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        println!("{name} box {i}: max |Δ logit| {max_logit:.2e} (|logit| up to {spread:.2}), iou {} vs {}", seg.predicted_iou, iou[i]);
        assert!(max_logit < 1e-3, "box {i}: logits differ by {max_logit}");
        assert!((seg.predicted_iou - iou[i]).abs() < 1e-4);

        let want = &probability[i * pixels..(i + 1) * pixels];
        let diffs: Vec<i32> = seg.probability.as_raw().iter().zip(want).map(|(a, b)| (*a as i32 - *b as i32).abs()).collect();
        let off = diffs.iter().filter(|d| **d > 1).count();
        let worst = diffs.iter().max().copied().unwrap_or(0);
        println!("{name} box {i}: probability maps: {off} of {pixels} pixels off by more than 1, worst {worst}");
        assert!(off * 1000 <= pixels && worst <= 2, "box {i}: {off} pixels off by > 1, worst {worst}");
    }

    // What the server sends: each mask is the box's crop of the probability map.
    let crops = model.box_masks(&image, &boxes).unwrap();
    for ((crop, seg), b) in crops.iter().zip(&got).zip(&boxes) {
        let (x0, y0, x1, y1) = pixel_crop(*b, (image.width(), image.height()));
        assert_eq!((crop.width(), crop.height()), (x1 - x0, y1 - y0));
        assert_eq!(crop.get_pixel(0, 0), seg.probability.get_pixel(x0, y0));
    }
}
