//! `mediaResolution` as a per-request image-token budget.
//!
//! Gemini 3 documents a maximum number of tokens per image for each level; Glimpse gives the model's processor
//! the same budget (for Qwen-VL: max_pixels = budget × 28²), so a higher level really means more detail, and
//! the token count reported is what the model consumed, never more than the level allows.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaResolution {
    Unspecified,
    Low,
    Medium,
    High,
    UltraHigh,
}

/// The largest per-image token budget a request can ask for (`MEDIA_RESOLUTION_ULTRA_HIGH`).
pub const MAX_TOKEN_BUDGET: u32 = 2240;

impl MediaResolution {
    /// Accepts the proto enum names in any case, with or without the `MEDIA_RESOLUTION_` prefix (Interactions
    /// uses `low`/`high`), and the enum numbers.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim().to_ascii_uppercase();
        let v = v.strip_prefix("MEDIA_RESOLUTION_").unwrap_or(&v);
        Some(match v {
            "UNSPECIFIED" | "0" => MediaResolution::Unspecified,
            "LOW" | "1" => MediaResolution::Low,
            "MEDIUM" | "2" => MediaResolution::Medium,
            "HIGH" | "3" => MediaResolution::High,
            "ULTRA_HIGH" | "ULTRAHIGH" | "4" => MediaResolution::UltraHigh,
            _ => return None,
        })
    }

    /// Maximum image tokens per image (Gemini 3 table); `None` means the model's own default.
    pub fn token_budget(self) -> Option<u32> {
        match self {
            MediaResolution::Unspecified => None,
            MediaResolution::Low => Some(280),
            MediaResolution::Medium => Some(560),
            MediaResolution::High => Some(1120),
            MediaResolution::UltraHigh => Some(MAX_TOKEN_BUDGET),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_prefix() {
        assert_eq!(MediaResolution::parse("MEDIA_RESOLUTION_LOW"), Some(MediaResolution::Low));
        assert_eq!(MediaResolution::parse("media_resolution_high"), Some(MediaResolution::High));
        assert_eq!(MediaResolution::parse("ultra_high"), Some(MediaResolution::UltraHigh));
        assert_eq!(MediaResolution::parse("2"), Some(MediaResolution::Medium));
        assert_eq!(MediaResolution::parse("huge"), None);
        assert_eq!(MediaResolution::High.token_budget(), Some(1120));
    }
}
