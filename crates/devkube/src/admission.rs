//! Offline admission of custom resources, as kube-apiserver performs it from a CRD: null and
//! unknown-field pruning, defaulting, OpenAPI v3 schema validation, CEL rules
//! (`x-kubernetes-validations`, including transition rules with `oldSelf`), and the
//! structural-schema rules a CRD itself must satisfy.
//!
//! devkube enforces CRDs with it wherever a real API server is not started (the playground and
//! the fast tests); the e2e suite holds the same resources to kube-apiserver's own admission. Errors read like the API server's (`spec.tier: Unsupported value: "qa":
//! supported values: ...`), so what a test checks is what `kubectl` would print.
//!
//! Known differences from kube-apiserver, none of which the CRDs served so far rely on:
//! `format` is not checked; `allOf`/`anyOf`/`oneOf`/`not` are not evaluated; CEL cost budgets are
//! not estimated; a CEL failure without a `reason` reports the type of the value at the failing
//! path where the API server reports the type of the node that declares the rule.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Mutex;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{CompiledSchema, ErrorKind, Validator, compile_schema};
use regex::Regex;
use serde_json::{Map, Value};

/// The category of a field error, as Kubernetes names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// A required field is missing.
    Required,
    /// The value is not acceptable.
    Invalid,
    /// The value is not one of the allowed ones.
    NotSupported,
    /// The value is acceptable in general but not here.
    Forbidden,
    /// A string is longer than allowed.
    TooLong,
    /// A list has more items than allowed.
    TooMany,
    /// A list holds the same item or key twice.
    Duplicate,
    /// A rule could not be evaluated.
    Internal,
}

impl FieldErrorKind {
    /// The cause type of a Kubernetes `Status` (`details.causes[].reason`).
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Internal => "InternalError",
        }
    }

    fn label(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Internal => "Internal error",
        }
    }
}

/// One reason an object was rejected, with the path of the field concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.environments[1].name`.
    pub field: String,
    /// Category of the error.
    pub kind: FieldErrorKind,
    /// The offending value as the API server prints it (quoted for strings), if it prints one.
    pub value: Option<String>,
    /// What is wrong.
    pub detail: String,
}

impl FieldError {
    fn new(field: &str, kind: FieldErrorKind, value: Option<String>, detail: String) -> Self {
        Self {
            field: field.to_owned(),
            kind,
            value,
            detail,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.kind.label())?;
        if let Some(value) = &self.value {
            write!(f, ": {value}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// An object the schema and rules rejected; the causes in the order found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Every reason the object was rejected.
    pub causes: Vec<FieldError>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let causes: Vec<String> = self.causes.iter().map(ToString::to_string).collect();
        if causes.len() == 1 {
            f.write_str(&causes[0])
        } else {
            write!(f, "[{}]", causes.join(", "))
        }
    }
}

impl std::error::Error for Rejection {}

/// An admitted object: pruned and defaulted, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct Admitted {
    /// The object as the API server would store it.
    pub object: Value,
    /// Paths of fields the schema does not declare, which were dropped. Strict field validation
    /// (kubectl's default) rejects an object with any.
    pub unknown_fields: Vec<String>,
}

/// Why a CRD cannot be used for admission.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The CRD does not serve the requested version.
    #[error("CRD {crd} has no version {version}")]
    NoSuchVersion {
        /// Name of the CRD.
        crd: String,
        /// The version asked for.
        version: String,
    },
    /// The version has no `openAPIV3Schema`.
    #[error("CRD {crd} version {version} has no openAPIV3Schema")]
    NoSchema {
        /// Name of the CRD.
        crd: String,
        /// The version concerned.
        version: String,
    },
    /// The schema is not structural or its rules do not compile.
    #[error("CRD {crd} is not structural: {}", problems.join("; "))]
    NotStructural {
        /// Name of the CRD.
        crd: String,
        /// Each structural problem.
        problems: Vec<String>,
    },
}

/// The admission rules of one version of one CRD.
pub struct Admission {
    schema: Value,
    rules: CompiledSchema,
    validator: Validator,
    patterns: Mutex<HashMap<String, Option<Regex>>>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

impl Admission {
    /// Admission for the given version of a CRD; fails when the CRD is not structural.
    pub fn for_version(crd: &CustomResourceDefinition, version: &str) -> Result<Self, SchemaError> {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let served = crd
            .spec
            .versions
            .iter()
            .find(|v| v.name == version)
            .ok_or_else(|| SchemaError::NoSuchVersion {
                crd: name.clone(),
                version: version.to_owned(),
            })?;
        let schema = served
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .ok_or_else(|| SchemaError::NoSchema {
                crd: name.clone(),
                version: version.to_owned(),
            })?;
        let schema = serde_json::to_value(schema).expect("a schema serializes to JSON");
        Self::for_schema(&name, schema)
    }

    /// Admission for the storage version of a CRD.
    pub fn for_crd(crd: &CustomResourceDefinition) -> Result<Self, SchemaError> {
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.storage)
            .or_else(|| crd.spec.versions.first())
            .map(|v| v.name.clone())
            .unwrap_or_default();
        Self::for_version(crd, &version)
    }

    fn for_schema(crd: &str, schema: Value) -> Result<Self, SchemaError> {
        let admission = Self {
            rules: compile_schema(&schema),
            schema,
            validator: Validator::new(),
            patterns: Mutex::new(HashMap::new()),
        };
        let problems = admission.structural_problems();
        if problems.is_empty() {
            Ok(admission)
        } else {
            Err(SchemaError::NotStructural {
                crd: crd.to_owned(),
                problems,
            })
        }
    }

    /// The `openAPIV3Schema` this admission enforces.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Admits a create (`old` is `None`) or an update of `object`: prunes nulls of non-nullable
    /// fields and unknown fields, applies defaults, then validates the schema and the CEL rules.
    pub fn admit(&self, object: &Value, old: Option<&Value>) -> Result<Admitted, Rejection> {
        let mut unknown_fields = Vec::new();
        let object = prune_and_default(&self.schema, object, "", true, &mut unknown_fields);
        let mut causes = Vec::new();
        self.validate_node(&self.schema, &object, "", true, &mut causes);
        let schema_valid = causes.is_empty();
        // As kube-apiserver: a missing, unsupported, too long, too many or mistyped value
        // blocks the CEL rules (they would be evaluated over a value of the wrong shape), and
        // one more cause says so; other schema errors leave the rules to run.
        let blocking = causes.iter().any(|c| {
            matches!(
                c.kind,
                FieldErrorKind::Required
                    | FieldErrorKind::NotSupported
                    | FieldErrorKind::TooLong
                    | FieldErrorKind::TooMany
            ) || (c.kind == FieldErrorKind::Invalid && c.detail.contains(" must be of type "))
        });
        if blocking {
            if has_rules(&self.schema) {
                causes.push(FieldError::new(
                    "<nil>",
                    FieldErrorKind::Invalid,
                    Some("\"null\"".to_owned()),
                    "some validation rules were not checked because the object was invalid; \
                     correct the existing errors to complete validation"
                        .to_owned(),
                ));
            }
        } else if let Err(errors) = self.validator.validate_compiled(&self.rules, &object, old) {
            for error in errors.into_vec() {
                // Rules over a value of the wrong shape fail to evaluate; the schema error above
                // already says what is wrong, as the API server does.
                if !schema_valid && error.kind != ErrorKind::ValidationFailure {
                    continue;
                }
                causes.push(cel_error(&self.schema, &object, &error));
            }
        }
        if causes.is_empty() {
            Ok(Admitted {
                object,
                unknown_fields,
            })
        } else {
            Err(Rejection { causes })
        }
    }

    /// The structural-schema rules of
    /// <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema>
    /// and the well-formedness of list types, defaults and CEL rules, as the API server checks
    /// them when a CRD is created. Empty when the schema is acceptable.
    pub fn structural_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.schema.get("type").and_then(Value::as_str) != Some("object") {
            problems.push("the root schema must be of type object".to_owned());
        }
        if let Some(metadata) = self.schema.pointer("/properties/metadata") {
            let allowed = ["type", "properties", "description"];
            if metadata
                .as_object()
                .is_some_and(|m| m.keys().any(|k| !allowed.contains(&k.as_str())))
            {
                problems.push("metadata may only restrict name and generateName".to_owned());
            }
            if let Some(props) = metadata.get("properties").and_then(Value::as_object)
                && props.keys().any(|k| k != "name" && k != "generateName")
            {
                problems.push("metadata may only restrict name and generateName".to_owned());
            }
        }
        self.check_node(&self.schema, "", false, &mut problems);
        collect_compilation_errors(&self.rules, &mut problems);
        problems
    }

    fn check_node(&self, node: &Value, path: &str, in_junctor: bool, problems: &mut Vec<String>) {
        let at = if path.is_empty() { "<root>" } else { path };
        let Some(map) = node.as_object() else {
            problems.push(format!("{at}: a schema must be an object"));
            return;
        };
        for forbidden in [
            "$ref",
            "definitions",
            "$schema",
            "id",
            "additionalItems",
            "patternProperties",
            "dependencies",
        ] {
            if map.contains_key(forbidden) {
                problems.push(format!(
                    "{at}: {forbidden} is forbidden in a structural schema"
                ));
            }
        }
        if map.get("uniqueItems") == Some(&Value::Bool(true)) {
            problems.push(format!(
                "{at}: uniqueItems cannot be true; use x-kubernetes-list-type: set"
            ));
        }
        if in_junctor {
            for key in [
                "description",
                "type",
                "default",
                "additionalProperties",
                "nullable",
            ] {
                if map.contains_key(key) {
                    problems.push(format!(
                        "{at}: {key} is forbidden inside allOf/anyOf/oneOf/not"
                    ));
                }
            }
        } else {
            let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
            let preserve = preserves_unknown(map);
            match map.get("type").and_then(Value::as_str) {
                Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
                Some(other) => problems.push(format!("{at}: unknown type {other:?}")),
                None if int_or_string || preserve => {}
                None => problems.push(format!("{at}: type must not be empty")),
            }
        }
        match map.get("additionalProperties") {
            Some(Value::Bool(false)) => {
                problems.push(format!("{at}: additionalProperties: false is forbidden"))
            }
            Some(_) if map.contains_key("properties") => problems.push(format!(
                "{at}: properties and additionalProperties are mutually exclusive"
            )),
            _ => {}
        }
        if let Some(items) = map.get("items")
            && items.is_array()
        {
            problems.push(format!("{at}: items must be a single schema, not a list"));
        }
        self.check_list_type(map, at, problems);
        if let Some(default) = map.get("default") {
            let mut unknown = Vec::new();
            prune_and_default(node, default, path, false, &mut unknown);
            if !unknown.is_empty() {
                problems.push(format!(
                    "{at}: the default must be pruned (holds undeclared fields)"
                ));
            }
            let mut causes = Vec::new();
            self.validate_node(node, default, path, false, &mut causes);
            for cause in causes {
                problems.push(format!("{at}: invalid default: {cause}"));
            }
        }
        if let Some(rules) = map.get("x-kubernetes-validations") {
            for rule in rules.as_array().into_iter().flatten() {
                if rule
                    .get("rule")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    problems.push(format!("{at}: a validation rule needs a non-empty rule"));
                }
                if let Some(field_path) = rule.get("fieldPath").and_then(Value::as_str)
                    && !field_path_exists(node, field_path)
                {
                    problems.push(format!(
                        "{at}: fieldPath {field_path:?} does not name a field of the schema"
                    ));
                }
            }
        }
        if let Some(props) = map.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                self.check_node(child, &join_field(path, name), in_junctor, problems);
            }
        }
        if let Some(items) = map.get("items").filter(|i| i.is_object()) {
            self.check_node(items, &format!("{path}[*]"), in_junctor, problems);
        }
        if let Some(additional) = map.get("additionalProperties").filter(|a| a.is_object()) {
            self.check_node(additional, &format!("{path}[*]"), in_junctor, problems);
        }
        for junctor in ["allOf", "anyOf", "oneOf"] {
            for child in map
                .get(junctor)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.check_node(child, path, true, problems);
            }
        }
        if let Some(child) = map.get("not") {
            self.check_node(child, path, true, problems);
        }
    }

    fn check_list_type(&self, map: &Map<String, Value>, at: &str, problems: &mut Vec<String>) {
        let Some(list_type) = map.get("x-kubernetes-list-type") else {
            if map.contains_key("x-kubernetes-list-map-keys") {
                problems.push(format!(
                    "{at}: x-kubernetes-list-map-keys needs x-kubernetes-list-type: map"
                ));
            }
            return;
        };
        if map.get("type").and_then(Value::as_str) != Some("array") {
            problems.push(format!(
                "{at}: x-kubernetes-list-type applies to arrays only"
            ));
        }
        let items = map.get("items").cloned().unwrap_or(Value::Null);
        let item_type = items.get("type").and_then(Value::as_str);
        match list_type.as_str() {
            Some("atomic") => {}
            Some("set") => {
                if !matches!(item_type, Some("string" | "integer" | "number" | "boolean")) {
                    problems.push(format!(
                        "{at}: x-kubernetes-list-type: set needs scalar items"
                    ));
                }
            }
            Some("map") => {
                if item_type != Some("object") {
                    problems.push(format!(
                        "{at}: x-kubernetes-list-type: map needs object items"
                    ));
                }
                let keys = map
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if keys.is_empty() {
                    problems.push(format!(
                        "{at}: x-kubernetes-list-type: map needs x-kubernetes-list-map-keys"
                    ));
                }
                let required: BTreeSet<&str> = items
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                for key in keys.iter().filter_map(Value::as_str) {
                    let Some(key_schema) = items.pointer(&format!("/properties/{key}")) else {
                        problems.push(format!(
                            "{at}: list map key {key:?} is not a property of the items"
                        ));
                        continue;
                    };
                    if !matches!(
                        key_schema.get("type").and_then(Value::as_str),
                        Some("string" | "integer" | "number" | "boolean")
                    ) {
                        problems.push(format!("{at}: list map key {key:?} must be a scalar"));
                    }
                    if !required.contains(key) && key_schema.get("default").is_none() {
                        problems.push(format!(
                            "{at}: list map key {key:?} must be required or defaulted"
                        ));
                    }
                }
            }
            _ => problems.push(format!(
                "{at}: x-kubernetes-list-type must be atomic, set or map"
            )),
        }
    }

    fn validate_node(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        is_root: bool,
        causes: &mut Vec<FieldError>,
    ) {
        if value.is_null() {
            // Nulls of non-nullable fields were pruned; what is left is allowed.
            return;
        }
        let Some(map) = schema.as_object() else {
            return;
        };
        if !self.check_type(map, value, path, causes) {
            return;
        }
        if let Some(allowed) = map.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let supported: Vec<String> = allowed.iter().map(render_value).collect();
            causes.push(FieldError::new(
                path,
                FieldErrorKind::NotSupported,
                Some(render_value(value)),
                format!("supported values: {}", supported.join(", ")),
            ));
        }
        match value {
            Value::String(text) => self.validate_string(map, text, path, causes),
            Value::Number(number) => validate_number(map, number, value, path, causes),
            Value::Array(items) => self.validate_array(map, items, path, causes),
            Value::Object(fields) => {
                for required in map
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(name) = required.as_str()
                        && fields.get(name).is_none_or(Value::is_null)
                    {
                        causes.push(FieldError::new(
                            &join_field(path, name),
                            FieldErrorKind::Required,
                            None,
                            String::new(),
                        ));
                    }
                }
                let properties = map.get("properties").and_then(Value::as_object);
                for (name, child) in fields {
                    if is_root && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    let child_schema = properties
                        .and_then(|p| p.get(name))
                        .or_else(|| map.get("additionalProperties").filter(|a| a.is_object()));
                    if let Some(child_schema) = child_schema {
                        let child_path = if properties.is_some_and(|p| p.contains_key(name)) {
                            join_field(path, name)
                        } else {
                            format!("{path}[{name}]")
                        };
                        self.validate_node(child_schema, child, &child_path, false, causes);
                    }
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// Checks the JSON type against the schema's; false when it does not match.
    fn check_type(
        &self,
        map: &Map<String, Value>,
        value: &Value,
        path: &str,
        causes: &mut Vec<FieldError>,
    ) -> bool {
        let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        let actual = json_type(value);
        let matches = if int_or_string {
            matches!(actual, "string" | "integer")
        } else {
            match map.get("type").and_then(Value::as_str) {
                None => true,
                Some("number") => matches!(actual, "number" | "integer"),
                Some(expected) => expected == actual,
            }
        };
        if !matches {
            let expected = if int_or_string {
                "integer or string"
            } else {
                map.get("type").and_then(Value::as_str).unwrap_or_default()
            };
            causes.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                Some(format!("{actual:?}")),
                format!("{path} in body must be of type {expected}: {actual:?}"),
            ));
        }
        matches
    }

    fn validate_string(
        &self,
        map: &Map<String, Value>,
        text: &str,
        path: &str,
        causes: &mut Vec<FieldError>,
    ) {
        let length = text.chars().count() as u64;
        if let Some(max) = map.get("maxLength").and_then(Value::as_u64)
            && length > max
        {
            causes.push(FieldError::new(
                path,
                FieldErrorKind::TooLong,
                None,
                format!("may not be more than {max} bytes"),
            ));
        }
        if let Some(min) = map.get("minLength").and_then(Value::as_u64)
            && length < min
        {
            causes.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                Some(render_value(&Value::String(text.to_owned()))),
                format!("{path} in body should be at least {min} chars long"),
            ));
        }
        if let Some(pattern) = map.get("pattern").and_then(Value::as_str)
            && !self.matches_pattern(pattern, text)
        {
            causes.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                Some(render_value(&Value::String(text.to_owned()))),
                format!("{path} in body should match '{pattern}'"),
            ));
        }
    }

    fn matches_pattern(&self, pattern: &str, text: &str) -> bool {
        let mut cache = self.patterns.lock().unwrap_or_else(|p| p.into_inner());
        let compiled = cache
            .entry(pattern.to_owned())
            .or_insert_with(|| Regex::new(pattern).ok());
        // A pattern that does not compile is a structural problem reported elsewhere; it
        // rejects every value rather than admitting anything.
        compiled.as_ref().is_some_and(|re| re.is_match(text))
    }

    fn validate_array(
        &self,
        map: &Map<String, Value>,
        items: &[Value],
        path: &str,
        causes: &mut Vec<FieldError>,
    ) {
        if let Some(max) = map.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            causes.push(FieldError::new(
                path,
                FieldErrorKind::TooMany,
                Some(items.len().to_string()),
                format!("must have at most {max} items"),
            ));
        }
        if let Some(min) = map.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            causes.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                Some(items.len().to_string()),
                format!("{path} in body should have at least {min} items"),
            ));
        }
        match map.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => {
                for (index, item) in items.iter().enumerate() {
                    if items[..index].contains(item) {
                        causes.push(FieldError::new(
                            &format!("{path}[{index}]"),
                            FieldErrorKind::Duplicate,
                            Some(render_value(item)),
                            String::new(),
                        ));
                    }
                }
            }
            Some("map") => {
                let keys: Vec<&str> = map
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let mut seen = BTreeMap::new();
                for (index, item) in items.iter().enumerate() {
                    let key: Map<String, Value> = keys
                        .iter()
                        .map(|k| {
                            (
                                (*k).to_owned(),
                                item.get(*k).cloned().unwrap_or(Value::Null),
                            )
                        })
                        .collect();
                    let rendered = render_map_key(&key);
                    if seen.insert(rendered.clone(), index).is_some() {
                        causes.push(FieldError::new(
                            &format!("{path}[{index}]"),
                            FieldErrorKind::Duplicate,
                            Some(rendered),
                            String::new(),
                        ));
                    }
                }
            }
            _ => {}
        }
        if let Some(item_schema) = map.get("items") {
            for (index, item) in items.iter().enumerate() {
                self.validate_node(
                    item_schema,
                    item,
                    &format!("{path}[{index}]"),
                    false,
                    causes,
                );
            }
        }
    }
}

fn validate_number(
    map: &Map<String, Value>,
    number: &serde_json::Number,
    value: &Value,
    path: &str,
    causes: &mut Vec<FieldError>,
) {
    let Some(n) = number.as_f64() else { return };
    if let Some(max) = map.get("maximum").and_then(Value::as_f64) {
        let exclusive = map.get("exclusiveMaximum") == Some(&Value::Bool(true));
        if n > max || (exclusive && n == max) {
            let relation = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            causes.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                Some(render_value(value)),
                format!("{path} in body should be {relation} {max}"),
            ));
        }
    }
    if let Some(min) = map.get("minimum").and_then(Value::as_f64) {
        let exclusive = map.get("exclusiveMinimum") == Some(&Value::Bool(true));
        if n < min || (exclusive && n == min) {
            let relation = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            causes.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                Some(render_value(value)),
                format!("{path} in body should be {relation} {min}"),
            ));
        }
    }
}

/// Drops nulls of non-nullable fields and fields the schema does not declare, then fills in
/// defaults, depth first, as the API server does before validation.
fn prune_and_default(
    schema: &Value,
    value: &Value,
    path: &str,
    is_root: bool,
    unknown: &mut Vec<String>,
) -> Value {
    let Some(map) = schema.as_object() else {
        return value.clone();
    };
    match value {
        Value::Object(fields) => {
            let properties = map.get("properties").and_then(Value::as_object);
            let additional = map.get("additionalProperties").filter(|a| a.is_object());
            let preserve = preserves_unknown(map);
            let mut out = Map::new();
            for (name, child) in fields {
                if is_root && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                    out.insert(name.clone(), child.clone());
                    continue;
                }
                let child_schema = properties.and_then(|p| p.get(name)).or(additional);
                match child_schema {
                    Some(child_schema) => {
                        let nullable = child_schema.get("nullable") == Some(&Value::Bool(true));
                        if child.is_null() && !nullable {
                            continue;
                        }
                        let child_path = join_field(path, name);
                        out.insert(
                            name.clone(),
                            prune_and_default(child_schema, child, &child_path, false, unknown),
                        );
                    }
                    None if preserve => {
                        out.insert(name.clone(), child.clone());
                    }
                    None => unknown.push(join_field(path, name)),
                }
            }
            for (name, child_schema) in properties.into_iter().flatten() {
                if out.contains_key(name) {
                    continue;
                }
                if let Some(default) = child_schema.get("default") {
                    let child_path = join_field(path, name);
                    let defaulted =
                        prune_and_default(child_schema, default, &child_path, false, unknown);
                    out.insert(name.clone(), defaulted);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => match map.get("items") {
            Some(item_schema) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        prune_and_default(
                            item_schema,
                            item,
                            &format!("{path}[{index}]"),
                            false,
                            unknown,
                        )
                    })
                    .collect(),
            ),
            None => value.clone(),
        },
        _ => value.clone(),
    }
}

fn collect_compilation_errors(node: &CompiledSchema, problems: &mut Vec<String>) {
    for error in node.compilation_errors() {
        problems.push(format!("a CEL rule does not compile: {error}"));
    }
    let children = node
        .properties
        .values()
        .chain(node.items.as_deref())
        .chain(node.additional_properties.as_deref())
        .chain(&node.all_of)
        .chain(&node.one_of)
        .chain(&node.any_of);
    for child in children {
        collect_compilation_errors(child, problems);
    }
}

fn preserves_unknown(map: &Map<String, Value>) -> bool {
    map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

/// Whether a CEL rule's `fieldPath` (`.a.b`, `.a['b']`, `.list[0]`) names a declared field.
fn field_path_exists(node: &Value, field_path: &str) -> bool {
    let mut current = node;
    let Ok(segment) = Regex::new(r"^\.([A-Za-z_][A-Za-z0-9_]*)|^\['([^']+)'\]|^\[[0-9]+\]") else {
        return false;
    };
    let mut rest = field_path;
    while !rest.is_empty() {
        let Some(caps) = segment.captures(rest) else {
            return false;
        };
        let whole = caps.get(0).map_or(0, |m| m.end());
        if let Some(name) = caps.get(1).or_else(|| caps.get(2)) {
            match current.pointer(&format!("/properties/{}", name.as_str())) {
                Some(next) => current = next,
                None => return false,
            }
        } else {
            match current.get("items") {
                Some(next) => current = next,
                None => return false,
            }
        }
        rest = &rest[whole..];
    }
    true
}

/// Whether the schema has a CEL rule anywhere.
fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            map.contains_key("x-kubernetes-validations") || map.values().any(has_rules)
        }
        Value::Array(items) => items.iter().any(has_rules),
        _ => false,
    }
}

/// The `fieldPath` of the rule with expression `rule`, anywhere in the schema.
fn rule_field_path<'a>(schema: &'a Value, rule: &str) -> Option<&'a str> {
    match schema {
        Value::Object(map) => {
            let here = map
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|r| r.get("rule").and_then(Value::as_str) == Some(rule))
                .and_then(|r| r.get("fieldPath").and_then(Value::as_str));
            here.or_else(|| map.values().find_map(|v| rule_field_path(v, rule)))
        }
        Value::Array(items) => items.iter().find_map(|v| rule_field_path(v, rule)),
        _ => None,
    }
}

fn cel_error(
    schema: &Value,
    object: &Value,
    error: &kube::core::cel::ValidationError,
) -> FieldError {
    let field = error.field_path.clone();
    // The value named is the type of the node the rule is declared on, also when `fieldPath`
    // points the error at one of its fields (kube-apiserver: `Invalid value: "object"`).
    let node = rule_field_path(schema, &error.rule)
        .and_then(|suffix| field.strip_suffix(suffix))
        .unwrap_or(&field)
        .to_owned();
    let kind = match error.kind {
        ErrorKind::ValidationFailure => match error.reason.as_deref() {
            Some("FieldValueRequired") => FieldErrorKind::Required,
            Some("FieldValueForbidden") => FieldErrorKind::Forbidden,
            Some("FieldValueDuplicate") => FieldErrorKind::Duplicate,
            _ => FieldErrorKind::Invalid,
        },
        _ => FieldErrorKind::Internal,
    };
    let value = match kind {
        FieldErrorKind::Invalid | FieldErrorKind::Duplicate => {
            let at = value_at(object, &node).map_or("object", json_type);
            Some(format!("{at:?}"))
        }
        _ => None,
    };
    FieldError::new(&field, kind, value, error.message.clone())
}

/// The value at a dotted field path such as `spec.environments[1].name`.
fn value_at<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = object;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = part.split_once('[').map_or((part, ""), |(n, i)| (n, i));
        current = current.get(name)?;
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let index = index.trim_end_matches(']');
            current = match index.parse::<usize>() {
                Ok(i) => current.get(i)?,
                Err(_) => current.get(index)?,
            };
        }
    }
    Some(current)
}

fn join_field(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A list-map item's key as kube-apiserver prints it in a Duplicate value error: Go's `%#v` of
/// a `map[string]interface{}`, keys sorted.
fn render_map_key(key: &Map<String, Value>) -> String {
    let mut entries: Vec<(&String, &Value)> = key.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let entries: Vec<String> = entries
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                Value::Null => "interface {}(nil)".to_owned(),
                other => render_value(other),
            };
            format!("{name:?}:{value}")
        })
        .collect();
    format!("map[string]interface {{}}{{{}}}", entries.join(", "))
}

fn render_value(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn admission(schema: Value) -> Admission {
        Admission::for_schema("test", schema).expect("structural schema")
    }

    fn spec_schema(spec: Value) -> Value {
        json!({"type": "object", "properties": {"spec": spec}})
    }

    #[test]
    fn unknown_fields_and_nulls_are_pruned_and_defaults_applied() {
        let admission = admission(spec_schema(json!({
            "type": "object",
            "properties": {
                "realm": {"type": "string", "default": "alpha"},
                "nested": {"type": "object", "default": {},
                           "properties": {"policy": {"type": "string", "default": "Automatic"}}},
                "note": {"type": "string"},
                "maybe": {"type": "string", "nullable": true}
            }
        })));
        let admitted = admission
            .admit(
                &json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
                        "spec": {"note": null, "maybe": null, "extra": 1}}),
                None,
            )
            .unwrap();
        assert_eq!(
            admitted.object,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
                   "spec": {"realm": "alpha", "nested": {"policy": "Automatic"}, "maybe": null}})
        );
        assert_eq!(admitted.unknown_fields, vec!["spec.extra".to_owned()]);
    }

    #[test]
    fn schema_violations_read_like_the_api_server() {
        let admission = admission(spec_schema(json!({
            "type": "object",
            "required": ["tier", "name"],
            "properties": {
                "tier": {"type": "string", "enum": ["development", "uat"]},
                "name": {"type": "string", "pattern": "^esv-[a-z]+$", "maxLength": 6},
                "count": {"type": "integer", "minimum": 1},
                "list": {"type": "array", "maxItems": 1, "items": {"type": "string"}}
            }
        })));
        let rejection = admission
            .admit(
                &json!({"spec": {"tier": "qa", "name": "esv_bad!", "count": 0, "list": ["a", 2]}}),
                None,
            )
            .unwrap_err();
        let messages: Vec<String> = rejection.causes.iter().map(ToString::to_string).collect();
        assert!(
            messages.contains(
                &r#"spec.tier: Unsupported value: "qa": supported values: "development", "uat""#
                    .to_owned()
            ),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"spec.name: Too long: may not be more than 6 bytes".to_owned()),
            "{messages:?}"
        );
        assert!(messages.contains(&r#"spec.name: Invalid value: "esv_bad!": spec.name in body should match '^esv-[a-z]+$'"#.to_owned()), "{messages:?}");
        assert!(messages.contains(&"spec.count: Invalid value: 0: spec.count in body should be greater than or equal to 1".to_owned()), "{messages:?}");
        assert!(
            messages.contains(&"spec.list: Too many: 2: must have at most 1 items".to_owned()),
            "{messages:?}"
        );
        assert!(messages.contains(&r#"spec.list[1]: Invalid value: "integer": spec.list[1] in body must be of type string: "integer""#.to_owned()), "{messages:?}");
        let missing = admission.admit(&json!({"spec": {}}), None).unwrap_err();
        let messages: Vec<String> = missing.causes.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            vec!["spec.tier: Required value", "spec.name: Required value"]
        );
    }

    #[test]
    fn list_map_keys_and_sets_reject_duplicates() {
        let admission = admission(spec_schema(json!({
            "type": "object",
            "properties": {
                "envs": {"type": "array", "x-kubernetes-list-type": "map",
                         "x-kubernetes-list-map-keys": ["name"],
                         "items": {"type": "object", "required": ["name"],
                                   "properties": {"name": {"type": "string"}}}},
                "roles": {"type": "array", "x-kubernetes-list-type": "set",
                          "items": {"type": "string"}}
            }
        })));
        let rejection = admission
            .admit(
                &json!({"spec": {"envs": [{"name": "dev"}, {"name": "dev"}], "roles": ["a", "a"]}}),
                None,
            )
            .unwrap_err();
        let messages: Vec<String> = rejection.causes.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            vec![
                r#"spec.envs[1]: Duplicate value: map[string]interface {}{"name":"dev"}"#
                    .to_owned(),
                r#"spec.roles[1]: Duplicate value: "a""#.to_owned(),
            ]
        );
    }

    #[test]
    fn cel_rules_and_transition_rules_are_enforced() {
        let admission = admission(spec_schema(json!({
            "type": "object",
            "properties": {
                "from": {"type": "string"},
                "to": {"type": "string"}
            },
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "spec is immutable"},
                {"rule": "!has(self.from) || !has(self.to) || self.from != self.to",
                 "message": "from and to must differ",
                 "fieldPath": ".to"},
                {"rule": "has(self.from)", "message": "from is required", "fieldPath": ".from",
                 "reason": "FieldValueRequired"}
            ]
        })));
        let ok = json!({"spec": {"from": "a", "to": "b"}});
        assert!(admission.admit(&ok, None).is_ok());
        let same = admission
            .admit(&json!({"spec": {"from": "a", "to": "a"}}), None)
            .unwrap_err();
        assert_eq!(
            same.to_string(),
            r#"spec.to: Invalid value: "object": from and to must differ"#
        );
        let edited = admission
            .admit(&json!({"spec": {"from": "a", "to": "c"}}), Some(&ok))
            .unwrap_err();
        assert_eq!(
            edited.to_string(),
            r#"spec: Invalid value: "object": spec is immutable"#
        );
        let missing = admission
            .admit(&json!({"spec": {"to": "c"}}), None)
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "spec.from: Required value: from is required"
        );
    }

    #[test]
    fn non_structural_schemas_are_refused() {
        let bad = json!({
            "type": "object",
            "properties": {
                "untyped": {"description": "no type"},
                "ref": {"$ref": "#/definitions/x", "type": "object"},
                "both": {"type": "object", "properties": {"a": {"type": "string"}},
                         "additionalProperties": {"type": "string"}},
                "unique": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
                "junctor": {"type": "string", "anyOf": [{"type": "string"}]},
                "badDefault": {"type": "string", "default": 3},
                "badMap": {"type": "array", "x-kubernetes-list-type": "map",
                           "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
                "badRule": {"type": "string", "x-kubernetes-validations": [{"rule": "self ==="}]}
            }
        });
        let Err(SchemaError::NotStructural { problems, .. }) = Admission::for_schema("bad", bad)
        else {
            panic!("a non-structural schema was accepted");
        };
        let all = problems.join("\n");
        for expected in [
            "untyped: type must not be empty",
            "ref: $ref is forbidden",
            "both: properties and additionalProperties are mutually exclusive",
            "unique: uniqueItems cannot be true",
            "junctor: type is forbidden inside allOf/anyOf/oneOf/not",
            "badDefault: invalid default",
            "badMap: x-kubernetes-list-type: map needs x-kubernetes-list-map-keys",
            "a CEL rule does not compile",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
    }
}
