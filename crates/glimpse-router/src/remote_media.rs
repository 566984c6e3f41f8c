//! Images a request names instead of carrying: `fileData.fileUri` / Interactions `uri` (docs/gemini-api.md §2.3).
//! `files/{id}` or any URI whose path ends in `/files/{id}` is a File API file of the caller's project;
//! another http(s) URL is fetched (when the server allows fetching); `gs://` and the rest are refused.

use glimpse_core::media::{self, ImageFormat};
use glimpse_core::GlimpseError;
use glimpse_fetch::Fetcher;
use glimpse_files::FileStore;

/// A File API file used in a prompt is read into memory; larger files are refused rather than read.
pub const MAX_FILE_IMAGE_BYTES: u64 = 256 * 1024 * 1024;

/// Resolves references for one caller.
pub struct RemoteMedia<'a> {
    pub files: Option<&'a FileStore>,
    pub fetcher: Option<&'a Fetcher>,
    pub project: &'a str,
}

/// Bytes and, when known for sure, their format (otherwise the decoder sniffs).
pub struct LoadedMedia {
    pub bytes: Vec<u8>,
    pub format: Option<ImageFormat>,
}

enum Reference<'u> {
    File(&'u str),
    Url(&'u str),
}

fn is_file_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 40 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn classify(uri: &str) -> Result<Reference<'_>, GlimpseError> {
    let uri = uri.trim();
    if let Some(id) = uri.strip_prefix("files/") {
        return Ok(Reference::File(id));
    }
    if uri.starts_with("http://") || uri.starts_with("https://") {
        let path = uri.split(['?', '#']).next().unwrap_or(uri);
        if let Some((_, id)) = path.rsplit_once("/files/") {
            if is_file_id(id) {
                return Ok(Reference::File(id));
            }
        }
        return Ok(Reference::Url(uri));
    }
    if uri.starts_with("gs://") {
        return Err(GlimpseError::invalid(format!("Cloud Storage URIs are not supported by this server: {uri}")));
    }
    Err(GlimpseError::invalid(format!("Unsupported file URI: {uri}")))
}

impl RemoteMedia<'_> {
    pub async fn load(&self, uri: &str) -> Result<LoadedMedia, GlimpseError> {
        match classify(uri)? {
            Reference::File(id) => {
                let Some(files) = self.files else {
                    return Err(glimpse_files::store::no_such_file(id));
                };
                let (file, bytes) = files.read_for_prompt(self.project, id, MAX_FILE_IMAGE_BYTES).await?;
                // The stored MIME type is authoritative; a non-image type leaves the format to sniffing.
                Ok(LoadedMedia { bytes, format: media::parse_mime(&file.mime_type).ok() })
            }
            Reference::Url(url) => {
                let Some(fetcher) = self.fetcher else {
                    return Err(GlimpseError::invalid("Fetching images from http(s) URLs is disabled on this server."));
                };
                // Web servers often mislabel images: the bytes decide.
                let fetched = fetcher.fetch(url).await?;
                Ok(LoadedMedia { bytes: fetched.bytes, format: None })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_classified_like_the_real_api() {
        assert!(matches!(classify("files/abc123").unwrap(), Reference::File("abc123")));
        assert!(matches!(
            classify("https://generativelanguage.googleapis.com/v1beta/files/abc123").unwrap(),
            Reference::File("abc123")
        ));
        assert!(matches!(classify("http://127.0.0.1:8080/v1/files/x9?alt=json").unwrap(), Reference::File("x9")));
        assert!(matches!(classify("https://example.com/files/cat.png").unwrap(), Reference::Url(_)));
        assert!(classify("gs://bucket/cat.png").is_err());
        assert!(classify("ftp://x/y").is_err());
    }
}
