//! Server-side printing: the `meta.k8s.io/v1` `Table` that `kubectl get` asks for, with the
//! printer columns of a CRD evaluated by a JSONPath subset (`.a.b`, `[n]`, `[*]`,
//! `[?(@.k=="v")]`), ages rendered as the API server renders them.

use serde_json::{Value, json};

use super::store::{Column, ResourceType};

/// What each row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    /// No object.
    None,
    /// A `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// Parses the `includeObject` query value.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

fn column(name: &str, type_: &str, priority: i32, json_path: &str) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description: String::new(),
        priority,
        json_path: json_path.into(),
    }
}

fn columns(rt: &ResourceType) -> Vec<Column> {
    if rt.group.is_empty() && rt.plural == "events" {
        // As `kubectl get events` prints them; `@` paths are computed below.
        return vec![
            column("Last Seen", "date", 0, "@lastSeen"),
            column("Type", "string", 0, ".type"),
            column("Reason", "string", 0, ".reason"),
            column("Object", "string", 0, "@object"),
            column("Message", "string", 0, ".message"),
            column("Name", "string", 1, ".metadata.name"),
        ];
    }
    let mut columns = vec![Column {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        description: "Name must be unique within a namespace.".into(),
        priority: 0,
        json_path: ".metadata.name".into(),
    }];
    if rt.columns.is_empty() {
        let extra: &[(&str, &str, &str)] = match (rt.group.as_str(), rt.plural.as_str()) {
            // As kube-apiserver's own printers: Data is the number of keys.
            ("", "secrets") => &[("Type", "string", ".type"), ("Data", "integer", "@keys")],
            ("", "configmaps") => &[("Data", "integer", "@keys")],
            ("", "namespaces") => &[("Status", "string", ".status.phase")],
            ("coordination.k8s.io", "leases") => &[("Holder", "string", ".spec.holderIdentity")],
            _ => &[],
        };
        for (name, type_, path) in extra {
            columns.push(Column {
                name: (*name).into(),
                type_: (*type_).into(),
                format: String::new(),
                description: String::new(),
                priority: 0,
                json_path: (*path).into(),
            });
        }
        columns.push(Column {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: "CreationTimestamp is a timestamp representing the server time when this object was created.".into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        });
    } else {
        columns.extend(rt.columns.iter().cloned());
    }
    columns
}

/// A Table of `objects`, with the list metadata given.
pub fn table(rt: &ResourceType, objects: &[Value], include: Include, metadata: Value) -> Value {
    let columns = columns(rt);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "type": if c.type_ == "date" { "string" } else { c.type_.as_str() },
                "format": c.format, "description": c.description, "priority": c.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells: Vec<Value> = columns.iter().map(|c| cell(c, object)).collect();
            let mut row = json!({"cells": cells});
            match include {
                Include::None => {}
                Include::Object => row["object"] = object.clone(),
                Include::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    });
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn cell(column: &Column, object: &Value) -> Value {
    let found = match column.json_path.as_str() {
        "@lastSeen" => [
            ".series.lastObservedTime",
            ".lastTimestamp",
            ".eventTime",
            ".metadata.creationTimestamp",
        ]
        .iter()
        .find_map(|p| evaluate(object, p).into_iter().find(|v| !v.is_null())),
        "@object" => {
            let kind = evaluate(object, ".involvedObject.kind").into_iter().next();
            let name = evaluate(object, ".involvedObject.name").into_iter().next();
            Some(json!(format!(
                "{}/{}",
                kind.as_ref()
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_lowercase(),
                name.as_ref().and_then(Value::as_str).unwrap_or_default()
            )))
        }
        "@keys" => Some(json!(
            ["data", "binaryData"]
                .iter()
                .filter_map(|field| object.get(*field).and_then(Value::as_object))
                .map(serde_json::Map::len)
                .sum::<usize>()
        )),
        path => evaluate(object, path).into_iter().next(),
    };
    let Some(value) = found else {
        return Value::Null;
    };
    match column.type_.as_str() {
        "date" => value
            .as_str()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|t| {
                json!(human_duration(
                    jiff::Timestamp::now().as_second() - t.as_second()
                ))
            })
            .unwrap_or(Value::Null),
        "string" => match value {
            Value::String(_) => value,
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
        _ => value,
    }
}

/// Evaluates the JSONPath subset printer columns use; every match, in order.
pub fn evaluate(object: &Value, path: &str) -> Vec<Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut current = vec![object.clone()];
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let key = &after[..end];
            rest = &after[end..];
            if key.is_empty() {
                continue;
            }
            current = current.iter().filter_map(|v| v.get(key).cloned()).collect();
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = find_close(after) else {
                return Vec::new();
            };
            let inner = after[..end].trim();
            rest = &after[end + 1..];
            current = current.iter().flat_map(|v| subscript(v, inner)).collect();
        } else {
            return Vec::new();
        }
    }
    current
}

fn find_close(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('[', None) => depth += 1,
            (']', None) if depth == 0 => return Some(i),
            (']', None) => depth -= 1,
            _ => {}
        }
    }
    None
}

fn subscript(value: &Value, inner: &str) -> Vec<Value> {
    if inner == "*" {
        return match value {
            Value::Array(items) => items.clone(),
            Value::Object(map) => map.values().cloned().collect(),
            _ => Vec::new(),
        };
    }
    if let Ok(index) = inner.parse::<i64>() {
        let Some(items) = value.as_array() else {
            return Vec::new();
        };
        let index = if index < 0 {
            items.len() as i64 + index
        } else {
            index
        };
        return usize::try_from(index)
            .ok()
            .and_then(|i| items.get(i).cloned())
            .into_iter()
            .collect();
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let Some(items) = value.as_array() else {
            return Vec::new();
        };
        let (lhs, rhs, equal) = if let Some((l, r)) = filter.split_once("==") {
            (l, r, true)
        } else if let Some((l, r)) = filter.split_once("!=") {
            (l, r, false)
        } else {
            return Vec::new();
        };
        let lhs = lhs.trim().trim_start_matches('@');
        let rhs = rhs.trim();
        let expected = if let Some(s) = rhs
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .or_else(|| rhs.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
        {
            Value::String(s.to_owned())
        } else {
            serde_json::from_str(rhs).unwrap_or(Value::String(rhs.to_owned()))
        };
        return items
            .iter()
            .filter(|item| {
                let found = evaluate(item, lhs).into_iter().next();
                (found.as_ref() == Some(&expected)) == equal
            })
            .cloned()
            .collect();
    }
    let key = inner.trim_matches(|c| c == '\'' || c == '"');
    value.get(key).cloned().into_iter().collect()
}

/// A duration in seconds as kubectl prints ages (apimachinery's `HumanDuration`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        return if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        return if h % 24 == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{}h", h / 24, h % 24)
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    if h < 24 * 365 * 8 {
        let y = h / 24 / 365;
        let d = h / 24 % 365;
        return if d == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{d}d")
        };
    }
    format!("{}y", h / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let obj = json!({"status": {"conditions": [
            {"type": "Other", "status": "False"},
            {"type": "Ready", "status": "True", "reason": "Ok"}
        ]}, "spec": {"items": [1, 2]}});
        assert_eq!(
            evaluate(&obj, ".status.conditions[?(@.type==\"Ready\")].reason"),
            vec![json!("Ok")]
        );
        assert_eq!(evaluate(&obj, ".spec.items[1]"), vec![json!(2)]);
        assert_eq!(evaluate(&obj, ".spec.items[*]"), vec![json!(1), json!(2)]);
        assert!(evaluate(&obj, ".spec.missing").is_empty());
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 3 + 60), "3h1m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
