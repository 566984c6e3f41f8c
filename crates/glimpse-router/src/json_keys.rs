//! Key normalisation for proto-JSON bodies.
//!
//! The Python SDK dumps nested pydantic models with snake_case keys while top-level keys are camelCase; JS
//! sends camelCase; curl users copy either. Every key is mapped to camelCase before typed parsing, except
//! inside maps that hold user data (JSON Schemas, `properties` names, labels, function arguments), whose keys
//! must reach the model exactly as written.

use serde_json::Value;

/// Keys whose whole value is user data, left untouched.
const OPAQUE: &[&str] = &["responseJsonSchema", "parametersJsonSchema", "labels", "metadata", "args", "response"];
/// Keys whose value is an OpenAPI `Schema`: its keywords are normalised, its `properties` names are not.
const SCHEMA: &[&str] = &["responseSchema", "parameters"];

pub fn snake_to_camel(key: &str) -> String {
    if !key.contains('_') {
        return key.to_string();
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for (i, c) in key.chars().enumerate() {
        if c == '_' && i > 0 {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

pub fn normalize_gemini(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (key, mut child) in old {
                let key = snake_to_camel(&key);
                if SCHEMA.contains(&key.as_str()) {
                    normalize_schema(&mut child);
                } else if !OPAQUE.contains(&key.as_str()) {
                    normalize_gemini(&mut child);
                }
                map.insert(key, child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_gemini),
        _ => {}
    }
}

fn normalize_schema(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (key, mut child) in old {
                let key = snake_to_camel(&key);
                match key.as_str() {
                    "properties" => {
                        if let Value::Object(props) = &mut child {
                            props.values_mut().for_each(normalize_schema);
                        }
                    }
                    "example" | "default" | "enum" => {}
                    _ => normalize_schema(&mut child),
                }
                map.insert(key, child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_schema),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(mut value: Value) -> Value {
        normalize_gemini(&mut value);
        value
    }
    use serde_json::json;

    #[test]
    fn camel_cases_keys_at_any_depth() {
        let v = normalized(json!({"contents":[{"parts":[{"inline_data":{"mime_type":"image/png","data":"x"}}]}],
            "generation_config":{"thinking_config":{"include_thoughts":true}}}));
        assert_eq!(v["contents"][0]["parts"][0]["inlineData"]["mimeType"], "image/png");
        assert_eq!(v["generationConfig"]["thinkingConfig"]["includeThoughts"], true);
    }

    #[test]
    fn leaves_user_schemas_alone() {
        let v = normalized(json!({"generationConfig":{
            "response_json_schema":{"type":"object","properties":{"box_2d":{"type":"array"}}},
            "response_schema":{"type":"OBJECT","property_ordering":["box_2d"],
                "properties":{"box_2d":{"type":"ARRAY","max_items":4}}}}}));
        let cfg = &v["generationConfig"];
        assert!(cfg["responseJsonSchema"]["properties"]["box_2d"].is_object());
        assert!(cfg["responseSchema"]["propertyOrdering"].is_array());
        assert_eq!(cfg["responseSchema"]["properties"]["box_2d"]["maxItems"], 4);
        assert_eq!(cfg["responseSchema"]["propertyOrdering"][0], "box_2d");
    }
}
