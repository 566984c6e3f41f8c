//! `glimpse ask IMAGE PROMPT --annotate OUT.png` on the committed fixtures (tiny Qwen2.5-VL, tiny SAM): the
//! printed answer is Gemini detections, and the PNG has each box drawn where the JSON says and nothing drawn
//! away from the boxes. (Exact edge pixels for known boxes and masks: the unit test in src/annotate.rs.)

use std::path::PathBuf;
use std::process::Command;

use glimpse_core::grounding::{gemini_box_to_pixels, pixel_crop};
use serde_json::Value;

const DETECT: &str =
    "Detect the all of the prominent items in the image. The box_2d should be [ymin, xmin, ymax, xmax] normalized to 0-1000.";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ask(image: &str, extra: &[&str], out: &std::path::Path) -> Vec<Value> {
    let root = root();
    let output = Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(["ask", image, DETECT, "--cpu", "--max-tokens", "3000", "--annotate"])
        .arg(out)
        .arg("--model")
        .arg(root.join("fixtures/models/qwen2_5_vl-tiny"))
        .args(extra)
        .current_dir(&root)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("running glimpse ask");
    assert!(output.status.success(), "glimpse ask failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the answer is JSON")
}

#[test]
fn annotated_boxes_sit_where_the_json_says() {
    let dir = std::env::temp_dir().join(format!("glimpse-annotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("boxes.png");
    let image = "fixtures/images/odd_150x100.png";
    let items = ask(image, &[], &out);
    assert!(!items.is_empty());
    let original = image::open(root().join(image)).unwrap().to_rgb8();
    let drawn = image::open(&out).unwrap().to_rgb8();
    assert_eq!(drawn.dimensions(), original.dimensions());

    let size = drawn.dimensions();
    // Every box's bottom-right corner carries some box colour; outside all boxes the image is untouched.
    let boxes: Vec<(u32, u32, u32, u32)> = items
        .iter()
        .map(|item| {
            let b: Vec<i64> = item["box_2d"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            pixel_crop(gemini_box_to_pixels([b[0], b[1], b[2], b[3]], size), size)
        })
        .collect();
    for &(bx0, by0, bx1, by1) in &boxes {
        let corner = drawn.get_pixel(bx1 - 1, by1 - 1);
        assert_ne!(corner, original.get_pixel(bx1 - 1, by1 - 1), "box ({bx0},{by0})-({bx1},{by1}) is not drawn");
    }
    // A label sits above its box's left corner (inside it when the box touches the top) and may be wider.
    let label_band = 40;
    for (x, y, pixel) in drawn.enumerate_pixels() {
        let near_box = boxes.iter().any(|&(bx0, by0, bx1, by1)| {
            let in_box = x + 1 >= bx0 && x <= bx1 && y + 1 >= by0 && y <= by1;
            let in_label = x >= bx0 && y + label_band >= by0 && y <= by0 + label_band;
            in_box || in_label
        });
        if !near_box {
            assert_eq!(pixel, original.get_pixel(x, y), "pixel ({x}, {y}) outside every box changed");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn masks_are_drawn_inside_their_boxes() {
    let dir = std::env::temp_dir().join(format!("glimpse-annotate-masks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("masks.png");
    let segment = root().join("fixtures/models/sam-tiny");
    let image = "fixtures/images/blue_circle_112x56.png";
    let root = root();
    let output = Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(["ask", image, "Give the segmentation masks. Output a JSON list with the key \"box_2d\", the segmentation mask in key \"mask\", and the label.", "--cpu", "--max-tokens", "3000", "--annotate"])
        .arg(&out)
        .arg("--model")
        .arg(root.join("fixtures/models/qwen2_5_vl-tiny"))
        .arg("--mask-model")
        .arg(&segment)
        .current_dir(&root)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("running glimpse ask");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let items: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(!items.is_empty() && items.iter().all(|i| i["mask"].as_str().unwrap().starts_with("data:image/png;base64,")));
    let drawn = image::open(&out).unwrap().to_rgb8();
    let original = image::open(root.join(image)).unwrap().to_rgb8();
    assert_ne!(drawn, original);
    std::fs::remove_dir_all(&dir).ok();
}
