//! Security evidence about what the resources can point at: Secret references cannot leave the
//! resource's namespace (no `namespace` field anywhere in a reference; one given is pruned by
//! admission and never reaches the operator), and endpoints must be `https://` except on
//! loopback, both at admission (CEL) and in the clients (`http::parse_base_url`).

use crate::support;

use pingone_aic_operator::crd;
use pingone_aic_operator::http::parse_base_url;
use pingone_aic_operator::pingone::endpoints::Endpoints;
use serde_json::{Value, json};

/// Every schema node (with its path) whose property name ends in `SecretRef`.
fn secret_references<'a>(node: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            let here = format!("{path}.{name}");
            if name.ends_with("SecretRef") {
                out.push((here.clone(), child));
            }
            secret_references(child, here, out);
        }
    }
    if let Some(items) = node.get("items") {
        secret_references(items, format!("{path}[]"), out);
    }
}

#[test]
fn no_secret_reference_has_a_namespace_field() {
    let mut checked = 0;
    for definition in crd::all() {
        for version in &definition.spec.versions {
            let schema = serde_json::to_value(
                version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .expect("a schema"),
            )
            .unwrap();
            let mut refs = Vec::new();
            secret_references(&schema, definition.spec.names.kind.clone(), &mut refs);
            for (path, node) in refs {
                let props = node["properties"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{path} has properties"));
                assert!(props.contains_key("name"), "{path} names a Secret");
                assert!(
                    !props.contains_key("namespace"),
                    "{path} must not reach into another namespace"
                );
                assert_ne!(
                    node.get("x-kubernetes-preserve-unknown-fields"),
                    Some(&Value::Bool(true)),
                    "{path} must prune unknown fields"
                );
                checked += 1;
            }
        }
    }
    // TenantEnvironment: service account key, PingOne admin credentials; PingOneIntegration:
    // per-environment credentials.
    assert!(checked >= 3, "found {checked} Secret references");
}

fn tenant() -> Value {
    json!({
        "apiVersion": "pingone-aic.io/v1alpha1",
        "kind": "TenantEnvironment",
        "metadata": {"name": "acme-dev", "namespace": "team-a"},
        "spec": {
            "tenantUrl": "https://openam-acme-dev.id.forgerock.io",
            "tier": "development",
            "serviceAccount": {
                "id": "2f6c5a1e-0d1b-4c3a-9e8f-7a6b5c4d3e04",
                "privateKeySecretRef": {"name": "aic-service-account", "key": "jwk"}
            },
            "pingOne": {
                "environmentId": "44444444-4444-4444-8444-444444444444",
                "region": "EU",
                "adminCredentialsSecretRef": {"name": "pingone-admin"}
            }
        }
    })
}

#[test]
fn a_namespace_in_a_secret_reference_is_pruned_by_admission() {
    let admission = support::admission_for("TenantEnvironment");
    let mut object = tenant();
    object["spec"]["serviceAccount"]["privateKeySecretRef"]["namespace"] = json!("kube-system");
    object["spec"]["pingOne"]["adminCredentialsSecretRef"]["namespace"] = json!("kube-system");
    let admitted = admission
        .admit(&object, None)
        .expect("admitted after pruning");
    assert_eq!(
        admitted.object["spec"]["serviceAccount"]["privateKeySecretRef"],
        json!({"name": "aic-service-account", "key": "jwk"})
    );
    assert!(
        admitted.object["spec"]["pingOne"]["adminCredentialsSecretRef"]
            .get("namespace")
            .is_none()
    );
    assert_eq!(
        admitted.unknown_fields.len(),
        2,
        "both are reported as unknown fields (kubectl warns): {:?}",
        admitted.unknown_fields
    );

    // The typed resource has nowhere to keep one either.
    let typed: crd::TenantEnvironment = serde_json::from_value(object).unwrap();
    let back = serde_json::to_value(&typed).unwrap();
    assert!(
        back["spec"]["serviceAccount"]["privateKeySecretRef"]
            .get("namespace")
            .is_none()
    );
}

#[test]
fn plain_http_endpoints_are_refused_at_admission_except_loopback() {
    let admission = support::admission_for("TenantEnvironment");
    let cases = [
        (
            "/spec/tenantUrl",
            "http://openam-acme.id.forgerock.io",
            false,
        ),
        ("/spec/tenantUrl", "http://10.0.0.8:8080", false),
        ("/spec/tenantUrl", "http://127.0.0.1.example.com", false),
        ("/spec/tenantUrl", "http://localhost.example.com/", false),
        (
            "/spec/tenantUrl",
            "ftp://openam-acme.id.forgerock.io",
            false,
        ),
        ("/spec/tenantUrl", "http://127.0.0.1:8080", true),
        ("/spec/tenantUrl", "http://localhost:9000", true),
        ("/spec/tenantUrl", "http://[::1]:9000", true),
        (
            "/spec/tenantUrl",
            "https://openam-acme.id.forgerock.io",
            true,
        ),
        ("/spec/pingOne/apiUrl", "http://api.pingone.eu/v1", false),
        ("/spec/pingOne/apiUrl", "http://127.0.0.1:9000/v1", true),
        ("/spec/pingOne/authUrl", "http://auth.pingone.eu", false),
        ("/spec/pingOne/authUrl", "https://auth.example.com", true),
    ];
    for (pointer, url, accepted) in cases {
        let mut object = tenant();
        *object
            .pointer_mut(pointer.rsplit_once('/').unwrap().0)
            .unwrap() = {
            let mut parent = object
                .pointer(pointer.rsplit_once('/').unwrap().0)
                .unwrap()
                .clone();
            parent[pointer.rsplit_once('/').unwrap().1] = json!(url);
            parent
        };
        let result = admission.admit(&object, None);
        assert_eq!(
            result.is_ok(),
            accepted,
            "{pointer} = {url}: {:?}",
            result.err().map(|r| r.to_string())
        );
        if let Err(rejection) = result {
            let text = rejection.to_string();
            assert!(text.contains("https://"), "a clear message: {text}");
        }
    }
}

#[test]
fn plain_http_endpoints_are_refused_by_the_clients_except_loopback() {
    for url in [
        "http://openam-acme.id.forgerock.io",
        "http://10.0.0.8:8080",
        "http://127.0.0.1.example.com",
        "http://user:pass@127.0.0.1:1",
        "ftp://example.com",
    ] {
        assert!(parse_base_url(url).is_err(), "{url} refused");
    }
    for url in [
        "https://openam-acme.id.forgerock.io",
        "http://127.0.0.1:8080",
        "http://127.1.2.3",
        "http://localhost:1",
        "http://[::1]:2",
    ] {
        assert!(parse_base_url(url).is_ok(), "{url} accepted");
    }
    assert!(Endpoints::custom("http://api.pingone.eu/v1", "https://auth.pingone.eu").is_err());
    assert!(Endpoints::custom("https://api.pingone.eu/v1", "http://auth.pingone.eu").is_err());
    assert!(Endpoints::custom("http://127.0.0.1:1/v1", "http://127.0.0.1:1").is_ok());
}
