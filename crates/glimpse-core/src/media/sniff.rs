//! Format identification from magic bytes.

use super::ImageFormat;

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// HEVC-coded HEIF brands (ISO/IEC 23008-12 Annex B): the file is HEIC.
const HEIC_BRANDS: &[&[u8; 4]] = &[b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"];
/// Generic HEIF structural brands: the file is HEIF with an unspecified codec.
const HEIF_BRANDS: &[&[u8; 4]] = &[b"mif1", b"msf1", b"mif2"];
/// AV1-coded HEIF. Gemini does not accept image/avif, so AVIF is not sniffed as HEIF even though it
/// carries the `mif1` brand as well.
const AVIF_BRANDS: &[&[u8; 4]] = &[b"avif", b"avis"];

/// Identify the format from magic bytes (PNG signature, JPEG SOI, RIFF....WEBP, ISO-BMFF `ftyp` with a
/// HEIC brand → [`ImageFormat::Heic`], or only the generic `mif1`/`msf1` brands → [`ImageFormat::Heif`]).
///
/// Returns `None` for anything else, including AVIF.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(PNG_SIGNATURE) {
        return Some(ImageFormat::Png);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(ImageFormat::Jpeg);
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some(ImageFormat::Webp);
    }
    sniff_isobmff(bytes)
}

fn sniff_isobmff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.len() < 12 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    // size 0 means "to the end of the file", size 1 a 64-bit size: neither is sensible for ftyp, but tolerate
    // them by reading what is there.
    let end = match size {
        0 | 1 => bytes.len(),
        s if s < 16 => return None,
        s => s.min(bytes.len()),
    };
    let major = &bytes[8..12];
    // Brands: the major brand, then (after the 4-byte minor version) the compatible brands.
    let compatible = bytes.get(16..end).unwrap_or(&[]).chunks_exact(4);
    let brands: Vec<&[u8]> = std::iter::once(major).chain(compatible).collect();
    let has = |set: &[&[u8; 4]]| brands.iter().any(|b| set.iter().any(|s| &s[..] == *b));

    if HEIC_BRANDS.iter().any(|b| &b[..] == major) {
        return Some(ImageFormat::Heic);
    }
    if AVIF_BRANDS.iter().any(|b| &b[..] == major) {
        return None;
    }
    if has(HEIC_BRANDS) {
        return Some(ImageFormat::Heic);
    }
    if has(AVIF_BRANDS) {
        return None;
    }
    if has(HEIF_BRANDS) {
        return Some(ImageFormat::Heif);
    }
    None
}
