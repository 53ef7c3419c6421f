//! Label and field selectors of list and watch requests, in the syntax kube-apiserver accepts.

use serde_json::Value;

use super::error::ApiError;
use super::events::View;
use super::store::ResourceType;

#[derive(Clone, Debug)]
enum LabelTerm {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Clone, Debug)]
enum FieldTerm {
    Equals(String, String),
    NotEquals(String, String),
}

/// The selectors of one request; an empty selector matches everything.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    labels: Vec<LabelTerm>,
    fields: Vec<FieldTerm>,
}

impl Selector {
    /// Parses `labelSelector` and `fieldSelector` query values.
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let mut selector = Selector::default();
        if let Some(labels) = labels.filter(|s| !s.trim().is_empty()) {
            for term in split_terms(labels) {
                selector.labels.push(parse_label_term(term.trim())?);
            }
        }
        if let Some(fields) = fields.filter(|s| !s.trim().is_empty()) {
            for term in fields.split(',') {
                let term = term.trim();
                let parsed = if let Some((k, v)) = term.split_once("!=") {
                    FieldTerm::NotEquals(k.trim().to_owned(), v.trim().to_owned())
                } else if let Some((k, v)) = term.split_once("==") {
                    FieldTerm::Equals(k.trim().to_owned(), v.trim().to_owned())
                } else if let Some((k, v)) = term.split_once('=') {
                    FieldTerm::Equals(k.trim().to_owned(), v.trim().to_owned())
                } else {
                    return Err(ApiError::bad_request(format!(
                        "invalid field selector: '{term}': must be key=value or key!=value"
                    )));
                };
                selector.fields.push(parsed);
            }
        }
        Ok(selector)
    }

    /// Refuses a field selector on a field the type does not index, as kube-apiserver does
    /// (400), instead of matching nothing.
    pub fn check_fields(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for term in &self.fields {
            let (FieldTerm::Equals(field, _) | FieldTerm::NotEquals(field, _)) = term;
            if !allowed.contains(&field.as_str()) {
                let allowed: Vec<String> = allowed.iter().map(|f| format!("{f:?}")).collect();
                return Err(ApiError::bad_request(format!(
                    "{field:?} is not a known field selector: only {}",
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Whether the object matches every term.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_match = self.labels.iter().all(|term| match term {
            LabelTerm::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelTerm::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelTerm::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelTerm::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            LabelTerm::Exists(k) => label(k).is_some(),
            LabelTerm::NotExists(k) => label(k).is_none(),
        });
        labels_match
            && self.fields.iter().all(|term| match term {
                FieldTerm::Equals(k, v) => field(object, k) == *v,
                FieldTerm::NotEquals(k, v) => field(object, k) != *v,
            })
    }
}

/// The fields a type's list and watch may select on, as kube-apiserver registers them: the
/// name and namespace everywhere, and a few more for Secrets, Namespaces and both views of
/// Events.
pub fn selectable_fields(rt: &ResourceType, view: View) -> Vec<&'static str> {
    let mut fields = vec!["metadata.name", "metadata.namespace"];
    let object_fields = |prefix: &str| -> Vec<&'static str> {
        let all: &[&'static str] = if prefix == "regarding" {
            &[
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "regarding.apiVersion",
                "regarding.resourceVersion",
                "regarding.fieldPath",
                "reportingController",
            ]
        } else {
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reportingComponent",
                "source",
            ]
        };
        all.to_vec()
    };
    match (rt.group.as_str(), rt.plural.as_str(), view) {
        ("", "events", View::EventsV1) => {
            fields.extend(object_fields("regarding"));
            fields.extend(["reason", "type"]);
        }
        ("", "events", View::Stored) => {
            fields.extend(object_fields("involvedObject"));
            fields.extend(["reason", "type"]);
        }
        ("", "secrets", _) => fields.push("type"),
        ("", "namespaces", _) => fields.push("status.phase"),
        _ => {}
    }
    fields
}

/// A field's value as the API server compares it: strings as they are, other scalars printed,
/// absent fields as the empty string.
fn field(object: &Value, path: &str) -> String {
    let pointer: String = path.split('.').map(|p| format!("/{p}")).collect();
    match object.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Splits at commas outside parentheses, so `a in (x,y),b` gives two terms.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_` and `.`, alphanumeric at both
/// ends.
fn valid_label_value(value: &str) -> bool {
    let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    value.is_empty()
        || (value.len() <= 63
            && value.chars().all(inner)
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// A label key: a non-empty value, optionally behind a DNS-subdomain prefix and `/`.
fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    let prefix_ok = prefix.is_empty()
        || (prefix.len() <= 253
            && prefix.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            }));
    !name.is_empty()
        && valid_label_value(name)
        && prefix_ok
        && (prefix.is_empty() || key.contains('/'))
}

fn parse_label_term(term: &str) -> Result<LabelTerm, ApiError> {
    let parsed = parse_label_syntax(term)?;
    let (key, values): (&str, Vec<&str>) = match &parsed {
        LabelTerm::Equals(k, v) | LabelTerm::NotEquals(k, v) => (k, vec![v.as_str()]),
        LabelTerm::In(k, vs) | LabelTerm::NotIn(k, vs) => {
            (k, vs.iter().map(String::as_str).collect())
        }
        LabelTerm::Exists(k) | LabelTerm::NotExists(k) => (k, Vec::new()),
    };
    if !valid_label_key(key) || !values.iter().all(|v| valid_label_value(v)) {
        return Err(ApiError::bad_request(format!(
            "unable to parse requirement: {term}"
        )));
    }
    Ok(parsed)
}

fn parse_label_syntax(term: &str) -> Result<LabelTerm, ApiError> {
    let invalid = || ApiError::bad_request(format!("unable to parse requirement: {term}"));
    if let Some(key) = term.strip_prefix('!') {
        return Ok(LabelTerm::NotExists(key.trim().to_owned()));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelTerm::NotEquals(
            k.trim().to_owned(),
            v.trim().to_owned(),
        ));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok(LabelTerm::Equals(k.trim().to_owned(), v.trim().to_owned()));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok(LabelTerm::Equals(k.trim().to_owned(), v.trim().to_owned()));
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let rest = words[1].trim();
        let (op, list) = if let Some(list) = rest.strip_prefix("notin") {
            ("notin", list)
        } else if let Some(list) = rest.strip_prefix("in") {
            ("in", list)
        } else {
            return Err(invalid());
        };
        let list = list
            .trim()
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(invalid)?;
        let values = list.split(',').map(|v| v.trim().to_owned()).collect();
        let key = words[0].to_owned();
        return Ok(if op == "in" {
            LabelTerm::In(key, values)
        } else {
            LabelTerm::NotIn(key, values)
        });
    }
    if term.is_empty() {
        return Err(invalid());
    }
    Ok(LabelTerm::Exists(term.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_and_field_terms() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "x", "tier": "db"}}});
        let m = |l: Option<&str>, f: Option<&str>| Selector::parse(l, f).unwrap().matches(&obj);
        assert!(m(Some("app=x"), None));
        assert!(!m(Some("app!=x"), None));
        assert!(m(Some("tier in (db, web),app"), None));
        assert!(!m(Some("tier notin (db)"), None));
        assert!(m(Some("!missing"), None));
        assert!(m(None, Some("metadata.name=a,metadata.namespace!=other")));
        assert!(!m(None, Some("metadata.name=b")));
    }

    #[test]
    fn malformed_label_selectors_are_refused() {
        for bad in ["a===b", "a=b c", "-a=b", "a in (x y)", "a=(b)"] {
            assert!(Selector::parse(Some(bad), None).is_err(), "{bad}");
        }
        for good in ["a=", "example.com/a=b_c.d", "a notin (x,y)", "!a", "a"] {
            assert!(Selector::parse(Some(good), None).is_ok(), "{good}");
        }
    }
}
