//! Lenient scalar parsing (docs/gemini-api.md §1.4): integers as `40`, `40.0` or `"40"`; floats as numbers or strings;
//! base64 in the standard or URL-safe alphabet, padded or not.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(serde_json::Number),
    String(String),
}

fn to_f64<E: serde::de::Error>(raw: NumberOrString) -> Result<f64, E> {
    match raw {
        NumberOrString::Number(n) => n.as_f64().ok_or_else(|| E::custom("not a number")),
        NumberOrString::String(s) => s.trim().parse::<f64>().map_err(|_| E::custom(format!("'{s}' is not a number"))),
    }
}

fn to_integer<E: serde::de::Error>(raw: NumberOrString) -> Result<i64, E> {
    let value = to_f64(raw)?;
    if value.fract() != 0.0 || !value.is_finite() || value.abs() > 9.0e15 {
        return Err(E::custom(format!("{value} is not an integer")));
    }
    Ok(value as i64)
}

pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<NumberOrString>::deserialize(d)? {
        None => Ok(None),
        Some(raw) => {
            let v = to_integer::<D::Error>(raw)?;
            u32::try_from(v).map(Some).map_err(|_| serde::de::Error::custom(format!("{v} is out of range")))
        }
    }
}

pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<NumberOrString>::deserialize(d)?.map(to_integer::<D::Error>).transpose()
}

pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<NumberOrString>::deserialize(d)?.map(to_f64::<D::Error>).transpose()
}

/// A number field of another API's request (`temperature`, `top_k`…) read the same lenient way, its error named
/// after the field as that API's client wrote it. `read` is one of the `opt_*` functions above.
pub fn field<T>(
    value: Option<&serde_json::Value>,
    name: &str,
    read: fn(serde_json::Value) -> Result<Option<T>, serde_json::Error>,
) -> Result<Option<T>, glimpse_core::GlimpseError> {
    match value.filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => read(v.clone()).map_err(|e| glimpse_core::GlimpseError::invalid(format!("{name}: {e}"))),
    }
}

/// A list of strings (`stop`, `stop_sequences`); `None` when the items are not all strings.
pub fn strings(items: &[serde_json::Value]) -> Option<Vec<String>> {
    items.iter().map(|s| s.as_str().map(str::to_string)).collect()
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes either alphabet, ignoring ASCII whitespace (wrapped `base64` output).
pub fn decode_base64(data: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String;
    let data = if data.bytes().any(|b| b.is_ascii_whitespace()) {
        compact = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        compact.as_str()
    } else {
        data
    };
    if data.bytes().any(|b| b == b'-' || b == b'_') {
        URL_SAFE.decode(data)
    } else {
        STANDARD.decode(data)
    }
}

/// Upper bound of the decoded size of a base64 string, known without decoding it.
pub fn decoded_len_estimate(data: &str) -> usize {
    data.len() / 4 * 3 + 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "opt_u32")]
        k: Option<u32>,
    }

    #[test]
    fn integers_in_three_forms() {
        for (raw, want) in [("{\"k\":40}", 40), ("{\"k\":40.0}", 40), ("{\"k\":\"40\"}", 40)] {
            assert_eq!(serde_json::from_str::<T>(raw).unwrap().k, Some(want));
        }
        assert!(serde_json::from_str::<T>("{\"k\":40.5}").is_err());
        assert_eq!(serde_json::from_str::<T>("{}").unwrap().k, None);
    }

    #[test]
    fn both_alphabets_with_or_without_padding() {
        let bytes = [0xfbu8, 0xff, 0xfe, 0x3e, 0x3f];
        assert_eq!(decode_base64("-__-Pj8").unwrap(), bytes);
        assert_eq!(decode_base64("+//+Pj8=").unwrap(), bytes);
        assert_eq!(decode_base64("+//+\nPj8=").unwrap(), bytes);
        assert!(decode_base64("not base64!").is_err());
    }
}
