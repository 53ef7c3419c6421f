//! A small OpenAPI 3.0 schema checker for contract tests: enough of JSON Schema for the
//! vendors' specs (`$ref`, `allOf`/`oneOf`/`anyOf`, types, `nullable`, `enum`, `required`,
//! properties, `additionalProperties`, items, string/number/array bounds, `pattern`,
//! `date-time`), plus OpenAPI's `readOnly` rule for request bodies.
//!
//! `oneOf` is checked as "at least one": the PingOne spec's application variants do not
//! exclude each other (no `additionalProperties: false`), so an OIDC worker also satisfies the
//! looser variants. Tests that care check the intended variant directly.

use std::path::PathBuf;

use serde_json::Value;

/// Which direction a body travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client → server: `readOnly` properties must not be sent.
    Request,
    /// Server → client.
    Response,
}

/// A loaded OpenAPI document.
pub struct Spec {
    root: Value,
}

impl Spec {
    /// Loads `../shared/specs/<file>` relative to the crate; `None` (with a message) when the
    /// folder is not there, so contract tests skip outside the full workspace (under `CI=true`
    /// they fail instead).
    pub fn load(file: &str) -> Option<Spec> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/specs")
            .join(file);
        let Ok(text) = std::fs::read_to_string(&path) else {
            super::skip_unless_ci(&format!("{} is not available", path.display()));
            return None;
        };
        let root: Value = serde_saphyr::from_str(&text).expect("the spec is valid YAML");
        Some(Spec { root })
    }

    /// A document read from a value, for unit tests of the checker.
    pub fn from_value(root: Value) -> Spec {
        Spec { root }
    }

    /// The whole document.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// Follows `$ref`s to the schema or object they name.
    pub fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local references are supported: {reference}"));
            value = self
                .root
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling reference {reference}"));
        }
        value
    }

    /// A named component schema.
    pub fn schema(&self, name: &str) -> &Value {
        self.root
            .pointer(&format!("/components/schemas/{name}"))
            .unwrap_or_else(|| panic!("no schema {name}"))
    }

    fn operation(&self, path: &str, method: &str) -> &Value {
        let paths = self.root.get("paths").expect("paths");
        paths
            .get(path)
            .and_then(|item| item.get(method.to_ascii_lowercase()))
            .unwrap_or_else(|| panic!("the spec has no {method} {path}"))
    }

    /// The JSON schema of an operation's response with this status; `None` when the spec
    /// declares the status without a body. Panics when the status is not declared at all.
    pub fn response_schema(&self, path: &str, method: &str, status: u16) -> Option<&Value> {
        let operation = self.operation(path, method);
        let response = operation
            .pointer(&format!("/responses/{status}"))
            .unwrap_or_else(|| panic!("{method} {path} does not declare status {status}"));
        let response = self.resolve(response);
        response.pointer("/content/application~1json/schema")
    }

    /// The JSON schema of an operation's request body.
    pub fn request_schema(&self, path: &str, method: &str) -> &Value {
        self.operation(path, method)
            .pointer("/requestBody/content/application~1json/schema")
            .unwrap_or_else(|| panic!("{method} {path} has no JSON request body"))
    }

    /// Every violation of `schema` by `value`, as `pointer: problem` lines.
    pub fn validate(&self, schema: &Value, value: &Value, direction: Direction) -> Vec<String> {
        self.validate_at(schema, value, direction, "")
    }

    /// Like [`Spec::validate`], with every line starting at `at` (e.g. the exchange checked).
    pub fn validate_at(
        &self,
        schema: &Value,
        value: &Value,
        direction: Direction,
        at: &str,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, value, direction, at, &mut errors);
        errors
    }

    fn check(
        &self,
        schema: &Value,
        value: &Value,
        direction: Direction,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        let schema = self.resolve(schema);
        if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.check(part, value, direction, at, errors);
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let mut reports = Vec::new();
                let matched = options.iter().any(|option| {
                    let mut sub = Vec::new();
                    self.check(option, value, direction, at, &mut sub);
                    let ok = sub.is_empty();
                    reports.push(sub);
                    ok
                });
                if !matched {
                    errors.push(format!(
                        "{at}: matches none of {key}: {}",
                        reports
                            .iter()
                            .map(|r| r.join(", "))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ));
                }
            }
        }
        if let Some(kind) = schema.get("type").and_then(Value::as_str) {
            let ok = match kind {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                other => panic!("unknown type {other}"),
            };
            if !ok {
                errors.push(format!("{at}: expected {kind}, found {value}"));
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        match value {
            Value::Object(object) => {
                if let Some(required) = schema.get("required").and_then(Value::as_array) {
                    for name in required.iter().filter_map(Value::as_str) {
                        if !object.contains_key(name) {
                            errors.push(format!("{at}: missing required {name}"));
                        }
                    }
                }
                let properties = schema.get("properties").and_then(Value::as_object);
                for (name, item) in object {
                    let here = format!("{at}/{name}");
                    match properties.and_then(|p| p.get(name)) {
                        Some(property) => {
                            let resolved = self.resolve(property);
                            if direction == Direction::Request
                                && (property.get("readOnly") == Some(&Value::Bool(true))
                                    || resolved.get("readOnly") == Some(&Value::Bool(true)))
                            {
                                errors.push(format!("{here}: read-only property sent"));
                            }
                            self.check(property, item, direction, &here, errors);
                        }
                        None => match schema.get("additionalProperties") {
                            Some(Value::Bool(false)) => {
                                errors.push(format!("{here}: property not allowed"));
                            }
                            Some(extra @ Value::Object(_)) => {
                                self.check(extra, item, direction, &here, errors);
                            }
                            _ => {}
                        },
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        self.check(
                            item_schema,
                            item,
                            direction,
                            &format!("{at}/{index}"),
                            errors,
                        );
                    }
                }
                if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                    && (items.len() as u64) < min
                {
                    errors.push(format!("{at}: fewer than {min} items"));
                }
                if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                    && (items.len() as u64) > max
                {
                    errors.push(format!("{at}: more than {max} items"));
                }
            }
            Value::String(text) => {
                let length = text.chars().count() as u64;
                if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                    && length < min
                {
                    errors.push(format!("{at}: shorter than {min}"));
                }
                if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                    && length > max
                {
                    errors.push(format!("{at}: longer than {max}"));
                }
                if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                    let regex = regex::Regex::new(pattern).expect("the spec's patterns compile");
                    if !regex.is_match(text) {
                        errors.push(format!("{at}: does not match {pattern}"));
                    }
                }
                if schema.get("format").and_then(Value::as_str) == Some("date-time")
                    && text.parse::<jiff::Timestamp>().is_err()
                {
                    errors.push(format!("{at}: {text:?} is not an RFC 3339 date-time"));
                }
            }
            Value::Number(number) => {
                let number = number.as_f64().unwrap_or_default();
                if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                    && number < min
                {
                    errors.push(format!("{at}: below {min}"));
                }
                if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                    && number > max
                {
                    errors.push(format!("{at}: above {max}"));
                }
            }
            _ => {}
        }
    }
}
