//! What decoding is held to: the client's schema or choice list, or for a detection prompt the family's
//! native box list, with JSON whitespace bounded.

use glimpse_core::OutputConstraint;
use mistralrs::Constraint;

/// The engine's constraint for a request. `detection_schema` is the family's box-list schema when the request
/// is a detection prompt (see [`OutputConstraint::or_detection_schema`]).
pub(crate) fn engine_constraint(requested: OutputConstraint, detection_schema: Option<serde_json::Value>) -> Constraint {
    let constraint = requested.or_detection_schema(detection_schema);
    match constraint {
        OutputConstraint::None => Constraint::None,
        OutputConstraint::JsonSchema(schema) => Constraint::JsonSchema(bounded_whitespace_json(schema)),
        OutputConstraint::Choice(options) => Constraint::Regex(OutputConstraint::choice_regex(&options)),
    }
}

/// Whitespace the JSON grammar allows between two tokens. llguidance's default allows any amount, and a weak
/// model can fill its whole budget with newlines; none at all (what this was first) forces models that learned
/// `{"key": [1, 2]}` (Qwen-VL's grounding answers, most JSON in training data) off their own tokens, and their
/// answers fall apart after the first separator. Up to two characters per gap keeps `": "`, `", "` and Qwen's
/// `[\n\t{` layout, and bounds what a weak model can add.
const JSON_WHITESPACE: &str = r"[\x20\x0A\x0D\x09]{1,2}";

fn bounded_whitespace_json(mut schema: serde_json::Value) -> serde_json::Value {
    if let serde_json::Value::Object(map) = &mut schema {
        map.entry("x-guidance").or_insert_with(|| serde_json::json!({"whitespace_pattern": JSON_WHITESPACE}));
    }
    schema
}
