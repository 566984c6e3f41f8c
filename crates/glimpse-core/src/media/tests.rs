use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, GrayImage, ImageEncoder, Luma, Rgb, RgbImage, Rgba, RgbaImage};

use super::*;

const RED: [u8; 3] = [255, 0, 0];
const BLUE: [u8; 3] = [0, 0, 255];

/// 32×16: left half red, right half blue. Non-square so that a width/height swap is caught.
fn halves() -> RgbImage {
    RgbImage::from_fn(32, 16, |x, _| if x < 16 { Rgb(RED) } else { Rgb(BLUE) })
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    let (w, h) = img.dimensions();
    let ct = image::ExtendedColorType::Rgb8;
    match format {
        ImageFormat::Png => PngEncoder::new(&mut out).write_image(img.as_raw(), w, h, ct).unwrap(),
        ImageFormat::Jpeg => JpegEncoder::new_with_quality(&mut out, 95).write_image(img.as_raw(), w, h, ct).unwrap(),
        ImageFormat::Webp => WebPEncoder::new_lossless(&mut out).write_image(img.as_raw(), w, h, ct).unwrap(),
        _ => unreachable!("no HEIF encoder in tests"),
    }
    out
}

fn png_rgba(img: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgba8)
        .unwrap();
    out
}

fn assert_close(actual: [u8; 3], expected: [u8; 3], tolerance: u8, what: &str) {
    for c in 0..3 {
        assert!(
            actual[c].abs_diff(expected[c]) <= tolerance,
            "{what}: got {actual:?}, expected {expected:?} (±{tolerance})"
        );
    }
}

fn pixel(d: &DecodedImage, x: u32, y: u32) -> [u8; 3] {
    d.image.as_rgb8().expect("decoded images are RGB8").get_pixel(x, y).0
}

fn decode_ok(bytes: &[u8], declared: Option<ImageFormat>) -> DecodedImage {
    decode_image(bytes, declared, &ImageLimits::default()).unwrap_or_else(|e| panic!("decode failed: {e}"))
}

/// Build a PNG chunk with its CRC.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out
}

/// A minimal little-endian TIFF block with one IFD entry: Orientation (0x0112) SHORT = `orientation`.
fn tiff_orientation(orientation: u16) -> Vec<u8> {
    let mut t = b"II\x2a\x00".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes()); // offset of IFD0
    t.extend_from_slice(&1u16.to_le_bytes()); // one entry
    t.extend_from_slice(&0x0112u16.to_le_bytes()); // tag: Orientation
    t.extend_from_slice(&3u16.to_le_bytes()); // type: SHORT
    t.extend_from_slice(&1u32.to_le_bytes()); // count
    t.extend_from_slice(&orientation.to_le_bytes()); // value, left-justified in the 4-byte field
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    t
}

/// Insert an APP1 Exif segment right after the SOI marker.
fn jpeg_with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(tiff_orientation(orientation));
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// 40×20 blue image with an 8×8 red marker in the top-left corner (aligned to JPEG blocks).
fn marked_40x20() -> RgbImage {
    RgbImage::from_fn(40, 20, |x, y| if x < 8 && y < 8 { Rgb(RED) } else { Rgb(BLUE) })
}

fn assert_rotated_cw(d: &DecodedImage, tolerance: u8) {
    // Orientation 6: the stored image must be rotated 90° clockwise for display, so the top-left corner
    // moves to the top-right.
    assert_eq!((d.original_width, d.original_height), (20, 40));
    assert_eq!(d.image.dimensions_tuple(), (20, 40));
    assert_close(pixel(d, 16, 3), RED, tolerance, "marker at the top-right");
    assert_close(pixel(d, 3, 3), BLUE, tolerance, "top-left is no longer the marker");
    assert_close(pixel(d, 16, 36), BLUE, tolerance, "bottom-right");
}

trait Dims {
    fn dimensions_tuple(&self) -> (u32, u32);
}
impl Dims for DynamicImage {
    fn dimensions_tuple(&self) -> (u32, u32) {
        (self.width(), self.height())
    }
}

/// Deterministic byte-mutation stream (no rand dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

// ---------------------------------------------------------------- MIME types

#[test]
fn parse_mime_accepts_the_five_gemini_types() {
    assert_eq!(parse_mime("image/png").unwrap(), ImageFormat::Png);
    assert_eq!(parse_mime("image/jpeg").unwrap(), ImageFormat::Jpeg);
    assert_eq!(parse_mime("image/webp").unwrap(), ImageFormat::Webp);
    assert_eq!(parse_mime("image/heic").unwrap(), ImageFormat::Heic);
    assert_eq!(parse_mime("image/heif").unwrap(), ImageFormat::Heif);
    assert_eq!(parse_mime("IMAGE/JPEG").unwrap(), ImageFormat::Jpeg);
    assert_eq!(parse_mime(" Image/Png ; charset=binary").unwrap(), ImageFormat::Png);
    for f in ImageFormat::ALL {
        assert_eq!(parse_mime(f.mime()).unwrap(), f);
        assert_eq!(f.to_string(), f.mime());
        assert_eq!(f.mime().parse::<ImageFormat>().unwrap(), f);
    }
}

#[test]
fn parse_mime_rejects_image_jpg_with_the_exact_message() {
    let err = parse_mime("image/jpg").unwrap_err();
    assert!(matches!(err, MediaError::UnsupportedMime(ref m) if m == "image/jpg"));
    assert_eq!(err.to_string(), "Unsupported MIME type: image/jpg");
}

#[test]
fn parse_mime_rejects_everything_else() {
    for bad in
        ["", "image", "png", "image/gif", "image/avif", "image/png+x", "image/x-png", "application/pdf", "image/*"]
    {
        let err = parse_mime(bad).unwrap_err();
        assert_eq!(err.to_string(), format!("Unsupported MIME type: {bad}"));
    }
}

// ---------------------------------------------------------------- sniffing

fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
    let size = 16 + 4 * compatible.len();
    let mut b = (size as u32).to_be_bytes().to_vec();
    b.extend_from_slice(b"ftyp");
    b.extend_from_slice(major);
    b.extend_from_slice(&[0, 0, 0, 0]);
    for c in compatible {
        b.extend_from_slice(*c);
    }
    b.extend_from_slice(b"\0\0\0\x08meta"); // whatever follows
    b
}

#[test]
fn sniff_base_cases() {
    assert_eq!(sniff(&encode(&halves(), ImageFormat::Png)), Some(ImageFormat::Png));
    assert_eq!(sniff(&encode(&halves(), ImageFormat::Jpeg)), Some(ImageFormat::Jpeg));
    assert_eq!(sniff(&encode(&halves(), ImageFormat::Webp)), Some(ImageFormat::Webp));
    assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), Some(ImageFormat::Png));
    assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageFormat::Jpeg));
    assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8L"), Some(ImageFormat::Webp));

    for brand in [b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs"] {
        assert_eq!(sniff(&ftyp(brand, &[b"mif1", brand])), Some(ImageFormat::Heic), "{:?}", brand);
    }
    assert_eq!(sniff(&ftyp(b"mif1", &[b"mif1", b"heic"])), Some(ImageFormat::Heic));
    assert_eq!(sniff(&ftyp(b"mif1", &[b"mif1"])), Some(ImageFormat::Heif));
    assert_eq!(sniff(&ftyp(b"msf1", &[b"msf1"])), Some(ImageFormat::Heif));
    // AVIF is HEIF-based but not a Gemini type.
    assert_eq!(sniff(&ftyp(b"avif", &[b"mif1", b"avif"])), None);
    assert_eq!(sniff(&ftyp(b"mif1", &[b"mif1", b"avif"])), None);
    // Other ISO-BMFF files (MP4).
    assert_eq!(sniff(&ftyp(b"isom", &[b"isom", b"mp42"])), None);

    assert_eq!(sniff(b""), None);
    assert_eq!(sniff(b"\x89PN"), None);
    assert_eq!(sniff(&[0xFF, 0xD8]), None);
    assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), None);
    assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), None);
    assert_eq!(sniff(b"\0\0\0\x08ftyp"), None);
    assert_eq!(sniff(b"hello world, not an image"), None);
}

#[cfg(feature = "heif")]
#[test]
fn sniff_recognises_the_heic_fixtures() {
    assert_eq!(sniff(&fixture("tiny.heic")), Some(ImageFormat::Heic));
}

// ---------------------------------------------------------------- decoding

#[test]
fn every_raster_format_decodes_with_size_and_colour() {
    for (format, tolerance) in [(ImageFormat::Png, 0), (ImageFormat::Webp, 0), (ImageFormat::Jpeg, 16)] {
        let bytes = encode(&halves(), format);
        for declared in [Some(format), None] {
            let d = decode_ok(&bytes, declared);
            assert_eq!(d.format, format);
            assert_eq!((d.original_width, d.original_height), (32, 16), "{format}");
            assert!(matches!(d.image, DynamicImage::ImageRgb8(_)), "{format} must decode to RGB8");
            assert_eq!(d.image.dimensions_tuple(), (32, 16));
            assert_close(pixel(&d, 4, 8), RED, tolerance, format.mime());
            assert_close(pixel(&d, 27, 8), BLUE, tolerance, format.mime());
        }
    }
}

#[test]
fn grayscale_png_decodes_to_rgb8() {
    let gray = GrayImage::from_fn(10, 6, |x, _| Luma([if x < 5 { 30 } else { 220 }]));
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes).write_image(gray.as_raw(), 10, 6, image::ExtendedColorType::L8).unwrap();
    let d = decode_ok(&bytes, Some(ImageFormat::Png));
    assert_eq!(pixel(&d, 1, 1), [30, 30, 30]);
    assert_eq!(pixel(&d, 8, 1), [220, 220, 220]);
}

#[test]
fn transparency_is_composited_over_white() {
    // Black text on a transparent background is common (logos, screenshots): transparent pixels often carry
    // black RGB, so dropping alpha would turn the whole image black.
    let img = RgbaImage::from_fn(8, 4, |x, _| match x {
        0..=3 => Rgba([0, 0, 0, 0]),
        4..=5 => Rgba([0, 0, 0, 255]),
        _ => Rgba([255, 0, 0, 128]),
    });
    let d = decode_ok(&png_rgba(&img), None);
    assert_eq!(pixel(&d, 0, 0), [255, 255, 255]);
    assert_eq!(pixel(&d, 4, 0), [0, 0, 0]);
    assert_eq!(pixel(&d, 7, 0), [255, 127, 127]);
}

#[test]
fn image_jpg_is_rejected_before_decoding() {
    let err = parse_mime("image/jpg").unwrap_err();
    assert_eq!(err.to_string(), "Unsupported MIME type: image/jpg");
}

#[test]
fn declared_png_with_jpeg_bytes_is_a_mime_mismatch() {
    let jpeg = encode(&halves(), ImageFormat::Jpeg);
    let err = decode_image(&jpeg, Some(ImageFormat::Png), &ImageLimits::default()).unwrap_err();
    assert!(matches!(err, MediaError::MimeMismatch { declared: "image/png", actual: "image/jpeg" }), "{err:?}");
    assert_eq!(err.to_string(), "The image data is image/jpeg but the declared MIME type is image/png.");

    let png = encode(&halves(), ImageFormat::Png);
    let err = decode_image(&png, Some(ImageFormat::Webp), &ImageLimits::default()).unwrap_err();
    assert_eq!(err.to_string(), "The image data is image/png but the declared MIME type is image/webp.");
}

#[test]
fn random_and_empty_bytes_are_undecodable() {
    let mut rng = Lcg(42);
    let random: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
    for declared in [None, Some(ImageFormat::Png), Some(ImageFormat::Heic)] {
        let err = decode_image(&random, declared, &ImageLimits::default()).unwrap_err();
        assert!(matches!(err, MediaError::Undecodable(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "Unable to process input image: the data is not a PNG, JPEG, WEBP, HEIC or HEIF image."
        );
    }
    let err = decode_image(&[], None, &ImageLimits::default()).unwrap_err();
    assert!(matches!(err, MediaError::Undecodable(_)), "{err:?}");
}

#[test]
fn truncated_png_is_undecodable() {
    let png = encode(&RgbImage::from_fn(64, 64, |x, y| Rgb([x as u8 * 4, y as u8 * 4, 7])), ImageFormat::Png);
    let half = &png[..png.len() / 2];
    let err = decode_image(half, Some(ImageFormat::Png), &ImageLimits::default()).unwrap_err();
    let MediaError::Undecodable(msg) = &err else { panic!("expected Undecodable, got {err:?}") };
    assert!(msg.starts_with("Unable to process input image: the image/png data is invalid ("), "{msg}");
}

#[test]
fn truncation_at_any_length_never_panics() {
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Webp] {
        let bytes = encode(&marked_40x20(), format);
        for len in 0..bytes.len() {
            // JPEG is decoded leniently (a truncated scan may still yield an image); only require no panic
            // and, on success, a consistent RGB8 image.
            match decode_image(&bytes[..len], Some(format), &ImageLimits::default()) {
                Ok(d) => assert_eq!((d.image.width(), d.image.height()), (40, 20)),
                Err(MediaError::Undecodable(_)) => {}
                Err(e) => panic!("{format} truncated to {len}: unexpected {e:?}"),
            }
        }
        if format == ImageFormat::Png {
            let err = decode_image(&bytes[..bytes.len() - 20], Some(format), &ImageLimits::default());
            assert!(matches!(err, Err(MediaError::Undecodable(_))), "{err:?}");
        }
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let mut rng = Lcg(7);
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Webp] {
        let clean = encode(&marked_40x20(), format);
        for _ in 0..300 {
            let mut bytes = clean.clone();
            for _ in 0..1 + rng.next() % 8 {
                let i = (rng.next() as usize) % bytes.len();
                bytes[i] = rng.next() as u8;
            }
            if let Ok(d) = decode_image(&bytes, None, &ImageLimits::default()) {
                assert_eq!(d.image.width() as usize * d.image.height() as usize * 3, d.image.as_bytes().len());
            }
        }
    }
}

/// A small valid PNG whose IHDR claims `width`×`height` (CRC fixed up), followed by the original small IDAT.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(&halves(), ImageFormat::Png);
    // Signature (8) + IHDR length (4) + "IHDR" (4) → data at 16..29, CRC at 29..33.
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

#[test]
fn png_claiming_100000_by_100000_is_refused_from_the_header() {
    let png = png_claiming(100_000, 100_000);
    // The IDAT holds 32×16 pixels' worth of data: had the decoder got past the header check it would have
    // failed as truncated (Undecodable), not with TooManyPixels, and it would have tried to allocate 30 GB.
    let err = decode_image(&png, Some(ImageFormat::Png), &ImageLimits::default()).unwrap_err();
    assert!(
        matches!(err, MediaError::TooManyPixels { width: 100_000, height: 100_000, max_pixels: 100_000_000 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "The image is 100000x100000 pixels (10000000000 pixels), more than the 100000000 pixels this server accepts per image."
    );
}

#[test]
fn pixel_and_side_limits_are_configurable() {
    let png = encode(&halves(), ImageFormat::Png);
    let tight = ImageLimits { max_pixels: 511, max_side: 1000 };
    let err = decode_image(&png, None, &tight).unwrap_err();
    assert!(matches!(err, MediaError::TooManyPixels { width: 32, height: 16, max_pixels: 511 }), "{err:?}");
    let exact = ImageLimits { max_pixels: 512, max_side: 32 };
    decode_image(&png, None, &exact).unwrap();

    let long = png_claiming(40_000, 2);
    let err = decode_image(&long, None, &ImageLimits::default()).unwrap_err();
    assert!(matches!(err, MediaError::SideTooLong { width: 40_000, height: 2, max_side: 30_000 }), "{err:?}");
    assert_eq!(err.to_string(), "The image is 40000x2 pixels; this server accepts at most 30000 pixels per side.");

    // The same check applies to every format, JPEG and WEBP included.
    for format in [ImageFormat::Jpeg, ImageFormat::Webp] {
        let err = decode_image(&encode(&halves(), format), None, &tight).unwrap_err();
        assert!(matches!(err, MediaError::TooManyPixels { .. }), "{format}: {err:?}");
    }
}

#[test]
fn png_claiming_zero_width_is_undecodable() {
    let err = decode_image(&png_claiming(0, 16), None, &ImageLimits::default()).unwrap_err();
    assert!(matches!(err, MediaError::Undecodable(_)), "{err:?}");
}

#[test]
fn jpeg_exif_orientation_6_rotates_clockwise() {
    let jpeg = jpeg_with_orientation(&encode(&marked_40x20(), ImageFormat::Jpeg), 6);
    // Sanity: the hand-built Exif block parses with kamadak-exif as orientation 6.
    let exif = exif::Reader::new().read_from_container(&mut Cursor::new(&jpeg)).unwrap();
    let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY).unwrap();
    assert_eq!(field.value.get_uint(0), Some(6));

    let d = decode_ok(&jpeg, Some(ImageFormat::Jpeg));
    assert_rotated_cw(&d, 40);
}

#[test]
fn jpeg_exif_orientations_1_to_8_give_the_right_size() {
    let base = encode(&marked_40x20(), ImageFormat::Jpeg);
    for o in 1..=8u16 {
        let d = decode_ok(&jpeg_with_orientation(&base, o), None);
        let expected = if o >= 5 { (20, 40) } else { (40, 20) };
        assert_eq!((d.original_width, d.original_height), expected, "orientation {o}");
    }
    // Orientation 3 (180°): the marker moves to the bottom-right.
    let d = decode_ok(&jpeg_with_orientation(&base, 3), None);
    assert_close(pixel(&d, 36, 16), RED, 40, "orientation 3 marker");
    // An out-of-range value is ignored rather than failing the image.
    let d = decode_ok(&jpeg_with_orientation(&base, 9), None);
    assert_eq!((d.original_width, d.original_height), (40, 20));
}

#[test]
fn png_exif_orientation_6_rotates_clockwise() {
    let png = encode(&marked_40x20(), ImageFormat::Png);
    // Insert an eXIf chunk right after IHDR (8 + 25 bytes).
    let mut with_exif = png[..33].to_vec();
    with_exif.extend(png_chunk(b"eXIf", &tiff_orientation(6)));
    with_exif.extend_from_slice(&png[33..]);
    let d = decode_ok(&with_exif, Some(ImageFormat::Png));
    assert_rotated_cw(&d, 0);
}

// ---------------------------------------------------------------- resizing

#[test]
fn resize_exact_gives_rgb8_of_the_requested_size() {
    let src = DynamicImage::ImageRgb8(RgbImage::from_pixel(37, 23, Rgb([10, 200, 30])));
    for (w, h) in [(14, 14), (100, 7), (37, 23), (1, 1)] {
        let out = resize_exact(&src, w, h);
        assert!(matches!(out, DynamicImage::ImageRgb8(_)));
        assert_eq!(out.dimensions_tuple(), (w, h));
        // A flat colour stays flat (Catmull-Rom weights sum to 1).
        for p in out.as_rgb8().unwrap().pixels() {
            assert_close(p.0, [10, 200, 30], 1, "flat colour");
        }
    }
    // Halves stay halves when downscaled.
    let out = resize_exact(&DynamicImage::ImageRgb8(halves()), 16, 8);
    assert_close(out.as_rgb8().unwrap().get_pixel(2, 4).0, RED, 2, "left");
    assert_close(out.as_rgb8().unwrap().get_pixel(13, 4).0, BLUE, 2, "right");
}

#[test]
fn resize_exact_converts_other_colour_types() {
    let rgba = DynamicImage::ImageRgba8(RgbaImage::from_pixel(9, 9, Rgba([0, 0, 0, 0])));
    let out = resize_exact(&rgba, 4, 4);
    assert!(matches!(out, DynamicImage::ImageRgb8(_)));
    assert_eq!(out.as_rgb8().unwrap().get_pixel(1, 1).0, [255, 255, 255]);
    let gray = DynamicImage::ImageLuma8(GrayImage::from_pixel(5, 5, Luma([77])));
    assert_eq!(resize_exact(&gray, 5, 5).as_rgb8().unwrap().get_pixel(0, 0).0, [77, 77, 77]);
}

// ---------------------------------------------------------------- the lazy source

/// A smooth 512×384 picture (gradients and a disc) as a JPEG: content that survives DCT-domain scaling.
fn smooth_jpeg(quality: u8) -> (RgbImage, Vec<u8>) {
    let img = RgbImage::from_fn(512, 384, |x, y| {
        let inside = (x as i32 - 200).pow(2) + (y as i32 - 150).pow(2) < 90 * 90;
        if inside { Rgb([230, 40, 30]) } else { Rgb([(x / 2) as u8, (y * 2 / 3) as u8, 120]) }
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(img.as_raw(), 512, 384, image::ExtendedColorType::Rgb8)
        .unwrap();
    (img, out)
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.as_raw().len() as f64
}

#[test]
fn probing_reads_the_header_only() {
    // A JPEG whose scan data is cut away probes (dimensions from the header) and fails when decoded.
    let (_, jpeg) = smooth_jpeg(90);
    let cut = &jpeg[..jpeg.len() / 3];
    let source = ImageSource::probe(cut.to_vec(), Some(ImageFormat::Jpeg), &ImageLimits::default()).unwrap();
    assert_eq!((source.width(), source.height()), (512, 384));
    for err in [source.decode().map(|_| ()).unwrap_err(), source.pixels(64, 48).map(|_| ()).unwrap_err()] {
        let MediaError::Undecodable(msg) = &err else { panic!("expected Undecodable, got {err:?}") };
        assert!(msg.contains("truncated"), "{msg}");
    }
}

#[test]
fn a_jpeg_cut_short_is_refused_not_padded() {
    let (_, jpeg) = smooth_jpeg(90);
    for len in [jpeg.len() - 2, jpeg.len() - 200, jpeg.len() / 2] {
        let err = decode_image(&jpeg[..len], Some(ImageFormat::Jpeg), &ImageLimits::default()).unwrap_err();
        assert!(matches!(&err, MediaError::Undecodable(m) if m.contains("truncated")), "cut to {len}: {err:?}");
    }
}

#[test]
fn pixels_at_a_small_size_match_decoding_whole_and_resizing() {
    // DCT-domain scaling (1/8 here) then resampling gives what a full decode then resampling gives, within
    // what the two paths' rounding allows.
    let (original, jpeg) = smooth_jpeg(95);
    let source = ImageSource::probe(jpeg, None, &ImageLimits::default()).unwrap();
    let small = source.pixels(56, 42).unwrap();
    let reference = resize_rgb(source.decode().unwrap().as_rgb8().unwrap(), 56, 42);
    assert_eq!(small.dimensions(), (56, 42));
    let diff = mean_abs_diff(&small, &reference);
    assert!(diff < 2.0, "mean |difference| {diff:.2}");
    assert!(mean_abs_diff(&small, &resize_rgb(&original, 56, 42)) < 3.0);
    // At the original size nothing is scaled.
    assert_eq!(source.pixels(512, 384).unwrap(), *source.decode().unwrap().as_rgb8().unwrap());
}

#[test]
fn pixels_follow_the_exif_orientation() {
    let jpeg = jpeg_with_orientation(&encode(&marked_40x20(), ImageFormat::Jpeg), 6);
    let source = ImageSource::probe(jpeg, None, &ImageLimits::default()).unwrap();
    assert_eq!((source.width(), source.height()), (20, 40), "size after orientation");
    let pixels = source.pixels(20, 40).unwrap();
    assert_close(pixels.get_pixel(16, 3).0, RED, 40, "marker at the top-right");
    assert_close(pixels.get_pixel(3, 36).0, BLUE, 40, "bottom-left");
}

#[test]
fn identical_bytes_have_the_same_digest() {
    let (_, jpeg) = smooth_jpeg(90);
    let a = ImageSource::probe(jpeg.clone(), None, &ImageLimits::default()).unwrap();
    let b = ImageSource::probe(jpeg.clone(), None, &ImageLimits::default()).unwrap();
    let mut other = jpeg;
    other.push(0);
    let c = ImageSource::probe(other, None, &ImageLimits::default()).unwrap();
    assert_eq!(a.digest(), b.digest());
    assert_ne!(a.digest(), c.digest());
}

// ---------------------------------------------------------------- HEIC / HEIF

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(not(feature = "heif"))]
#[test]
fn heic_without_the_feature_is_a_clear_error() {
    let err = decode_image(&fixture("tiny.heic"), Some(ImageFormat::Heic), &ImageLimits::default()).unwrap_err();
    assert!(matches!(err, MediaError::HeifUnsupported(_)), "{err:?}");
    assert_eq!(err.to_string(), "HEIC/HEIF decoding is not built into this server (cargo feature `heif`)");
    // Sniffing still works, so a mislabelled HEIC is a mismatch rather than "unsupported".
    let err = decode_image(&fixture("tiny.heic"), Some(ImageFormat::Png), &ImageLimits::default()).unwrap_err();
    assert!(matches!(err, MediaError::MimeMismatch { .. }), "{err:?}");
}

/// fixtures/images/tiny.heic: 64×48, made with `heif-enc -q 90` (libheif 1.15.1, x265) from a PNG with four
/// 32×24 quadrants: red (top-left), green (top-right), blue (bottom-left), white (bottom-right).
#[cfg(feature = "heif")]
#[test]
fn committed_heic_decodes_to_its_known_size_and_colours() {
    let bytes = fixture("tiny.heic");
    for declared in [Some(ImageFormat::Heic), Some(ImageFormat::Heif), None] {
        let d = decode_ok(&bytes, declared);
        assert_eq!(d.format, declared.unwrap_or(ImageFormat::Heic));
        assert_eq!((d.original_width, d.original_height), (64, 48));
        assert!(matches!(d.image, DynamicImage::ImageRgb8(_)));
        assert_close(pixel(&d, 10, 10), RED, 24, "top-left");
        assert_close(pixel(&d, 50, 10), [0, 255, 0], 24, "top-right");
        assert_close(pixel(&d, 10, 40), BLUE, 24, "bottom-left");
        assert_close(pixel(&d, 50, 40), [255, 255, 255], 24, "bottom-right");
    }
    let err = decode_image(&bytes, Some(ImageFormat::Jpeg), &ImageLimits::default()).unwrap_err();
    assert_eq!(err.to_string(), "The image data is image/heic but the declared MIME type is image/jpeg.");
}

/// fixtures/images/alpha.heic: 32×16, left half fully transparent black, right half opaque black.
#[cfg(feature = "heif")]
#[test]
fn heic_alpha_is_composited_over_white() {
    let d = decode_ok(&fixture("alpha.heic"), None);
    assert_eq!((d.original_width, d.original_height), (32, 16));
    assert_close(pixel(&d, 4, 8), [255, 255, 255], 24, "transparent half");
    assert_close(pixel(&d, 27, 8), [0, 0, 0], 24, "opaque half");
}

/// fixtures/images/deep10.heic: 32×16, 10-bit HEVC (`heif-enc -b 10` from a 16-bit PNG), left red, right blue.
#[cfg(feature = "heif")]
#[test]
fn ten_bit_heic_decodes_to_rgb8() {
    let d = decode_ok(&fixture("deep10.heic"), None);
    assert_eq!((d.original_width, d.original_height), (32, 16));
    assert_close(pixel(&d, 4, 8), RED, 24, "left");
    assert_close(pixel(&d, 27, 8), BLUE, 24, "right");
}

#[cfg(feature = "heif")]
#[test]
fn heic_limits_are_checked_before_decoding() {
    let tight = ImageLimits { max_pixels: 64 * 48 - 1, max_side: 30_000 };
    let err = decode_image(&fixture("tiny.heic"), None, &tight).unwrap_err();
    assert!(matches!(err, MediaError::TooManyPixels { width: 64, height: 48, .. }), "{err:?}");
    let err =
        decode_image(&fixture("tiny.heic"), None, &ImageLimits { max_pixels: u64::MAX, max_side: 63 }).unwrap_err();
    assert!(matches!(err, MediaError::SideTooLong { width: 64, height: 48, max_side: 63 }), "{err:?}");
}

#[cfg(feature = "heif")]
#[test]
fn truncated_or_corrupted_heic_never_panics() {
    let bytes = fixture("tiny.heic");
    for len in [12, 16, 28, 40, 100, 200, bytes.len() / 2, bytes.len() - 100, bytes.len() - 1] {
        let err = decode_image(&bytes[..len], None, &ImageLimits::default()).unwrap_err();
        assert!(matches!(err, MediaError::Undecodable(_) | MediaError::HeifUnsupported(_)), "len {len}: {err:?}");
    }
    let mut rng = Lcg(99);
    for _ in 0..200 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = 32 + (rng.next() as usize) % (b.len() - 32); // keep the ftyp so it reaches libheif
            b[i] = rng.next() as u8;
        }
        if let Ok(d) = decode_image(&b, None, &ImageLimits::default()) {
            assert_eq!(d.image.width() as usize * d.image.height() as usize * 3, d.image.as_bytes().len());
        }
    }
}
