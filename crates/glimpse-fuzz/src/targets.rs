//! The fuzz targets. Each takes the fuzzer's bytes, feeds them to one parser of untrusted input through the
//! code a real request takes, and panics when a property every input must keep is broken (the harness's
//! answer checks, or the target's own assertions below). A target returning is a pass.

use glimpse_core::media::{sniff, ImageFormat, ImageSource};
use glimpse_fetch::AddressPolicy;
use std::net::{IpAddr, Ipv4Addr};

use crate::harness::{server, IMAGE_LIMITS, MODEL};

const JSON: (&str, &str) = ("content-type", "application/json");

/// Splits off the first byte, which a target uses to choose among variants (so one corpus covers them all).
fn selector(data: &[u8]) -> (u8, &[u8]) {
    data.split_first().map(|(s, rest)| (*s, rest)).unwrap_or((0, data))
}

/// Gemini's `generateContent`, `streamGenerateContent` (SSE) and `countTokens` bodies: lenient JSON, parts,
/// inline base64 images, `fileData` references, generation config and response schemas.
pub fn gemini_request(data: &[u8]) {
    let (which, body) = selector(data);
    let method = ["generateContent", "streamGenerateContent?alt=sse", "countTokens", "batchGenerateContent"][usize::from(which % 4)];
    let answer = server().call("POST", &format!("/v1beta/models/{MODEL}:{method}"), &[JSON], body.to_vec());
    server().delete_made(&answer);
}

/// `POST /v1beta/interactions` bodies (inputs as strings, content lists or turns; `generation_config`; stored
/// interactions, `previous_interaction_id`).
pub fn interactions_request(data: &[u8]) {
    let answer = server().call("POST", "/v1beta/interactions", &[JSON], data.to_vec());
    server().delete_made(&answer);
}

/// OpenAI `chat/completions` bodies (messages, `image_url` data URLs, `response_format`, streaming).
pub fn openai_request(data: &[u8]) {
    server().call("POST", "/v1beta/openai/chat/completions", &[JSON], data.to_vec());
}

/// `cachedContents` create bodies (contents, system instruction, ttl / expireTime strings).
pub fn cache_request(data: &[u8]) {
    let answer = server().call("POST", "/v1beta/cachedContents", &[JSON], data.to_vec());
    server().delete_made(&answer);
}

/// The File API's one-request uploads: `multipart/related` (metadata and bytes in one body, as curl and
/// older clients send) and raw media, with the first byte choosing which.
pub fn upload_multipart(data: &[u8]) {
    let (which, body) = selector(data);
    let answer = if which % 2 == 0 {
        server().call(
            "POST",
            "/upload/v1beta/files",
            &[("x-goog-upload-protocol", "multipart"), ("content-type", "multipart/related; boundary=glimpse-fuzz")],
            body.to_vec(),
        )
    } else {
        server().call("POST", "/upload/v1beta/files?uploadType=media", &[("content-type", "image/png")], body.to_vec())
    };
    server().delete_made(&answer);
}

/// The resumable upload protocol the SDKs use, as a script of requests. The input is records separated by
/// `\n--\n`; a record's first line is `command|offset|declared size` and the rest its body. The first record
/// starts the upload (its body is the metadata JSON), the others go to the upload URL the start answered:
/// chunks, queries, finalizes and cancels, in any order and with any offsets.
pub fn upload_resumable(data: &[u8]) {
    let mut records = split(data, b"\n--\n").into_iter().take(16);
    let Some(first) = records.next() else { return };
    let (head, metadata) = head_and_body(first);
    let [_, _, size] = fields(&head);
    let mut headers = vec![("x-goog-upload-protocol", "resumable"), ("x-goog-upload-command", "start"), JSON];
    headers.push(("x-goog-upload-header-content-type", "image/png"));
    if !size.is_empty() {
        headers.push(("x-goog-upload-header-content-length", size));
    }
    let start = server().call_within(data, "POST", "/upload/v1beta/files", &headers, metadata.to_vec());
    let Some(url) = start.headers.get("x-goog-upload-url").and_then(|v| v.to_str().ok()) else { return };
    let Some(path) = url.strip_prefix("http://127.0.0.1:9").map(str::to_string) else {
        panic!("the upload URL {url:?} is not on the public URL");
    };
    for record in records {
        let (head, body) = head_and_body(record);
        let [command, offset, _] = fields(&head);
        let mut headers = vec![("x-goog-upload-command", command)];
        if !offset.is_empty() {
            headers.push(("x-goog-upload-offset", offset));
        }
        let answer = server().call_within(data, "POST", &path, &headers, body.to_vec());
        server().delete_made(&answer);
    }
    // An upload the script left open is cancelled, so a long run keeps no sessions.
    server().call_within(data, "POST", &path, &[("x-goog-upload-command", "cancel")], Vec::new());
}

fn split<'a>(data: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut records = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(separator.len()).position(|w| w == separator) {
        records.push(&rest[..at]);
        rest = &rest[at + separator.len()..];
    }
    records.push(rest);
    records
}

fn head_and_body(record: &[u8]) -> (String, &[u8]) {
    let (head, body) = match record.iter().position(|&b| b == b'\n') {
        Some(at) => (&record[..at], &record[at + 1..]),
        None => (record, &[][..]),
    };
    // Header values must be visible ASCII; anything else the HTTP stack would refuse before Glimpse sees it.
    (String::from_utf8_lossy(head).chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect(), body)
}

fn fields(head: &str) -> [&str; 3] {
    let mut parts = head.splitn(3, '|').map(str::trim);
    [parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or("")]
}

/// The image path: format sniffing, the header probe (sizes, EXIF orientation, decompression-bomb limits,
/// checked before any pixel is decoded) and the decoders (PNG, JPEG through libjpeg-turbo and `image`, WEBP
/// through libwebp, HEIC/HEIF through libheif). The first byte chooses the declared MIME type and the planned
/// size.
pub fn image(data: &[u8]) {
    let (which, bytes) = selector(data);
    let declared = [None, Some(ImageFormat::Png), Some(ImageFormat::Jpeg), Some(ImageFormat::Webp), Some(ImageFormat::Heic), Some(ImageFormat::Heif)]
        [usize::from(which % 6)];
    let sniffed = sniff(bytes);
    let Ok(source) = ImageSource::probe(bytes.to_vec(), declared, &IMAGE_LIMITS) else { return };
    assert!(sniffed.is_some(), "an image nobody recognised was accepted");
    let (width, height) = (source.width(), source.height());
    assert!(width > 0 && height > 0 && u64::from(width) * u64::from(height) <= IMAGE_LIMITS.max_pixels, "{width}x{height} passed the limits");
    let planned = (1 + u32::from(which / 6) % 64, 1 + u32::from(which / 3) % 48);
    if let Ok(pixels) = source.pixels(planned.0, planned.1) {
        assert_eq!(pixels.dimensions(), planned, "pixels() answered another size than planned");
    }
    if let Ok(whole) = source.decode() {
        assert_eq!((whole.width(), whole.height()), (width, height), "the decoded image is not the size its header said");
    }
}

/// Base64 as inline images carry it (either alphabet, padded or not, wrapped): the size estimate the inline
/// limit is checked with before decoding must never be below the decoded size.
pub fn base64(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(decoded) = glimpse_router::lenient::decode_base64(&text) {
        let estimate = glimpse_router::lenient::decoded_len_estimate(&text);
        assert!(decoded.len() <= estimate, "{} bytes decoded from a string estimated at {estimate}", decoded.len());
    }
}

/// The SSRF guard's check of a URL whose host is an address: every form the URL parser accepts (decimal,
/// octal and hex IPv4, IPv6 with embedded IPv4, brackets, zones) must be refused when it names a loopback,
/// private, link-local, unspecified or otherwise non-public address, judged here independently of the guard.
pub fn url_guard(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(url) = url::Url::parse(&text) else { return };
    let policy = AddressPolicy::new(Vec::new());
    if policy.check_url(&url).is_err() {
        return;
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return,
    };
    assert!(!forbidden(ip), "{text:?} ({ip}) passed the SSRF guard");
}

/// A deliberately plain list, kept apart from the guard's own code so that one cannot share the other's
/// mistakes: the addresses no fetch may reach.
fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded_low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) && forbidden_v4(embedded_low)) // mapped, compatible
                || (s[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] && forbidden_v4(embedded_low)) // NAT64
                || (s[0] == 0x2002 && forbidden_v4(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8))) // 6to4
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 0 || a == 10 || a == 127 || (a == 169 && b == 254) || (a == 172 && (16..32).contains(&b)) || (a == 192 && b == 168) || a >= 224
}

/// `glimpse serve --config FILE`: the TOML and the checks of each `[[model]]` table.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = glimpse_config::ConfigFile::parse(text);
}

/// The targets by name: what `fuzz/fuzz_targets/` wraps for cargo-fuzz and the short pass replays.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("gemini_request", gemini_request),
    ("interactions_request", interactions_request),
    ("openai_request", openai_request),
    ("cache_request", cache_request),
    ("upload_multipart", upload_multipart),
    ("upload_resumable", upload_resumable),
    ("image", image),
    ("base64", base64),
    ("url_guard", url_guard),
    ("config_toml", config_toml),
];
