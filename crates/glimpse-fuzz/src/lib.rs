//! Glimpse's fuzz targets ([`targets`]): the Gemini, Interactions, OpenAI and cachedContents request bodies,
//! the File API's multipart, raw and resumable upload framing, the image sniffers, header probe and decoders
//! (EXIF included), base64, the SSRF guard and the serve config's TOML.
//!
//! They are plain functions of bytes so that two drivers share them: `fuzz/` wraps each for cargo-fuzz
//! (libFuzzer, coverage-guided, nightly; `scripts/fuzz.sh` runs the long campaign) and this crate's
//! `tests/short_pass.rs` replays the committed seeds and regressions and a bounded number of mutations of them
//! on the stable toolchain, in CI.

pub mod harness;
pub mod mutate;
pub mod targets;
