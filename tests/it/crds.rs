//! The generated CustomResourceDefinitions: in sync with `crds/`, structural as the API server
//! demands, documented, and shaped for `kubectl get`.

use crate::support;

use devkube::admission::Admission;
use devkube::manifests;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use pingone_aic_operator::crd;
use serde_json::Value;
use support::repo_path;

const REGENERATE: &str =
    "regenerate with `cargo run -- crdgen --out-dir crds && .ci/check-artifacts --sync` and commit";

#[test]
fn crds_directory_matches_the_rust_types() {
    let dir = repo_path("crds");
    let mut expected_files = Vec::new();
    for definition in crd::all() {
        let name = crd::file_name(&definition);
        let committed = std::fs::read_to_string(dir.join(&name))
            .unwrap_or_else(|e| panic!("crds/{name} cannot be read ({e}); {REGENERATE}"));
        let generated = crd::to_yaml(&definition).unwrap();
        assert!(
            committed == generated,
            "crds/{name} is stale: it differs from the Rust types; {REGENERATE}"
        );
        expected_files.push(dir.join(name));
    }
    let present = manifests::files_in(&dir).unwrap();
    assert_eq!(
        present, expected_files,
        "crds/ holds files no resource generates; {REGENERATE}"
    );
    let concatenated: String = present
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(
        concatenated,
        crd::crds_yaml().unwrap(),
        "crdgen output != crds/*.yaml"
    );
}

fn committed_crds() -> Vec<CustomResourceDefinition> {
    manifests::read_dir(&repo_path("crds"))
        .unwrap()
        .into_iter()
        .map(|doc| {
            serde_json::from_value(doc)
                .expect("a committed CRD parses as a CustomResourceDefinition")
        })
        .collect()
}

#[test]
fn committed_crds_are_structural_and_their_rules_compile() {
    let crds = committed_crds();
    assert_eq!(crds.len(), 3);
    for definition in &crds {
        let name = definition.metadata.name.clone().unwrap();
        if let Err(err) = Admission::for_crd(definition) {
            panic!("{name}: {err}");
        }
    }
}

fn schema_of(definition: &CustomResourceDefinition) -> Value {
    let version = &definition.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn undocumented(node: &Value, path: &str, found: &mut Vec<String>) {
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let child_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let root_meta =
                path.is_empty() && matches!(name.as_str(), "apiVersion" | "kind" | "metadata");
            let described = child
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !root_meta && !described {
                found.push(child_path.clone());
            }
            undocumented(child, &child_path, found);
        }
    }
    if let Some(items) = node.get("items") {
        undocumented(items, &format!("{path}[]"), found);
    }
}

fn cel_rules(node: &Value, found: &mut Vec<Value>) {
    match node {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "x-kubernetes-validations" {
                    found.extend(child.as_array().cloned().unwrap_or_default());
                } else {
                    cel_rules(child, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| cel_rules(i, found)),
        _ => {}
    }
}

#[test]
fn every_field_is_documented_and_every_rule_explains_itself() {
    for definition in committed_crds() {
        let schema = schema_of(&definition);
        let mut missing = Vec::new();
        undocumented(&schema, "", &mut missing);
        assert!(
            missing.is_empty(),
            "{:?}: fields without description: {missing:?}",
            definition.metadata.name
        );
        let mut rules = Vec::new();
        cel_rules(&schema, &mut rules);
        assert!(
            !rules.is_empty(),
            "{:?} has no CEL rules",
            definition.metadata.name
        );
        for rule in rules {
            let message = rule
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            assert!(message.len() > 20, "rule {rule} needs a human message");
        }
    }
}

#[test]
fn resources_are_namespaced_with_status_short_names_and_columns() {
    let expectations = [
        (
            "TenantEnvironment",
            "tenv",
            &["Tier", "Ready", "Reason", "Age"][..],
        ),
        ("PingOneIntegration", "p1i", &["Ready", "Reason", "Age"][..]),
        (
            "Promotion",
            "promo",
            &["Phase", "Ready", "Reason", "Age"][..],
        ),
    ];
    let crds = committed_crds();
    for (kind, short_name, columns) in expectations {
        let definition = crds.iter().find(|d| d.spec.names.kind == kind).unwrap();
        assert_eq!(definition.spec.group, "pingone-aic.io");
        assert_eq!(definition.spec.scope, "Namespaced");
        assert_eq!(
            definition.spec.names.short_names.as_deref(),
            Some(&[short_name.to_owned()][..])
        );
        assert_eq!(
            definition.spec.names.categories.as_deref(),
            Some(&["pingone-aic".to_owned()][..])
        );
        let version = &definition.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind} has no status subresource"
        );
        let present: Vec<&str> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        for column in columns {
            assert!(
                present.contains(column),
                "{kind} lacks printer column {column}: {present:?}"
            );
        }
        assert_eq!(
            present.last(),
            Some(&"Age"),
            "{kind}: AGE comes last, as kubectl users expect"
        );
    }
}
