//! What a person at the command line reads: `--help` with examples and every flag explained, one-line errors
//! (no backtrace even with RUST_BACKTRACE=1) that say what to do, and the built-in models listed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn glimpse(args: &[&str], hf_home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(args)
        .current_dir(root())
        .env("HF_HOME", hf_home)
        .env("HF_HUB_OFFLINE", "1")
        .env("RUST_BACKTRACE", "1")
        .env_remove("GLIMPSE_MODEL")
        .env_remove("GLIMPSE_PORT")
        .output()
        .expect("running glimpse")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A user error: exit status 1 and one line on stderr, `glimpse: error: …`, without a backtrace.
fn user_error(output: &Output) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("glimpse: error: "), "stderr: {stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("Stack") && !stderr.contains("panicked"), "stderr: {stderr}");
    last
}

#[test]
fn help_has_examples_and_explains_every_flag() {
    let home = tempfile::tempdir().unwrap();
    let top = text(&glimpse(&["--help"], home.path()).stdout);
    assert!(top.contains("Examples:") && top.contains("glimpse ask photo.jpg"), "{top}");
    let serve = text(&glimpse(&["serve", "--help"], home.path()).stdout);
    assert!(serve.contains("Examples:"), "{serve}");
    for flag in ["--host <HOST>", "--port <PORT>"] {
        let line = serve.lines().skip_while(|l| !l.contains(flag)).nth(1).unwrap_or_default();
        assert!(!line.trim().is_empty() && !line.trim_start().starts_with("--"), "{flag} has no help text:\n{serve}");
    }
    assert!(serve.contains("Repeat it to serve several models"), "{serve}");
    let ask = text(&glimpse(&["ask", "--help"], home.path()).stdout);
    assert!(ask.contains("Examples:") && ask.contains("--annotate"), "{ask}");
    assert!(!ask.contains("serve several") && !ask.contains("`serve`"), "ask's help speaks of serve:\n{ask}");
}

#[test]
fn a_port_in_use_is_reported_before_any_model_loads() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let started = std::time::Instant::now();
    // Loading shapes takes seconds; the port check comes first.
    let output = glimpse(&["serve", "--port", &port, "--model", "shapes", "--data-dir", data.path().to_str().unwrap()], home.path());
    let line = user_error(&output);
    assert!(line.contains("already in use") && line.contains("--port"), "{line}");
    assert!(!text(&output.stderr).contains("loaded"), "a model loaded first: {}", text(&output.stderr));
    assert!(started.elapsed().as_secs() < 10, "took {:?}", started.elapsed());
}

#[test]
fn a_mistyped_model_gets_a_suggestion() {
    let home = tempfile::tempdir().unwrap();
    let line = user_error(&glimpse(&["ask", "fixtures/images/red_square_64x64.png", "What is this?", "--model", "shape"], home.path()));
    assert!(line.contains("did you mean shapes?"), "{line}");
    let line = user_error(&glimpse(&["ask", "fixtures/images/red_square_64x64.png", "What is this?", "--model", "nothing-like-it"], home.path()));
    assert!(line.contains("no such model folder") && line.contains("glimpse models list"), "{line}");
}

#[test]
fn annotate_without_boxes_says_which_prompt_gives_them() {
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let png = out.path().join("out.png");
    let output = glimpse(
        &["ask", "fixtures/images/red_square_64x64.png", "Describe this image.", "--model", "shapes", "--cpu", "--annotate", png.to_str().unwrap()],
        home.path(),
    );
    let line = user_error(&output);
    assert!(line.contains("no boxes or points to draw") && line.contains("box_2d"), "{line}");
    // The model's log lines came first, without colour codes: stderr is not a terminal here.
    let stderr = text(&output.stderr);
    assert!(stderr.contains("INFO") && !stderr.contains('\u{1b}'), "{stderr}");
    assert!(!text(&output.stdout).trim().is_empty(), "the answer itself is printed first");
    assert!(!png.exists());
}

#[test]
fn a_jpeg_cut_short_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(256, 192, |x, y| image::Rgb([x as u8, y as u8, 128]))
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    let cut = out.path().join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() * 2 / 3]).unwrap();
    let line = user_error(&glimpse(&["ask", cut.to_str().unwrap(), "What is this?", "--model", "shapes", "--cpu"], home.path()));
    let lower = line.to_lowercase();
    assert!(["truncated", "cut short", "incomplete", "not enough bytes"].iter().any(|w| lower.contains(w)), "{line}");
}

#[test]
fn models_list_shows_the_built_in_models() {
    let home = tempfile::tempdir().unwrap();
    let output = glimpse(&["models", "list"], home.path());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listing = text(&output.stdout);
    let names: Vec<&str> = listing.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"toolkit") && names.contains(&"shapes"), "{listing}");
    assert!(listing.contains("glimpse pull"), "an empty cache says how to fill it:\n{listing}");
}
