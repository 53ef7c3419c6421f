//! The HTTP surface: discovery, resource CRUD, patches, watches and server-side printing, routed
//! by hand from the path because the Kubernetes URL space (`/api/v1/namespaces/{ns}/{plural}` vs
//! `/api/v1/namespaces/{name}/status`) does not fit a static route table.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::Inner;
use super::error::ApiError;
use super::events::View;
use super::patch;
use super::select::Selector;
use super::store::{Change, ChangeKind, DeleteOpts, ResourceType, WriteCtx};
use super::table::Include;

const MAX_BODY: usize = 16 * 1024 * 1024;

/// The router of a devkube instance.
pub fn router(inner: Arc<Inner>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(inner)
}

struct Query(HashMap<String, String>);

impl Query {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query_string = parts.uri.query().unwrap_or_default().to_owned();
    let line = if query_string.is_empty() {
        format!("{} {path}", parts.method)
    } else {
        format!("{} {path}?{query_string}", parts.method)
    };
    let query = Query(
        url::form_urlencoded::parse(query_string.as_bytes())
            .into_owned()
            .collect(),
    );
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
    };
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let result = match (parts.method.clone(), segments.as_slice()) {
        (Method::GET, ["version"]) => Ok(json_response(version())),
        (Method::GET, ["healthz" | "livez" | "readyz"]) => {
            Ok((StatusCode::OK, "ok").into_response())
        }
        (Method::GET, ["openapi", "v3"]) => Ok(json_response(openapi_root(&inner))),
        (Method::GET, ["openapi", "v3", "api", "v1"]) => {
            Ok(json_response(openapi_group_version(&inner, "", "v1")))
        }
        (Method::GET, ["openapi", "v3", "apis", group, version]) => {
            Ok(json_response(openapi_group_version(&inner, group, version)))
        }
        (Method::GET, ["api"]) => Ok(json_response(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }))),
        (Method::GET, ["apis"]) => Ok(json_response(group_list(&inner))),
        (Method::GET, ["api", "v1"]) => Ok(json_response(resource_list(&inner, "", "v1"))),
        (Method::GET, ["apis", group]) => group_document(&inner, group).map(json_response),
        (Method::GET, ["apis", group, version]) => {
            let list = resource_list(&inner, group, version);
            if list["resources"].as_array().is_some_and(Vec::is_empty) {
                Err(ApiError::no_route(&path))
            } else {
                Ok(json_response(list))
            }
        }
        (method, ["api", "v1", rest @ ..]) => {
            resource(&inner, method, "", "v1", rest, &query, &parts.headers, body).await
        }
        (method, ["apis", group, version, rest @ ..]) => {
            resource(
                &inner,
                method,
                group,
                version,
                rest,
                &query,
                &parts.headers,
                body,
            )
            .await
        }
        _ => Err(ApiError::no_route(&path)),
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    inner
        .store
        .log_request(format!("{line} -> {}", response.status().as_u16()));
    response
}

fn json_response(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-devkube",
        "gitCommit": "devkube",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn group_versions(inner: &Inner) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for rt in inner.store.types() {
        if rt.group.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(g, _)| *g == rt.group) {
            Some((_, versions)) => {
                if !versions.contains(&rt.version) {
                    versions.push(rt.version.clone());
                }
            }
            None => groups.push((rt.group.clone(), vec![rt.version.clone()])),
        }
    }
    groups
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

fn group_list(inner: &Inner) -> Value {
    let groups: Vec<Value> = group_versions(inner)
        .iter()
        .map(|(g, v)| group_json(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn group_document(inner: &Inner, group: &str) -> Result<Value, ApiError> {
    let groups = group_versions(inner);
    let (g, v) = groups
        .iter()
        .find(|(g, _)| g == group)
        .ok_or_else(|| ApiError::no_route(&format!("/apis/{group}")))?;
    let mut doc = group_json(g, v);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Ok(doc)
}

fn resource_list(inner: &Inner, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for rt in inner.store.types() {
        if rt.group != group || rt.version != version {
            continue;
        }
        resources.push(json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": rt.short_names,
            "categories": rt.categories,
        }));
        if rt.status {
            resources.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// The OpenAPI v3 discovery document. kubectl reads it only to learn that the server validates
/// fields itself (`fieldValidation`); without it, `kubectl apply` refuses to run.
fn openapi_root(inner: &Inner) -> Value {
    let mut paths = serde_json::Map::new();
    // Any write may have changed a CRD; the resourceVersion is a cheap, always-fresh hash.
    let hash = inner.store.resource_version();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={hash}")}),
    );
    for (group, versions) in group_versions(inner) {
        for version in versions {
            paths.insert(
                format!("apis/{group}/{version}"),
                json!({"serverRelativeURL": format!("/openapi/v3/apis/{group}/{version}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

/// One group version's OpenAPI v3 document: a PATCH operation per resource declaring the
/// `fieldValidation` and `dryRun` parameters, and no schemas.
fn openapi_group_version(inner: &Inner, group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for rt in inner.store.types() {
        if rt.group != group || rt.version != version {
            continue;
        }
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
        } else {
            format!("{prefix}/{}/{{name}}", rt.plural)
        };
        let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        paths.insert(
            path,
            json!({"patch": {
                "operationId": format!("patch{}", rt.kind),
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rt.kind},
                "x-kubernetes-action": "patch",
                "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas(inner, group, version)},
    })
}

/// The schemas of the custom resources of a group version, for `kubectl explain`.
fn schemas(inner: &Inner, group: &str, version: &str) -> Value {
    let mut schemas = serde_json::Map::new();
    for rt in inner.store.types() {
        let (true, Some(admission)) = (rt.group == group && rt.version == version, &rt.admission)
        else {
            continue;
        };
        let mut schema = admission.schema().clone();
        let properties = schema
            .as_object_mut()
            .map(|s| s.entry("properties").or_insert_with(|| json!({})));
        if let Some(Value::Object(properties)) = properties {
            properties.entry("apiVersion").or_insert_with(|| json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            properties.entry("kind").or_insert_with(|| json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            properties.entry("metadata").or_insert_with(
                || json!({"type": "object", "description": "Standard object's metadata."}),
            );
        }
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": group, "version": version, "kind": rt.kind}]);
        let reversed: Vec<&str> = group.split('.').rev().collect();
        schemas.insert(
            format!("{}.{version}.{}", reversed.join("."), rt.kind),
            schema,
        );
    }
    Value::Object(schemas)
}

struct Target<'a> {
    namespace: Option<&'a str>,
    plural: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

fn parse_target<'a>(group: &str, rest: &[&'a str]) -> Option<Target<'a>> {
    let namespace_subresource =
        group.is_empty() && rest.len() == 3 && matches!(rest[2], "status" | "finalize");
    if rest.first() == Some(&"namespaces") && rest.len() >= 3 && !namespace_subresource {
        if rest.len() > 5 {
            return None;
        }
        Some(Target {
            namespace: Some(rest[1]),
            plural: rest[2],
            name: rest.get(3).copied(),
            subresource: rest.get(4).copied(),
        })
    } else {
        if rest.is_empty() || rest.len() > 3 {
            return None;
        }
        Some(Target {
            namespace: None,
            plural: rest[0],
            name: rest.get(1).copied(),
            subresource: rest.get(2).copied(),
        })
    }
}

/// What a read returns, from the `Accept` header: objects, a server-side printed `Table`
/// (`kubectl get`), or only metadata (kube's metadata watches, so Secret data is not cached).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Object,
    Table,
    Metadata,
}

fn shape(headers: &HeaderMap) -> Shape {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or_default();
    if accept.contains("as=Table") {
        Shape::Table
    } else if accept.contains("as=PartialObjectMetadata") {
        Shape::Metadata
    } else {
        Shape::Object
    }
}

fn partial(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).or_else(|json_error| {
        let text = std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        serde_saphyr::from_str::<Value>(text).map_err(|_| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded: {json_error}"
            ))
        })
    })
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn manager(query: &Query, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager") {
        return m.to_owned();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|u| u.to_str().ok())
        .and_then(|u| u.split('/').next())
        .filter(|u| !u.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    inner: &Arc<Inner>,
    method: Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = format!("/{}", rest.join("/"));
    let target = parse_target(group, rest).ok_or_else(|| ApiError::no_route(&path))?;
    let rt = inner
        .store
        .resolve(group, version, target.plural)
        .ok_or_else(|| ApiError::no_route(&path))?;
    let (rt, view) = if rt.group == "events.k8s.io" && rt.plural == "events" {
        let core = inner
            .store
            .resolve("", "v1", "events")
            .expect("core events are built in");
        (core, View::EventsV1)
    } else {
        (rt, View::Stored)
    };
    if target.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::no_route(&path));
    }
    let status = match target.subresource {
        None => false,
        Some("status") if rt.status => true,
        Some(_) => return Err(ApiError::no_route(&path)),
    };
    if rt.namespaced && target.name.is_some() && target.namespace.is_none() {
        return Err(ApiError::no_route(&path));
    }
    let namespace = target.namespace.unwrap_or_default();
    let ctx = WriteCtx {
        manager: manager(query, headers),
        status,
        apply: false,
        strict: query.get("fieldValidation") == Some("Strict"),
        dry_run: query.get("dryRun").is_some(),
    };
    let table = shape(headers);
    let created = |v: Value| (StatusCode::CREATED, axum::Json(v)).into_response();
    match (method, target.name) {
        (Method::GET, None) => {
            let selector = Selector::parse(query.get("labelSelector"), query.get("fieldSelector"))?;
            selector.check_fields(&super::select::selectable_fields(&rt, view))?;
            if query.flag("watch") {
                let mut held = inner.hold.subscribe();
                // A closed channel cannot happen while `inner` is alive.
                let _ = held.wait_for(|held| !held).await;
                return watch(inner, rt, view, target.namespace, selector, query, table);
            }
            list(inner, &rt, view, target.namespace, &selector, query, table)
        }
        (Method::GET, Some(name)) => {
            let object = view.output(inner.store.get(&rt, namespace, name)?);
            if table == Shape::Metadata {
                Ok(json_response(partial(&object)))
            } else if table == Shape::Table {
                let rv = object.pointer("/metadata/resourceVersion").cloned();
                let include = Include::parse(query.get("includeObject"));
                Ok(json_response(super::table::table(
                    &rt,
                    &[object],
                    include,
                    json!({"resourceVersion": rv}),
                )))
            } else {
                Ok(json_response(object))
            }
        }
        (Method::POST, None) => {
            let object = if super::protobuf::is_protobuf(&content_type(headers)) {
                super::protobuf::decode(&body)?
            } else {
                parse_body(&body)?
            };
            let object = view.input(object);
            Ok(created(
                view.output(inner.store.create(&rt, namespace, object, &ctx)?),
            ))
        }
        (Method::PUT, Some(name)) => {
            let object = if super::protobuf::is_protobuf(&content_type(headers)) {
                super::protobuf::decode(&body)?
            } else {
                parse_body(&body)?
            };
            let object = view.input(object);
            let updated = inner
                .store
                .update(&rt, namespace, name, &ctx, |_| Ok(object))?;
            Ok(json_response(view.output(updated)))
        }
        (Method::PATCH, Some(name)) => {
            let content_type = content_type(headers);
            let patch_body = parse_body(&body)?;
            patch_object(
                inner,
                &rt,
                view,
                namespace,
                name,
                ctx,
                &content_type,
                patch_body,
                query,
            )
        }
        (Method::DELETE, Some(name)) if ctx.dry_run => Ok(json_response(
            view.output(inner.store.get(&rt, namespace, name)?),
        )),
        (Method::DELETE, Some(name)) => {
            let options = parse_body(&body)?;
            let opts = delete_opts(&options, query);
            let object = view.output(inner.store.delete(&rt, namespace, name, &opts)?);
            Ok(json_response(deleted(&rt, object)))
        }
        (Method::DELETE, None) => {
            let selector = Selector::parse(query.get("labelSelector"), query.get("fieldSelector"))?;
            let (items, rv) = inner
                .store
                .list(&rt, target.namespace, |o| matches(&selector, view, o));
            let opts = delete_opts(&parse_body(&body)?, query);
            let mut deleted = Vec::new();
            for item in items {
                let ns = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Ok(object) = inner.store.delete(&rt, ns, name, &opts) {
                    deleted.push(view.output(object));
                }
            }
            Ok(json_response(json!({
                "kind": format!("{}List", rt.kind),
                "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": deleted,
            })))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({path})"
        ))),
    }
}

/// The answer to a delete, as kube-apiserver gives it: an object that finalizers keep (and a
/// namespace, which always goes through Terminating) is returned; one that is gone is reported
/// by a `Status` of `Success` naming it.
fn deleted(rt: &ResourceType, object: Value) -> Value {
    let kept = object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if kept || (rt.group.is_empty() && rt.plural == "namespaces") {
        return object;
    }
    let mut details = json!({
        "name": object.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
        "kind": rt.plural,
        "uid": object.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
    });
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

fn delete_opts(options: &Value, query: &Query) -> DeleteOpts {
    let policy = options
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or_else(|| query.get("propagationPolicy"))
        .or_else(|| {
            options
                .get("orphanDependents")
                .and_then(Value::as_bool)
                .and_then(|o| o.then_some("Orphan"))
        });
    DeleteOpts {
        resource_version: options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
        uid: options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        orphan: policy == Some("Orphan"),
    }
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    inner: &Arc<Inner>,
    rt: &Arc<ResourceType>,
    view: View,
    namespace: &str,
    name: &str,
    mut ctx: WriteCtx,
    content_type: &str,
    body: Value,
    query: &Query,
) -> Result<Response, ApiError> {
    // An apply that finds nothing creates, and says so with 201.
    let created = std::cell::Cell::new(false);
    let object = match content_type {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let merge_patch = if content_type.starts_with("application/strategic") {
                patch::strip_directives(&body)
            } else {
                body
            };
            inner.store.update(rt, namespace, name, &ctx, |old| {
                let mut new = view.output(old.clone());
                patch::merge(&mut new, &merge_patch);
                Ok(view.input(new))
            })?
        }
        "application/json-patch+json" => inner.store.update(rt, namespace, name, &ctx, |old| {
            let mut new = view.output(old.clone());
            patch::json_patch(&mut new, &body).map_err(|e| ApiError {
                code: 422,
                reason: "Invalid",
                message: e.0,
                details: None,
            })?;
            Ok(view.input(new))
        })?,
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            if query.get("fieldManager").is_none() {
                return Err(ApiError::invalid_options(
                    "PatchOptions",
                    "fieldManager",
                    "FieldValueRequired",
                    "Required value: is required for apply patch",
                ));
            }
            let force = query.flag("force");
            ctx.apply = true;
            let mut config = body;
            if !config.is_object() {
                return Err(ApiError::bad_request(
                    "an apply configuration must be an object",
                ));
            }
            if config.pointer("/metadata/name").is_none() {
                config["metadata"]["name"] = json!(name);
            }
            let subresource = if ctx.status { "status" } else { "" };
            let manager = ctx.manager.clone();
            let api_version = rt.api_version();
            let (group, plural) = (rt.group.clone(), rt.plural.clone());
            inner.store.apply(rt, namespace, name, &ctx, |current| {
                created.set(current.is_none());
                let current = current.map(|c| view.output(c.clone()));
                patch::apply(
                    current.as_ref(),
                    &config,
                    &manager,
                    force,
                    subresource,
                    &api_version,
                    &super::store::now(),
                )
                .map(|applied| view.input(applied))
                .map_err(|conflicts| ApiError::apply_conflicts(&group, &plural, name, &conflicts))
            })?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    let object = axum::Json(view.output(object));
    if created.get() {
        Ok((StatusCode::CREATED, object).into_response())
    } else {
        Ok(object.into_response())
    }
}

fn list(
    inner: &Inner,
    rt: &ResourceType,
    view: View,
    namespace: Option<&str>,
    selector: &Selector,
    query: &Query,
    table: Shape,
) -> Result<Response, ApiError> {
    let (items, rv) = inner
        .store
        .list(rt, namespace, |o| matches(selector, view, o));
    let items: Vec<Value> = items.into_iter().map(|o| view.output(o)).collect();
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        )
    };
    let start = query.get("continue").filter(|c| !c.is_empty());
    let mut items: Vec<Value> = match start {
        Some(after) => items
            .into_iter()
            .filter(|o| key(o).as_str() > after)
            .collect(),
        None => items,
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(limit) = limit
        && items.len() > limit
    {
        let remaining = items.len() - limit;
        items.truncate(limit);
        metadata["continue"] = json!(key(items.last().expect("limit > 0")));
        metadata["remainingItemCount"] = json!(remaining);
    }
    if table == Shape::Metadata {
        let items: Vec<Value> = items.iter().map(partial).collect();
        return Ok(json_response(json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": items,
        })));
    }
    if table == Shape::Table {
        let include = Include::parse(query.get("includeObject"));
        return Ok(json_response(super::table::table(
            rt, &items, include, metadata,
        )));
    }
    Ok(json_response(json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": view.api_version(rt.api_version()),
        "metadata": metadata,
        "items": items,
    })))
}

/// Counts a watch as open for as long as its task runs.
struct OpenWatch(Arc<Inner>);

impl OpenWatch {
    fn new(inner: Arc<Inner>) -> Self {
        inner.open_watches.fetch_add(1, Ordering::SeqCst);
        Self(inner)
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether a stored object matches a selector written against the API that was called.
fn matches(selector: &Selector, view: View, object: &Value) -> bool {
    match view {
        View::Stored => selector.matches(object),
        _ => selector.matches(&view.output(object.clone())),
    }
}

/// What one change means to one watch: the event type and object, or nothing.
fn event_for(
    change: &Change,
    view: View,
    namespace: Option<&str>,
    selector: &Selector,
) -> Option<(&'static str, Value)> {
    let visible = |o: &Value| {
        namespace
            .is_none_or(|n| o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(n))
            && matches(selector, view, o)
    };
    let now = visible(&change.object);
    match change.kind {
        ChangeKind::Added => now.then(|| ("ADDED", change.object.clone())),
        ChangeKind::Deleted => now.then(|| ("DELETED", change.object.clone())),
        ChangeKind::Modified => {
            let before = change.old.as_ref().is_none_or(visible);
            match (before, now) {
                (true, true) => Some(("MODIFIED", change.object.clone())),
                (false, true) => Some(("ADDED", change.object.clone())),
                (true, false) => Some(("DELETED", change.object.clone())),
                (false, false) => None,
            }
        }
    }
}

fn watch(
    inner: &Arc<Inner>,
    rt: Arc<ResourceType>,
    view: View,
    namespace: Option<&str>,
    selector: Selector,
    query: &Query,
    table: Shape,
) -> Result<Response, ApiError> {
    let from = query
        .get("resourceVersion")
        .filter(|rv| !rv.is_empty())
        .map(|rv| {
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))
        })
        .transpose()?;
    let initial = query.flag("sendInitialEvents");
    // Without a resourceVersion (or with "0") a watch starts with the current state as
    // synthetic ADDED events, as the API server's "start at most recent" does.
    let synthetic = initial || from.is_none_or(|rv| rv == 0);
    let bookmarks = query.flag("allowWatchBookmarks");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let include = Include::parse(query.get("includeObject"));
    let namespace = namespace.map(str::to_owned);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let start = inner.store.watch(&rt, from, synthetic);
    let mut kill = inner.kill.subscribe();
    let bookmark_interval = inner.bookmark_interval;
    let (group, plural) = (rt.group.clone(), rt.plural.clone());
    let crd_name = format!("{plural}.{group}");
    let type_meta = json!({"kind": rt.kind, "apiVersion": view.api_version(rt.api_version())});
    let bookmark = move |rv: u64, initial_end: bool| {
        let mut b = type_meta.clone();
        b["metadata"] = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            b["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        b
    };
    let render = move |kind: &str, object: Value| -> Bytes {
        let object = match kind {
            "BOOKMARK" | "ERROR" => object,
            _ if table == Shape::Table => super::table::table(&rt, &[object], include, json!({})),
            _ if table == Shape::Metadata => partial(&object),
            _ => view.output(object),
        };
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object}))
            .expect("JSON values serialize");
        line.push(b'\n');
        Bytes::from(line)
    };
    let open = OpenWatch::new(inner.clone());
    tokio::spawn(async move {
        let _open = open;
        let mut start = match start {
            Ok(start) => start,
            Err(error) => {
                let _ = tx.send(render("ERROR", error.status())).await;
                return;
            }
        };
        let mut last = start.rv;
        for object in std::mem::take(&mut start.initial) {
            let visible = namespace.as_deref().is_none_or(|n| {
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    == Some(n)
            }) && matches(&selector, view, &object);
            if visible && tx.send(render("ADDED", object)).await.is_err() {
                return;
            }
        }
        if initial
            && tx
                .send(render("BOOKMARK", bookmark(start.rv, true)))
                .await
                .is_err()
        {
            return;
        }
        for change in std::mem::take(&mut start.replay) {
            if let Some((kind, object)) = event_for(&change, view, namespace.as_deref(), &selector)
                && tx.send(render(kind, object)).await.is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(bookmark_interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                // A dropped connection wins over pending changes, so none slips through after it.
                biased;
                _ = kill.changed() => return,
                received = start.live.recv() => match received {
                    Ok(change) => {
                        if change.rv <= last {
                            continue;
                        }
                        last = change.rv;
                        // The API server ends the watches of a resource whose CRD is deleted.
                        if change.kind == ChangeKind::Deleted
                            && change.group == "apiextensions.k8s.io"
                            && change.plural == "customresourcedefinitions"
                            && change.object.pointer("/metadata/name").and_then(Value::as_str)
                                == Some(crd_name.as_str())
                        {
                            return;
                        }
                        if change.group != group || change.plural != plural {
                            continue;
                        }
                        if let Some((kind, object)) = event_for(&change, view, namespace.as_deref(), &selector)
                            && tx.send(render(kind, object)).await.is_err()
                        {
                            return;
                        }
                    }
                    // A watcher that fell behind is closed, as the API server closes slow
                    // watchers; the client resumes from its last resourceVersion.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(render("BOOKMARK", bookmark(last, false))).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                // The client went away: stop rather than wait for the next change to notice.
                _ = tx.closed() => return,
            }
        }
    });
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
    });
    let mut response = Response::new(Body::from_stream(lines));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    Ok(response)
}
