//! The toolkit's models on real photographs: the classic darknet test images (Debian package `darknet`,
//! unpacked into fixtures/photos by scripts/setup-deps.sh) with object boxes checked by hand (`fixtures/expected/toolkit/
//! hand_boxes.json`), and a rendered text line. The toolkit's Rust preprocessing is also held to onnxruntime
//! running the same files in Python (`fixtures/expected/toolkit/reference.json`, scripts/toolkit/
//! reference_outputs.py). Every check runs on both runtimes: ONNX Runtime (the library scripts/setup-deps.sh fetches)
//! and tract, the fallback.

use std::path::PathBuf;
use std::sync::OnceLock;

use glimpse_backend_toolkit::geometry::PixelBox;
use glimpse_backend_toolkit::{Runtime, Toolkit, DETECTION_MIN_SCORE};
use glimpse_core::grounding::MaskModel;
use image::DynamicImage;
use serde_json::Value;


fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The toolkit on each runtime, loaded once.
fn toolkits() -> &'static [Toolkit] {
    static TOOLKITS: OnceLock<Vec<Toolkit>> = OnceLock::new();
    TOOLKITS.get_or_init(|| {
        let dir = root().join("models/toolkit");
        let onnxruntime = Runtime::onnxruntime(&dir).expect("ONNX Runtime loads (scripts/toolkit/fetch-onnxruntime.sh)");
        [onnxruntime, Runtime::Tract].into_iter().map(|r| Toolkit::load_on(r, &dir).expect("the toolkit models load")).collect()
    })
}

fn photo(name: &str) -> DynamicImage {
    let path = root().join("fixtures/photos").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (scripts/setup-deps.sh unpacks Debian's darknet photos)", path.display()));
    glimpse_core::media::decode_image(&bytes, None, &Default::default()).expect("decodes").image
}

fn json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(path)).expect(path)).expect(path)
}

fn pixel_box(v: &Value) -> PixelBox {
    let b: Vec<f32> = v.as_array().expect("box").iter().map(|x| x.as_f64().expect("number") as f32).collect();
    PixelBox { x0: b[0], y0: b[1], x1: b[2], y1: b[3] }
}

/// Every hand-checked object is found: a detection of an accepted class overlapping it with IoU ≥ 0.5.
#[test]
fn the_detector_finds_the_hand_checked_objects() {
    for toolkit in toolkits() {
        let expected = json("fixtures/expected/toolkit/hand_boxes.json");
        for (image, objects) in expected.as_object().expect("images") {
            let found = toolkit.detector().detect(&photo(image), DETECTION_MIN_SCORE).expect("detects");
            for object in objects.as_array().expect("objects").iter().filter(|o| o.get("masks_only").is_none()) {
                let accepted: Vec<&str> = object["labels"].as_array().expect("labels").iter().filter_map(Value::as_str).collect();
                let truth = pixel_box(&object["box"]);
                let best = found.iter().filter(|d| accepted.contains(&d.label.as_str())).map(|d| d.bbox.iou(&truth)).fold(0.0, f32::max);
                assert!(best >= 0.5, "{:?} {image}: no {accepted:?} over {truth:?} (best IoU {best:.2}); found {found:#?}", toolkit.runtime());
            }
        }
    }
}

/// Same raw detections as onnxruntime on the same ONNX file with the same preprocessing (scores within 0.02,
/// boxes overlapping by IoU > 0.9: the two resizers round differently).
#[test]
fn detections_match_onnxruntime() {
    for toolkit in toolkits() {
        let reference = json("fixtures/expected/toolkit/reference.json");
        for (image, expected) in reference["images"].as_object().expect("images") {
            let found = toolkit.detector().raw_detections(&photo(image), 0.15).expect("detects");
            for want in expected["centernet"].as_array().expect("detections") {
                let (label, score) = (want["label"].as_str().expect("label"), want["score"].as_f64().expect("score") as f32);
                let truth = pixel_box(&want["box"]);
                let hit = found.iter().find(|d| d.label == label && d.bbox.iou(&truth) > 0.9);
                let hit = hit.unwrap_or_else(|| panic!("{image}: onnxruntime's {label} {score:.3} {truth:?} is missing from {found:#?}"));
                assert!((hit.score - score).abs() < 0.02, "{image}: {label} scores {} here, {score} in onnxruntime", hit.score);
            }
        }
    }
}

/// The top 5 of onnxruntime with probabilities within 0.04: Pillow's and `fast_image_resize`'s bilinear
/// downscaling round differently (every pixel within one level, 0.16 levels on average on dog.jpg), and this
/// classifier is that sensitive (measured: 0.432 here, 0.424 with the `image` crate's resampler, 0.401 for German
/// shepherd in Pillow).
#[test]
fn the_classifier_top5_holds_the_right_class() {
    for toolkit in toolkits() {
        let reference = json("fixtures/expected/toolkit/reference.json");
        let top = toolkit.classifier().classify(&photo("dog.jpg"), 5).expect("classifies");
        let labels: Vec<&str> = top.iter().map(|c| c.label.as_str()).collect();
        assert!(labels.iter().any(|l| ["German shepherd", "malamute", "Eskimo dog", "Siberian husky", "Border collie"].contains(l)), "{top:?}");
        // Classes above 5% keep their rank; the near-ties below (about 2% each) may swap.
        for (rank, want) in reference["images"]["dog.jpg"]["efficientnet_top5"].as_array().expect("top5").iter().enumerate() {
            let (label, p) = (want["label"].as_str().expect("label"), want["prob"].as_f64().expect("p"));
            let got = top.iter().position(|c| c.label == label).unwrap_or_else(|| panic!("{label} is not in {top:?}"));
            assert!(p < 0.05 || got == rank, "{label} ranks {got} here, {rank} in onnxruntime: {top:?}");
            assert!((top[got].probability as f64 - p).abs() < 0.04, "{top:?} vs {want}");
        }
        let zebra = toolkit.classifier().classify(&photo("giraffe.jpg"), 5).expect("classifies");
        assert!(zebra.iter().any(|c| c.label == "zebra"), "{zebra:?}");
    }
}

#[test]
fn ocr_reads_a_rendered_line_exactly() {
    for toolkit in toolkits() {
        let path = root().join("fixtures/images/ocr_line.png");
        let image = image::open(&path).expect("ocr_line.png");
        let lines = toolkit.reader().read(&image).expect("reads");
        assert_eq!(glimpse_backend_toolkit::ocr::as_text(&lines), "Glimpse reads 42 words", "{lines:?}");
    }
}

/// The rendered line cut tight around its ink (no margin: the detector needs one, the reader adds it), turned by
/// 4° (read from a turned crop, not an axis-aligned box that takes in the neighbours), and seven of them stacked
/// as a page (every line, in order).
#[test]
fn ocr_reads_tight_turned_and_stacked_lines() {
    let line = image::open(root().join("fixtures/images/ocr_line.png")).expect("ocr_line.png").to_rgb8();
    let ink: Vec<(u32, u32)> = line.enumerate_pixels().filter(|(_, _, p)| p.0.iter().all(|&c| c < 128)).map(|(x, y, _)| (x, y)).collect();
    let (x0, y0) = (ink.iter().map(|p| p.0).min().expect("ink"), ink.iter().map(|p| p.1).min().expect("ink"));
    let (x1, y1) = (ink.iter().map(|p| p.0).max().expect("ink") + 1, ink.iter().map(|p| p.1).max().expect("ink") + 1);
    let tight = image::imageops::crop_imm(&line, x0, y0, x1 - x0, y1 - y0).to_image();
    let mut canvas = image::RgbImage::from_pixel(line.width() + 80, line.height() + 80, image::Rgb([255, 255, 255]));
    image::imageops::replace(&mut canvas, &line, 40, 40);
    let turned = imageproc::geometric_transformations::rotate_about_center(
        &canvas,
        4f32.to_radians(),
        imageproc::geometric_transformations::Interpolation::Bilinear,
        image::Rgb([255, 255, 255]),
    );
    let mut page = image::RgbImage::from_pixel(line.width(), line.height() * 7, image::Rgb([255, 255, 255]));
    for i in 0..7 {
        image::imageops::replace(&mut page, &line, 0, (i * line.height()) as i64);
    }
    for toolkit in toolkits() {
        for (what, image) in [("tight", tight.clone()), ("turned", turned.clone())] {
            let lines = toolkit.reader().read(&DynamicImage::ImageRgb8(image)).expect("reads");
            assert_eq!(glimpse_backend_toolkit::ocr::as_text(&lines), "Glimpse reads 42 words", "{:?} {what}: {lines:?}", toolkit.runtime());
        }
        let lines = toolkit.reader().read(&DynamicImage::ImageRgb8(page.clone())).expect("reads");
        assert_eq!(glimpse_backend_toolkit::ocr::as_text(&lines), vec!["Glimpse reads 42 words"; 7].join("\n"), "{:?}", toolkit.runtime());
    }
}

/// The ISNet mask of a hand-checked box covers the object: its foreground's bounding box matches the hand box,
/// and it is not the whole box (the background around the person is left out).
#[test]
fn masks_cover_the_object() {
    for toolkit in toolkits() {
        let masks = toolkit.masks().expect("models/toolkit/isnet.onnx (scripts/toolkit/fetch-isnet.sh)");
        let image = photo("person.jpg");
        let expected = json("fixtures/expected/toolkit/hand_boxes.json");
        for object in expected["person.jpg"].as_array().expect("objects") {
            let truth = pixel_box(&object["box"]);
            let grown = PixelBox { x0: truth.x0 - 10.0, y0: truth.y0 - 10.0, x1: truth.x1 + 10.0, y1: truth.y1 + 10.0 }.clamp(image.width(), image.height());
            let mask = masks.box_masks(&image, &[grown.to_array()]).expect("masks").remove(0);
            let (mut x0, mut y0, mut x1, mut y1, mut on) = (u32::MAX, u32::MAX, 0, 0, 0usize);
            for (x, y, p) in mask.enumerate_pixels() {
                if p.0[0] >= 128 {
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
                    on += 1;
                }
            }
            assert!(on > 0, "{}: empty mask", object["labels"]);
            let off = (grown.x0.round(), grown.y0.round());
            let covered = PixelBox { x0: x0 as f32 + off.0, y0: y0 as f32 + off.1, x1: x1 as f32 + off.0, y1: y1 as f32 + off.1 };
            let fill = on as f32 / (mask.width() * mask.height()) as f32;
            assert!(covered.iou(&truth) >= 0.7, "{}: mask covers {covered:?}, hand box {truth:?}", object["labels"]);
            assert!((0.15..0.85).contains(&fill), "{}: mask fills {fill:.2} of its box", object["labels"]);
        }
    }
}
