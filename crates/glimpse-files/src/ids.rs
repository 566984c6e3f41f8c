//! Identifiers. File ids are `[a-z0-9]` only: the Python SDK extracts ids from file URIs with `[a-z0-9]+`.

use glimpse_core::GlimpseError;
use rand::Rng;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_id(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// A new file id (16 characters, ~82 bits).
pub fn new_file_id() -> String {
    random_id(16)
}

/// A new upload id. It is the only credential of the Python SDK's chunk requests (they carry no API key),
/// so it is long enough (40 characters, ~206 bits) to be unguessable.
pub fn new_upload_id() -> String {
    random_id(40)
}

/// Validates a client-chosen file id (`files/{id}` or `{id}`): up to 40 lowercase alphanumerics or dashes,
/// not starting or ending with a dash (the File API's rule).
pub fn parse_custom_name(name: &str) -> Result<String, GlimpseError> {
    let id = name.strip_prefix("files/").unwrap_or(name);
    let valid = !id.is_empty()
        && id.len() <= 40
        && !id.starts_with('-')
        && !id.ends_with('-')
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(id.to_string())
    } else {
        Err(GlimpseError::invalid(format!(
            "Invalid file name \"{name}\": the id must be 1-40 lowercase letters, digits or dashes, and may not start or end with a dash."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_match_the_sdk_pattern() {
        let id = new_file_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_ne!(new_upload_id(), new_upload_id());
    }

    #[test]
    fn custom_names() {
        assert_eq!(parse_custom_name("files/my-cat-1").unwrap(), "my-cat-1");
        assert!(parse_custom_name("files/-bad").is_err());
        assert!(parse_custom_name("Upper").is_err());
        assert!(parse_custom_name(&"a".repeat(41)).is_err());
    }
}
