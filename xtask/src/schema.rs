//! A small JSON Schema (2020-12) validator for the CAWS schemas in `.caws/schemas/`.
//!
//! It implements the keywords those schemas use: `type` (one or a list), `required`,
//! `properties`, `additionalProperties: false`, `items`, `minItems`, `enum`,
//! `pattern`, `minLength`, `minimum`, `maximum`. Any other keyword is an error, so a
//! schema can never lean on a keyword that would be silently ignored here.

use serde_json::Value;

const KNOWN: [&str; 15] = [
    "$schema",
    "$id",
    "title",
    "type",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minItems",
    "enum",
    "pattern",
    "minLength",
    "minimum",
    "maximum",
    "description",
];

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.as_f64().is_some_and(|x| x.fract() == 0.0),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// Every violation of `schema` by `value`, as `path: message`.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "$", &mut errors);
    errors
}

fn check(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        errors.push(format!("{path}: schema is not an object"));
        return;
    };
    for k in s.keys() {
        if !KNOWN.contains(&k.as_str()) {
            errors.push(format!("{path}: unsupported schema keyword '{k}'"));
        }
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)),
            _ => false,
        };
        if !ok {
            errors.push(format!("{path}: expected type {t}, got {v}"));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.iter().any(|x| x == v)
    {
        errors.push(format!(
            "{path}: {v} is not one of {}",
            Value::Array(e.clone())
        ));
    }
    if let Some(text) = v.as_str() {
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && (text.chars().count() as u64) < min
        {
            errors.push(format!("{path}: shorter than {min} characters"));
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            match regex::Regex::new(p) {
                Ok(re) if re.is_match(text) => {}
                Ok(_) => errors.push(format!("{path}: '{text}' does not match {p}")),
                Err(e) => errors.push(format!("{path}: bad pattern {p}: {e}")),
            }
        }
    }
    if let Some(x) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && x < min
        {
            errors.push(format!("{path}: {x} < minimum {min}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && x > max
        {
            errors.push(format!("{path}: {x} > maximum {max}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(k) = r.as_str()
                && !obj.contains_key(k)
            {
                errors.push(format!("{path}: missing required '{k}'"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, child) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(sub, child, &format!("{path}.{k}"), errors),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{path}: unexpected property '{k}'"));
                }
                None => {}
            }
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            errors.push(format!("{path}: fewer than {min} items"));
        }
        if let Some(sub) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(sub, item, &format!("{path}[{i}]"), errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keywords_are_enforced() {
        let schema = json!({
            "type": "object", "required": ["id", "n"], "additionalProperties": false,
            "properties": {
                "id": {"type": "string", "pattern": "^[A-Z]+-\\d+$", "minLength": 3},
                "n": {"type": "integer", "enum": [1, 2, 3], "minimum": 1, "maximum": 3},
                "xs": {"type": "array", "minItems": 1, "items": {"type": ["string", "null"]}}
            }
        });
        assert!(validate(&schema, &json!({"id": "AB-1", "n": 2, "xs": ["a", null]})).is_empty());
        let bad = validate(&schema, &json!({"id": "ab-1", "n": 4, "xs": [], "zz": 1}));
        assert_eq!(bad.len(), 5, "{bad:?}"); // pattern, enum, maximum, minItems, additional
        assert!(
            validate(&schema, &json!({"n": 1.5}))
                .iter()
                .any(|e| e.contains("missing required 'id'"))
        );
        assert!(validate(&json!({"oneOf": []}), &json!(1))[0].contains("unsupported"));
    }
}
