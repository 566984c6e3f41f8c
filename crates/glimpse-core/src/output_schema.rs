//! Checks a response JSON Schema before any model work, so that a schema no answer can satisfy is the client's
//! `400 INVALID_ARGUMENT` with a reason, not a constrained decoder that stops mid-request with nothing it may
//! emit (llguidance's `NoExtensionBias`, which reached clients as a 500).
//!
//! Two checks, both independent of any model's tokenizer:
//! 1. References: a schema that can only be satisfied through itself — `{"$ref":"#/$defs/a"}` with `a` being
//!    `{"$ref":"#/$defs/a"}`, or an object whose required property is of its own type — has no finite instance.
//!    Recursion that can end (a tree whose `children` may be empty) is fine.
//! 2. The grammar: the schema is compiled by llguidance (the engine's own constraint library) over a
//!    byte-level vocabulary, and must compile and admit a first byte. This reports unsupported keywords, bad
//!    patterns and unsatisfiable combinations in llguidance's words.

use std::sync::OnceLock;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::ApproximateTokEnv;
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;

use crate::GlimpseError;

fn unusable(reason: impl std::fmt::Display) -> GlimpseError {
    GlimpseError::invalid(format!("The response JSON schema cannot be used for constrained decoding: {reason}"))
}

/// Refuses a schema that no JSON value can satisfy or that the constrained decoder cannot compile.
pub fn check_json_schema(schema: &Value) -> Result<(), GlimpseError> {
    if !has_finite_instance(schema, schema, &mut Vec::new()) {
        return Err(unusable(
            "it refers to itself with no way to end (a $ref cycle, or a required property of its own type), so no \
             finite JSON value matches it",
        ));
    }
    let Some(factory) = byte_level_factory() else { return Ok(()) };
    let parser = factory.create_parser(TopLevelGrammar::from_json_schema(schema.clone())).map_err(unusable)?;
    let mut matcher = Matcher::new(Ok(parser));
    match matcher.compute_mask() {
        Ok(mask) if !mask.is_zero() => Ok(()),
        Ok(_) => Err(unusable("no JSON value matches it")),
        Err(e) => Err(unusable(e)),
    }
}

/// An llguidance parser factory over a vocabulary of single bytes: enough to compile a grammar and ask what
/// may come first. Built once; `None` (logged) if llguidance cannot build it, which leaves only check 1.
fn byte_level_factory() -> Option<&'static ParserFactory> {
    static FACTORY: OnceLock<Option<ParserFactory>> = OnceLock::new();
    FACTORY
        .get_or_init(|| match ParserFactory::new_simple(&ApproximateTokEnv::single_byte_env()) {
            Ok(mut factory) => {
                factory.quiet();
                Some(factory)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the schema checker; response schemas are checked for cycles only");
                None
            }
        })
        .as_ref()
}

/// Whether some finite JSON value can satisfy `schema` as far as references go (`root` resolves local `$ref`s;
/// `visiting` holds the references being expanded on this path). Anything it cannot judge counts as satisfiable:
/// the grammar check has the last word.
fn has_finite_instance(root: &Value, schema: &Value, visiting: &mut Vec<String>) -> bool {
    let object = match schema {
        Value::Bool(accepts) => return *accepts,
        Value::Object(object) => object,
        _ => return true,
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        if visiting.iter().any(|r| r == reference) {
            return false;
        }
        if let Some(target) = reference.strip_prefix('#').and_then(|pointer| root.pointer(pointer)) {
            visiting.push(reference.to_string());
            let ok = has_finite_instance(root, target, visiting);
            visiting.pop();
            if !ok {
                return false;
            }
        }
    }
    let each = |key: &str| object.get(key).and_then(Value::as_array);
    let mut check = |s: &Value| has_finite_instance(root, s, visiting);
    if let Some(all) = each("allOf") {
        if !all.iter().all(&mut check) {
            return false;
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = each(key) {
            if !options.iter().any(&mut check) {
                return false;
            }
        }
    }
    match object.get("type").and_then(Value::as_str) {
        Some("object") => {
            let properties = object.get("properties");
            let required = each("required").into_iter().flatten().filter_map(Value::as_str);
            required.filter_map(|name| properties.and_then(|p| p.get(name))).all(check)
        }
        Some("array") => {
            let min_items = object.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
            let prefix = each("prefixItems").map(Vec::as_slice).unwrap_or_default();
            let from_prefix = prefix.iter().take(min_items).all(&mut check);
            let rest_needed = min_items > prefix.len();
            from_prefix && (!rest_needed || object.get("items").is_none_or(check))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(schema: Value) -> String {
        check_json_schema(&schema).expect_err(&format!("{schema} must be refused")).to_string()
    }

    #[test]
    fn a_reference_cycle_with_no_way_out_is_refused() {
        let message = refused(json!({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}));
        assert!(message.contains("refers to itself"), "{message}");
        refused(json!({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}}));
        refused(json!({
            "$ref": "#/$defs/node",
            "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}, "required": ["next"]}}
        }));
        refused(json!({
            "$ref": "#/$defs/list",
            "$defs": {"list": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/list"}}}
        }));
    }

    #[test]
    fn recursion_that_can_end_is_accepted() {
        let tree = json!({
            "$ref": "#/$defs/node",
            "$defs": {"node": {
                "type": "object",
                "properties": {"label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                "required": ["label", "children"]
            }}
        });
        check_json_schema(&tree).unwrap();
        let optional = json!({
            "$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}}},
            "$ref": "#/$defs/n"
        });
        check_json_schema(&optional).unwrap();
        let either = json!({"$defs": {"a": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"});
        check_json_schema(&either).unwrap();
    }

    #[test]
    fn ordinary_schemas_are_accepted() {
        for schema in [
            json!({}),
            json!({"type": "string", "enum": ["a", "b"]}),
            json!({"type": "array", "items": {"type": "object", "properties": {"box_2d": {"type": "array", "items": {"type": "integer"}}, "label": {"type": "string"}}, "required": ["box_2d", "label"]}}),
        ] {
            check_json_schema(&schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
        }
    }

    #[test]
    fn what_the_decoder_cannot_satisfy_is_refused_with_its_reason() {
        refused(json!(false));
        refused(json!({"type": "integer", "minimum": 5, "maximum": 1}));
        refused(json!({"allOf": [{"type": "string"}, {"type": "integer"}]}));
    }
}
