//! Images per second for each toolkit task on this machine, on the darknet photos (fixtures/photos) and the
//! rendered text line, one at a time, then whole captions (every model) one per core at once. The runtime is the
//! server's choice (`GLIMPSE_TOOLKIT_RUNTIME`). `scripts/toolkit/bench.sh` runs it beside onnxruntime on the same files for ratios.
//!
//! cargo run --example bench -p glimpse-backend-toolkit -- [passes]   (default 5; prints a table, then one JSON line;
//! each rate is the median pass's)

use std::path::PathBuf;
use std::time::Instant;

use glimpse_backend_toolkit::task::Task;
use glimpse_backend_toolkit::{Toolkit, DETECTION_MIN_SCORE};
use glimpse_core::grounding::MaskModel;
use glimpse_core::OutputConstraint;
use image::DynamicImage;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let passes: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(5).max(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let load = Instant::now();
    let toolkit = Toolkit::load(&root.join("models/toolkit"))?;
    eprintln!("loaded in {:.2} s", load.elapsed().as_secs_f64());
    let photos: Vec<DynamicImage> = ["dog.jpg", "horses.jpg", "kite.jpg", "giraffe.jpg", "person.jpg"]
        .iter()
        .map(|n| image::open(root.join("fixtures/photos").join(n)))
        .collect::<Result<_, _>>()?;
    // One line, ten times per pass: enough runs for a stable rate.
    let line = vec![image::open(root.join("fixtures/images/ocr_line.png"))?; 10];
    let boxes: Vec<[f64; 4]> = photos
        .iter()
        .map(|p| toolkit.detector().detect(p, DETECTION_MIN_SCORE).map(|d| d[0].bbox.to_array()))
        .collect::<Result<_, _>>()?;

    let mut results = Vec::new();
    let mut time = |task: &str, images: &[DynamicImage], run: &dyn Fn(usize, &DynamicImage)| {
        run(0, &images[0]); // warm-up
        // The median pass: a pass disturbed by the machine does not move it.
        let mut rates: Vec<f64> = (0..passes)
            .map(|_| {
                let start = Instant::now();
                for (i, image) in images.iter().enumerate() {
                    run(i, image);
                }
                images.len() as f64 / start.elapsed().as_secs_f64()
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        let per_second = rates[rates.len() / 2];
        println!("{task:<10} {per_second:>8.2} images/s");
        results.push(format!("\"{task}\": {per_second:.3}"));
    };
    time("detect", &photos, &|_, p| drop(toolkit.detector().detect(p, DETECTION_MIN_SCORE).expect("detect")));
    time("classify", &photos, &|_, p| drop(toolkit.classifier().classify(p, 5).expect("classify")));
    time("ocr_line", &line, &|_, p| drop(toolkit.reader().read(p).expect("ocr")));
    time("ocr_photo", &photos, &|_, p| drop(toolkit.reader().read(p).expect("ocr")));
    if let Some(masks) = toolkit.masks() {
        time("mask", &photos, &|i, p| drop(masks.box_masks(p, &[boxes[i]]).expect("mask")));
    }
    let caption = |p: &DynamicImage| drop(toolkit.answer(&Task::Caption, "Caption this image.", p, &OutputConstraint::None).expect("caption"));
    time("caption", &photos, &|_, p| caption(p));

    // Answers at once, one per core, as the server runs them: aggregate images/s against one at a time.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..cores {
            scope.spawn(|| (0..passes).for_each(|_| photos.iter().for_each(caption)));
        }
    });
    let per_second = (cores * passes * photos.len()) as f64 / start.elapsed().as_secs_f64();
    println!("caption_x{cores} {per_second:>6.2} images/s ({cores} at once)");
    results.push(format!("\"caption_x{cores}\": {per_second:.3}"));
    println!("{{{}}}", results.join(", "));
    Ok(())
}
