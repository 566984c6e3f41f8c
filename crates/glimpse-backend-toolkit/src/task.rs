//! Which job a prompt asks for. The toolkit has no language model, so the job is read from the last user
//! turn's text by these rules, checked in this order (README, "The toolkit backend"):
//!
//! 1. asks for boxes (`box_2d`, "bounding boxes", "bbox") → detection (with masks when it asks for segmentation
//!    masks), as Gemini's own detection and segmentation prompts do;
//! 2. asks for points (Gemini's pointing prompt, "point to …") → points, `[{"point": [y, x], "label"}]`;
//! 3. "how many …" → counting;
//! 4. "is there / are there / do you see / does it contain / where is …" → presence (and position);
//! 5. "read", "text", "written", "say", "ocr", "transcribe", "words" → reading text;
//! 6. "classify", "what kind/type/breed/species/animal", "what is this", "category", "identify" → classification;
//! 7. "detect", "detection", "find", "locate", "boxes" → detection (of the things named, else of everything);
//! 8. "caption", "describe", "what's in", "what do you see", "summar…", "objects" → caption;
//! 9. anything else → an honest answer naming what the toolkit can do and that a VLM is needed.

use glimpse_core::grounding;
use glimpse_core::Prompt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    Detect { masks: bool },
    /// At most `limit` points ("no more than 10 items").
    Point { limit: Option<usize> },
    /// The phrase after "how many".
    Count(String),
    /// The phrase asked about.
    Presence(String),
    ReadText,
    Classify,
    Caption,
    Unsupported,
}

impl Task {
    pub fn of(prompt: &Prompt) -> Task {
        if grounding::is_detection_prompt(prompt) {
            return Task::Detect { masks: grounding::wants_masks(prompt) };
        }
        if grounding::is_pointing_prompt(prompt) {
            return Task::Point { limit: limit_of(&prompt.last_user_text()) };
        }
        Task::of_question(&prompt.last_user_text())
    }

    fn of_question(text: &str) -> Task {
        let q = format!(" {} ", text.to_lowercase().replace(['?', '!', '.', ',', ';', ':', '"'], " "));
        let q = q.split_whitespace().collect::<Vec<_>>().join(" ");
        let q = format!(" {q} ");
        if let Some(rest) = after(&q, &[" how many "]) {
            return Task::Count(subject(rest));
        }
        const PRESENCE: &[&str] = &[
            " is there ", " are there ", " do you see ", " can you see ", " does the image contain ", " does the image have ",
            " does the image show ", " does the picture contain ", " does the photo contain ", " does it contain ",
            " does this image contain ", " does this contain ", " is this image of ", " where is ", " where are ",
        ];
        if let Some(rest) = after(&q, PRESENCE) {
            return Task::Presence(subject(rest));
        }
        const READ: &[&str] = &[" read ", " text ", " written ", " say ", " says ", " ocr ", " transcribe ", " words ", " writing ", " sign say "];
        if READ.iter().any(|k| q.contains(k)) {
            return Task::ReadText;
        }
        const WHOLE_IMAGE: &[&str] = &[" what is this image ", " what is this picture ", " what is this photo ", " what is the image "];
        if WHOLE_IMAGE.iter().any(|k| q.contains(k)) {
            return Task::Caption;
        }
        const CLASSIFY: &[&str] = &[
            " classify ", " classification ", " what kind ", " what type ", " what breed ", " what species ", " what is this ",
            " what's this ", " what is it ", " what is that ", " category ", " which class ", " identify ", " what animal ",
            " which animal ", " what object ", " what thing ",
        ];
        if CLASSIFY.iter().any(|k| q.contains(k)) {
            return Task::Classify;
        }
        const DETECT: &[&str] = &[" detect ", " detection ", " find ", " locate ", " localize ", " boxes ", " box around "];
        if DETECT.iter().any(|k| q.contains(k)) {
            return Task::Detect { masks: false };
        }
        const CAPTION: &[&str] = &[
            " caption ", " describe ", " description ", " what is in ", " what's in ", " whats in ", " what do you see ",
            " summar", " objects ", " what is shown ", " what does the image show ", " what is happening ", " tell me about ",
        ];
        if CAPTION.iter().any(|k| q.contains(k)) {
            return Task::Caption;
        }
        Task::Unsupported
    }
}

/// The most items a prompt allows: "no more than 10 items", "at most 5", "up to 3".
fn limit_of(text: &str) -> Option<usize> {
    let words: Vec<String> = text.to_lowercase().split_whitespace().map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string()).collect();
    (0..words.len()).find_map(|i| {
        let after = match (words[i].as_str(), words.get(i + 1).map(String::as_str)) {
            ("up", Some("to")) => i + 2,
            ("than" | "most", _) => i + 1,
            _ => return None,
        };
        words.get(after)?.parse().ok()
    })
}

/// What follows the first of `keys` in `q`.
fn after<'a>(q: &'a str, keys: &[&str]) -> Option<&'a str> {
    keys.iter().filter_map(|k| q.find(k).map(|i| &q[i + k.len()..])).next()
}

/// The noun phrase a question is about: "a dog in the picture" → "dog".
fn subject(rest: &str) -> String {
    const ARTICLES: &[&str] = &["a", "an", "the", "any", "some", "of"];
    const ENDS: &[&str] = &[
        "are", "is", "do", "does", "can", "in", "on", "at", "there", "here", "visible", "shown", "present", "this", "that",
        "you", "i", "we", "to", "inside", "within",
    ];
    let words: Vec<&str> = rest.split_whitespace().skip_while(|w| ARTICLES.contains(w)).take_while(|w| !ENDS.contains(w)).collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_pick_their_task() {
        assert_eq!(Task::of_question("How many horses are there?"), Task::Count("horses".into()));
        assert_eq!(Task::of_question("how many red shapes in the image"), Task::Count("red shapes".into()));
        assert_eq!(Task::of_question("Is there a dog in this picture?"), Task::Presence("dog".into()));
        assert_eq!(Task::of_question("Where is the kite?"), Task::Presence("kite".into()));
        assert_eq!(Task::of_question("Are there any people?"), Task::Presence("people".into()));
        assert_eq!(Task::of_question("What does the sign say?"), Task::ReadText);
        assert_eq!(Task::of_question("Read the text in this image."), Task::ReadText);
        assert_eq!(Task::of_question("What breed is this dog?"), Task::Classify);
        assert_eq!(Task::of_question("Caption this image."), Task::Caption);
        assert_eq!(Task::of_question("What is in this image?"), Task::Caption);
        assert_eq!(Task::of_question("What is this image?"), Task::Caption);
        assert_eq!(Task::of_question("What is this?"), Task::Classify);
        assert_eq!(Task::of_question("What animal is this?"), Task::Classify);
        assert_eq!(Task::of_question("Why is the man sad?"), Task::Unsupported);
        // Asking for boxes or places in other words than `box_2d`.
        assert_eq!(Task::of_question("Find the bicycle."), Task::Detect { masks: false });
        assert_eq!(Task::of_question("Detect all objects."), Task::Detect { masks: false });
        assert_eq!(Task::of_question("Locate the dogs in this photo"), Task::Detect { masks: false });
        assert_eq!(Task::of_question("Find the text on the sign."), Task::ReadText);
    }

    #[test]
    fn pointing_prompts_carry_their_limit() {
        assert_eq!(limit_of("Point to no more than 10 items in the image."), Some(10));
        assert_eq!(limit_of("Point to at most 3 dogs"), Some(3));
        assert_eq!(limit_of("point to up to 4 things"), Some(4));
        assert_eq!(limit_of("Point to the bicycle."), None);
        assert_eq!(limit_of("Point to the dogs, no more than 2"), Some(2));
    }
}
