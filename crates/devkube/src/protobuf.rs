//! Just enough of the Kubernetes protobuf encoding to read what `kubectl create namespace`,
//! `kubectl create secret` and `kubectl create configmap` send: kubectl encodes built-in types as
//! protobuf and has no JSON fallback for request bodies. Responses are always JSON, which kubectl
//! accepts. Other kinds, and fields beyond the ones these commands set, are refused or ignored.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::error::ApiError;

const MAGIC: &[u8] = b"k8s\0";

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Wire<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let bytes = buf.get(pos..pos.checked_add(len)?)?;
                pos += len;
                Wire::Bytes(bytes)
            }
            1 => {
                pos += 8;
                Wire::Fixed
            }
            5 => {
                pos += 4;
                Wire::Fixed
            }
            _ => return None,
        };
        out.push((key >> 3, value));
    }
    (pos == buf.len()).then_some(out)
}

fn string(bytes: &[u8]) -> Value {
    json!(String::from_utf8_lossy(bytes))
}

/// A `map<string, string>` (or bytes, base64-encoded as JSON has it) entry.
fn map_entry(bytes: &[u8], base64: bool) -> Option<(String, Value)> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (number, wire) in fields(bytes)? {
        match (number, wire) {
            (1, Wire::Bytes(b)) => key = String::from_utf8_lossy(b).into_owned(),
            (2, Wire::Bytes(b)) if base64 => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(b));
            }
            (2, Wire::Bytes(b)) => value = string(b),
            _ => {}
        }
    }
    Some((key, value))
}

fn object_meta(bytes: &[u8]) -> Option<Value> {
    let mut meta = Map::new();
    for (number, wire) in fields(bytes)? {
        match (number, wire) {
            (1, Wire::Bytes(b)) => {
                meta.insert("name".into(), string(b));
            }
            (2, Wire::Bytes(b)) => {
                meta.insert("generateName".into(), string(b));
            }
            (3, Wire::Bytes(b)) => {
                meta.insert("namespace".into(), string(b));
            }
            (6, Wire::Bytes(b)) => {
                meta.insert("resourceVersion".into(), string(b));
            }
            (11 | 12, Wire::Bytes(b)) => {
                let key = if number == 11 {
                    "labels"
                } else {
                    "annotations"
                };
                let (k, v) = map_entry(b, false)?;
                meta.entry(key)
                    .or_insert_with(|| json!({}))
                    .as_object_mut()?
                    .insert(k, v);
            }
            (14, Wire::Bytes(b)) => {
                meta.entry("finalizers")
                    .or_insert_with(|| json!([]))
                    .as_array_mut()?
                    .push(string(b));
            }
            _ => {}
        }
    }
    Some(Value::Object(meta))
}

/// Whether a request body is Kubernetes protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.starts_with("application/vnd.kubernetes.protobuf")
}

/// Decodes a protobuf Namespace, Secret or ConfigMap into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let bad = || ApiError::bad_request("the protobuf body could not be decoded");
    let envelope = body.strip_prefix(MAGIC).ok_or_else(bad)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (number, wire) in fields(envelope).ok_or_else(bad)? {
        match (number, wire) {
            (1, Wire::Bytes(type_meta)) => {
                for (n, w) in fields(type_meta).ok_or_else(bad)? {
                    match (n, w) {
                        (1, Wire::Bytes(b)) => {
                            api_version = String::from_utf8_lossy(b).into_owned()
                        }
                        (2, Wire::Bytes(b)) => kind = String::from_utf8_lossy(b).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let mut object = json!({"apiVersion": api_version, "kind": kind});
    for (number, wire) in fields(raw).ok_or_else(bad)? {
        let Wire::Bytes(b) = wire else {
            if let (5 | 4, Wire::Varint(v)) = (number, &wire)
                && ((kind == "Secret" && number == 5) || (kind == "ConfigMap" && number == 4))
            {
                object["immutable"] = json!(*v != 0);
            }
            continue;
        };
        match (kind.as_str(), number) {
            (_, 1) => object["metadata"] = object_meta(b).ok_or_else(bad)?,
            ("Secret", 2) | ("ConfigMap", 3) => {
                let key = if kind == "Secret" {
                    "data"
                } else {
                    "binaryData"
                };
                let (k, v) = map_entry(b, true).ok_or_else(bad)?;
                insert(&mut object, key, k, v);
            }
            ("Secret", 4) | ("ConfigMap", 2) => {
                let key = if kind == "Secret" {
                    "stringData"
                } else {
                    "data"
                };
                let (k, v) = map_entry(b, false).ok_or_else(bad)?;
                insert(&mut object, key, k, v);
            }
            ("Secret", 3) => object["type"] = string(b),
            ("Namespace", _) => {}
            _ => {}
        }
    }
    if !matches!(kind.as_str(), "Namespace" | "Secret" | "ConfigMap") {
        return Err(ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "devkube reads protobuf only for Namespace, Secret and ConfigMap, not {kind}; send JSON"
            ),
            details: None,
        });
    }
    Ok(object)
}

fn insert(object: &mut Value, key: &str, k: String, v: Value) {
    if !object.get(key).is_some_and(Value::is_object) {
        object[key] = json!({});
    }
    object[key][k] = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![
            u8::try_from(number << 3 | 2).unwrap(),
            u8::try_from(bytes.len()).unwrap(),
        ];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn secret_with_data_and_labels() {
        let label = [field(1, b"app"), field(2, b"x")].concat();
        let meta = [field(1, b"creds"), field(11, &label)].concat();
        let data = [field(1, b"password"), field(2, b"hunter2")].concat();
        let secret = [field(1, &meta), field(2, &data), field(3, b"Opaque")].concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let decoded = decode(&body).unwrap();
        assert_eq!(decoded["metadata"]["name"], "creds");
        assert_eq!(decoded["metadata"]["labels"]["app"], "x");
        assert_eq!(decoded["data"]["password"], "aHVudGVyMg==");
        assert_eq!(decoded["type"], "Opaque");
    }
}
