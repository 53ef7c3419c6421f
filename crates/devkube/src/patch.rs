//! The patch types kube-rs and kubectl send: JSON merge patch, JSON patch (RFC 6902, with the Go
//! implementation's `test` semantics), strategic merge patch (treated as a merge patch), and
//! server-side apply with field ownership tracked in `metadata.managedFields`.
//!
//! Strategic merge patch is applied as a JSON merge patch after dropping its `$` directives: the
//! resources served here have no list merge keys that matter to the operator, and the API server
//! itself treats a strategic patch of a custom resource as an error, which kubectl knows and avoids.
//!
//! Field ownership is tracked per leaf field (objects are walked, lists and scalars are leaves),
//! enough for server-side-apply conflicts between managers such as two leader-election
//! contenders; list item merge keys (`k:`/`v:`) are not modelled.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A field path: the keys from the root.
pub type FieldPath = Vec<String>;

/// Applies an RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(patch) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let target = target.as_object_mut().expect("made an object above");
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Removes strategic-merge directives (`$patch`, `$setElementOrder/...`, `$retainKeys`,
/// `$deleteFromPrimitiveList/...`) so the rest can be applied as a merge patch.
pub fn strip_directives(patch: &Value) -> Value {
    match patch {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Why a JSON patch could not be applied.
#[derive(Debug)]
pub struct JsonPatchError(pub String);

/// Applies an RFC 6902 JSON patch as the Go implementation the API server uses does: a `test`
/// of `null` against a missing path succeeds (kube's finalizer helper depends on that when it
/// adds the first finalizer), and a `replace` of a missing key of an object adds it.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| JsonPatchError("a JSON patch must be a list of operations".into()))?;
    for op in ops {
        if op.get("op").and_then(Value::as_str) == Some("test") {
            let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
            let expected = op.get("value").cloned().unwrap_or(Value::Null);
            let actual = target.pointer(path).cloned().unwrap_or(Value::Null);
            if actual != expected {
                return Err(JsonPatchError(format!(
                    "testing value {path} failed: test failed"
                )));
            }
            continue;
        }
        let mut op = op.clone();
        if op.get("op").and_then(Value::as_str) == Some("replace") {
            let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
            let parent = path.rsplit_once('/').map(|(parent, _)| parent);
            let missing_key = target.pointer(path).is_none()
                && parent.is_some_and(|p| target.pointer(p).is_some_and(Value::is_object));
            if missing_key {
                op["op"] = Value::from("add");
            }
        }
        let parsed: json_patch::Patch = serde_json::from_value(Value::Array(vec![op]))
            .map_err(|e| JsonPatchError(e.to_string()))?;
        json_patch::patch(target, &parsed).map_err(|e| JsonPatchError(e.to_string()))?;
    }
    Ok(())
}

/// The leaf fields of an object that field ownership tracks: everything but identity and
/// server-managed metadata.
pub fn leaves(object: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    for (key, value) in map {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for tracked in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(v) = value.get(tracked) {
                        collect(v, vec!["metadata".into(), tracked.into()], &mut out);
                    }
                }
            }
            _ => collect(value, vec![key.clone()], &mut out),
        }
    }
    out
}

fn collect(value: &Value, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let mut p = path.clone();
                p.push(key.clone());
                collect(child, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// The value at a field path, if present.
pub fn get<'a>(object: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, k| v.get(k))
}

fn remove(object: &mut Value, path: &FieldPath) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = object;
    for key in parents {
        match node.get_mut(key) {
            Some(child) => node = child,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last);
    }
}

/// One entry of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedEntry {
    /// The field manager.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `status` for writes to the status subresource, else empty.
    pub subresource: String,
    /// apiVersion of the write.
    pub api_version: String,
    /// When the entry last changed.
    pub time: String,
    /// The leaf fields owned.
    pub fields: BTreeSet<FieldPath>,
}

/// Reads `metadata.managedFields` of a stored object.
pub fn read_managed(object: &Value) -> Vec<ManagedEntry> {
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|e| {
            let mut fields = BTreeSet::new();
            if let Some(f) = e.get("fieldsV1") {
                read_fields_v1(f, Vec::new(), &mut fields);
            }
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            ManagedEntry {
                manager: s("manager"),
                operation: s("operation"),
                subresource: s("subresource"),
                api_version: s("apiVersion"),
                time: s("time"),
                fields,
            }
        })
        .collect()
}

fn read_fields_v1(node: &Value, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Some(map) = node.as_object() else {
        return;
    };
    let children: Vec<_> = map.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    if children.is_empty() {
        if !path.is_empty() {
            out.insert(path);
        }
        return;
    }
    for (key, child) in children {
        let mut p = path.clone();
        p.push(key[2..].to_owned());
        read_fields_v1(child, p, out);
    }
}

/// Writes the entries back as `metadata.managedFields` (FieldsV1 format).
pub fn write_managed(object: &mut Value, entries: &[ManagedEntry]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut fields = Map::new();
            for path in &e.fields {
                let mut node = &mut fields;
                for key in path {
                    node = node
                        .entry(format!("f:{key}"))
                        .or_insert_with(|| Value::Object(Map::new()))
                        .as_object_mut()
                        .expect("fieldsV1 nodes are objects");
                }
            }
            let mut entry = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": Value::Object(fields),
            });
            if !e.subresource.is_empty() {
                entry["subresource"] = json!(e.subresource);
            }
            entry
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if rendered.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(rendered));
        }
    }
}

fn entry_mut<'a>(
    entries: &'a mut Vec<ManagedEntry>,
    manager: &str,
    operation: &str,
    subresource: &str,
) -> &'a mut ManagedEntry {
    let position = entries.iter().position(|e| {
        e.manager == manager && e.operation == operation && e.subresource == subresource
    });
    let index = match position {
        Some(i) => i,
        None => {
            entries.push(ManagedEntry {
                manager: manager.to_owned(),
                operation: operation.to_owned(),
                subresource: subresource.to_owned(),
                api_version: String::new(),
                time: String::new(),
                fields: BTreeSet::new(),
            });
            entries.len() - 1
        }
    };
    &mut entries[index]
}

/// Records an update (any write but apply) by `manager`: it takes the fields whose value changed
/// from the others; fields removed are owned by nobody.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    api_version: &str,
    now: &str,
) {
    let mut entries = old.map(read_managed).unwrap_or_default();
    let old_leaves = old.map(leaves).unwrap_or_default();
    let new_leaves = leaves(new);
    let changed: BTreeSet<FieldPath> = new_leaves
        .iter()
        .filter(|p| old.and_then(|o| get(o, p)) != get(new, p))
        .cloned()
        .collect();
    let removed: BTreeSet<FieldPath> = old_leaves.difference(&new_leaves).cloned().collect();
    for entry in entries.iter_mut() {
        entry
            .fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        let entry = entry_mut(&mut entries, manager, "Update", subresource);
        entry.fields.extend(changed);
        entry.api_version = api_version.to_owned();
        entry.time = now.to_owned();
    }
    write_managed(new, &entries);
}

/// Server-side apply of `config` by `manager` onto `current` (absent for a create). Returns the
/// new object, or the `(manager, .field)` conflicts when `force` is not set.
pub fn apply(
    current: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    subresource: &str,
    api_version: &str,
    now: &str,
) -> Result<Value, Vec<(String, String)>> {
    let mut entries = current.map(read_managed).unwrap_or_default();
    let applied = leaves(config);
    let mut conflicts = Vec::new();
    if let Some(current) = current {
        for path in &applied {
            if get(current, path) == get(config, path) {
                continue;
            }
            for entry in &entries {
                let same = entry.manager == manager && entry.operation == "Apply";
                if !same && entry.fields.contains(path) {
                    conflicts.push((entry.manager.clone(), format!(".{}", path.join("."))));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut object = current.cloned().unwrap_or_else(|| json!({}));
    // Fields this manager applied before and no longer applies are removed unless another
    // manager also owns them.
    let previous: BTreeSet<FieldPath> = entries
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for path in previous.difference(&applied) {
        let shared = entries
            .iter()
            .any(|e| !(e.manager == manager && e.operation == "Apply") && e.fields.contains(path));
        if !shared {
            remove(&mut object, path);
        }
    }
    merge(&mut object, config);
    let current_leaves = leaves(&object);
    for entry in entries.iter_mut() {
        let mine = entry.manager == manager && entry.operation == "Apply";
        entry.fields.retain(|p| current_leaves.contains(p));
        if !mine && force {
            entry.fields.retain(|p| !applied.contains(p));
        }
    }
    let entry = entry_mut(&mut entries, manager, "Apply", subresource);
    entry.fields = applied;
    entry.api_version = api_version.to_owned();
    entry.time = now.to_owned();
    write_managed(&mut object, &entries);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_test_semantics_for_missing_paths() {
        let mut obj = json!({"metadata": {"name": "a"}});
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}
        ]);
        json_patch(&mut obj, &patch).unwrap();
        assert_eq!(obj["metadata"]["finalizers"], json!(["x"]));
        let stale = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]);
        assert!(json_patch(&mut obj, &stale).is_err());
    }

    #[test]
    fn apply_conflicts_between_managers_until_the_field_is_released() {
        let base =
            json!({"apiVersion": "v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {}});
        let a = apply(
            Some(&base),
            &json!({"spec": {"holderIdentity": "a"}}),
            "a",
            false,
            "",
            "v1",
            "t",
        )
        .unwrap();
        let conflicts = apply(
            Some(&a),
            &json!({"spec": {"holderIdentity": "b"}}),
            "b",
            false,
            "",
            "v1",
            "t",
        )
        .unwrap_err();
        assert_eq!(
            conflicts,
            vec![("a".to_owned(), ".spec.holderIdentity".to_owned())]
        );
        // Same value: shared ownership, no conflict.
        apply(
            Some(&a),
            &json!({"spec": {"holderIdentity": "a"}}),
            "b",
            false,
            "",
            "v1",
            "t",
        )
        .unwrap();
        // A merge patch removing the field releases it from every manager.
        let mut released = a.clone();
        merge(&mut released, &json!({"spec": {"holderIdentity": null}}));
        record_update(Some(&a), &mut released, "c", "", "v1", "t");
        apply(
            Some(&released),
            &json!({"spec": {"holderIdentity": "b"}}),
            "b",
            false,
            "",
            "v1",
            "t",
        )
        .unwrap();
    }
}
