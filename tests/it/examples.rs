//! `deploy/examples/`: every valid example is admitted by the CRDs' schemas and CEL rules and
//! forms a consistent set; every mistake in `deploy/examples/invalid/` is rejected with the
//! message it documents; schema defaults and the Rust types' defaults agree.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;

use devkube::manifests;
use k8s_openapi::api::core::v1::Secret;
use pingone_aic_operator::crd::pingone_integration::CredentialType;
use pingone_aic_operator::crd::{PingOneIntegration, Promotion, TenantEnvironment};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::{admission_for, repo_path};

const GROUP_VERSION: &str = "pingone-aic.io/v1alpha1";

struct Examples {
    secrets: BTreeMap<String, Secret>,
    tenants: BTreeMap<String, TenantEnvironment>,
    integrations: BTreeMap<String, PingOneIntegration>,
    promotions: BTreeMap<String, Promotion>,
}

/// Admits a custom resource as the API server would and parses the stored form into its type;
/// the parsed object must serialize back to exactly what was stored (schema and types agree).
fn admit<T: DeserializeOwned + serde::Serialize>(document: &Value, old: Option<&Value>) -> T {
    let kind = document["kind"].as_str().unwrap();
    let name = document["metadata"]["name"].as_str().unwrap_or_default();
    let admitted = admission_for(kind)
        .admit(document, old)
        .unwrap_or_else(|rejection| panic!("{kind} {name} was rejected: {rejection}"));
    assert!(
        admitted.unknown_fields.is_empty(),
        "{kind} {name} has unknown fields {:?}",
        admitted.unknown_fields
    );
    let typed: T = serde_json::from_value(admitted.object.clone())
        .unwrap_or_else(|e| panic!("{kind} {name} does not parse: {e}"));
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        admitted.object,
        "{kind} {name}: schema and Rust type disagree"
    );
    typed
}

fn load_examples() -> Examples {
    let documents = manifests::read_dir(&repo_path("deploy/examples")).unwrap();
    let mut examples = Examples {
        secrets: BTreeMap::new(),
        tenants: BTreeMap::new(),
        integrations: BTreeMap::new(),
        promotions: BTreeMap::new(),
    };
    for document in documents {
        let name = document["metadata"]["name"].as_str().unwrap().to_owned();
        assert!(
            document["metadata"].get("namespace").is_none(),
            "{name}: examples apply to the current namespace"
        );
        match (document["apiVersion"].as_str(), document["kind"].as_str()) {
            (Some("v1"), Some("Secret")) => {
                let secret: Secret = serde_json::from_value(document).unwrap();
                examples.secrets.insert(name, secret);
            }
            (Some(GROUP_VERSION), Some("TenantEnvironment")) => {
                examples.tenants.insert(name, admit(&document, None));
            }
            (Some(GROUP_VERSION), Some("PingOneIntegration")) => {
                examples.integrations.insert(name, admit(&document, None));
            }
            (Some(GROUP_VERSION), Some("Promotion")) => {
                examples.promotions.insert(name, admit(&document, None));
            }
            other => panic!("unexpected example object {other:?}"),
        }
    }
    examples
}

impl Examples {
    fn secret_key(&self, name: &str, key: &str) -> String {
        let secret = self
            .secrets
            .get(name)
            .unwrap_or_else(|| panic!("Secret {name} is referenced but not in the examples"));
        let value = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .unwrap_or_else(|| panic!("Secret {name} has no key {key}"));
        assert!(!value.trim().is_empty(), "Secret {name} key {key} is empty");
        value.clone()
    }
}

#[test]
fn valid_examples_are_admitted_and_parse_into_the_rust_types() {
    let examples = load_examples();
    assert_eq!(examples.tenants.len(), 5);
    assert_eq!(examples.integrations.len(), 2);
    assert_eq!(examples.promotions.len(), 1);
}

#[test]
fn examples_form_a_consistent_promotion_group() {
    let examples = load_examples();
    // Every referenced Secret exists with the keys its consumer reads; JWKs are RSA private keys.
    for (name, tenant) in &examples.tenants {
        let key_ref = &tenant.spec.service_account.private_key_secret_ref;
        let jwk: Value = serde_json::from_str(&examples.secret_key(&key_ref.name, &key_ref.key))
            .unwrap_or_else(|e| panic!("{name}: the service account key is not a JWK: {e}"));
        for member in ["kty", "n", "e", "d", "p", "q", "dp", "dq", "qi"] {
            assert!(jwk.get(member).is_some(), "{name}: JWK lacks {member}");
        }
        assert_eq!(jwk["kty"], "RSA");
        let admin = tenant
            .spec
            .ping_one
            .admin_credentials_secret_ref
            .as_ref()
            .unwrap();
        for key in ["clientId", "clientSecret", "environmentId"] {
            examples.secret_key(&admin.name, key);
        }
        if let Some(lower) = &tenant.spec.promotes_from {
            assert!(
                examples.tenants.contains_key(lower),
                "{name} promotes from unknown {lower}"
            );
        }
    }
    // development -> uat -> staging -> production, plus a sandbox outside the group.
    let chain: Vec<&str> = ["acme-uat", "acme-staging", "acme-prod"]
        .iter()
        .map(|n| examples.tenants[*n].spec.promotes_from.as_deref().unwrap())
        .collect();
    assert_eq!(chain, ["acme-dev", "acme-uat", "acme-staging"]);
    assert!(
        examples.tenants["acme-sandbox"]
            .spec
            .promotes_from
            .is_none()
    );

    let mut credential_types = Vec::new();
    let mut claimed = BTreeMap::new();
    for (name, integration) in &examples.integrations {
        credential_types.push(integration.spec.credential_type);
        let esv = &integration.spec.esv;
        for environment in &integration.spec.environments {
            assert!(
                examples.tenants.contains_key(&environment.name),
                "{name}: unknown environment {}",
                environment.name
            );
            if let Some(secret) = &environment.credentials_secret_ref {
                let jwt = examples.secret_key(&secret.name, "credential");
                assert_eq!(
                    jwt.split('.').count(),
                    3,
                    "{name}: the credential is not JWT-shaped"
                );
            }
            // Two integrations must not claim the same ESV or service in one tenant.
            for claim in [
                &esv.environment_id,
                &esv.client_id,
                &esv.client_secret,
                &esv.connection_jwt,
                &integration.spec.service.name,
            ] {
                let previous =
                    claimed.insert((environment.name.clone(), claim.clone()), name.clone());
                assert!(
                    previous.is_none(),
                    "{claim} in {} is claimed twice",
                    environment.name
                );
            }
        }
    }
    credential_types.sort_by_key(|t| format!("{t:?}"));
    assert_eq!(
        credential_types,
        [
            CredentialType::ProductConnection,
            CredentialType::WorkerApplication
        ]
    );

    for (name, promotion) in &examples.promotions {
        let to = &examples.tenants[&promotion.spec.to];
        assert_eq!(
            to.spec.promotes_from.as_deref(),
            Some(promotion.spec.from.as_str()),
            "{name} skips a step"
        );
    }
}

#[test]
fn every_invalid_example_is_rejected_with_its_message() {
    let files = manifests::files_in(&repo_path("deploy/examples/invalid")).unwrap();
    assert!(files.len() >= 10, "the invalid examples are missing");
    for file in files {
        let expected = support::expected_error(&file);
        let documents = manifests::read_file(&file).unwrap();
        let (old, new) = match documents.as_slice() {
            [new] => (None, new),
            [old, new] => (Some(old), new),
            _ => panic!("{}: one document, or two for an update", file.display()),
        };
        let kind = new["kind"].as_str().unwrap();
        let admission = admission_for(kind);
        if let Some(old) = old {
            let stored = admission
                .admit(old, None)
                .unwrap_or_else(|r| panic!("{}: the original must be valid: {r}", file.display()));
            let rejection = admission
                .admit(new, Some(&stored.object))
                .expect_err(&file.display().to_string());
            assert_message(&file, &rejection.to_string(), &expected);
        } else {
            let rejection = admission
                .admit(new, None)
                .expect_err(&file.display().to_string());
            assert_message(&file, &rejection.to_string(), &expected);
        }
    }
}

fn assert_message(file: &Path, actual: &str, expected: &str) {
    assert!(
        actual.contains(expected),
        "{}:\n  expected: {expected}\n  got:      {actual}",
        file.display()
    );
}

/// The defaults the API server applies are those the Rust types apply when a field is absent,
/// so the operator reads the same spec whether or not the server defaulted it.
#[test]
fn schema_defaults_match_the_rust_defaults() {
    let tenant = json!({
        "apiVersion": GROUP_VERSION, "kind": "TenantEnvironment", "metadata": {"name": "t"},
        "spec": {"tenantUrl": "https://tenant.example.com", "tier": "development",
                 "serviceAccount": {"id": "sa", "privateKeySecretRef": {"name": "s", "key": "jwk"}},
                 "pingOne": {"environmentId": "11111111-1111-4111-8111-111111111111", "region": "NA"}}
    });
    let integration = json!({
        "apiVersion": GROUP_VERSION, "kind": "PingOneIntegration", "metadata": {"name": "i"},
        "spec": {"environments": [{"name": "t"}], "workerApplication": {}}
    });
    let promotion = json!({
        "apiVersion": GROUP_VERSION, "kind": "Promotion", "metadata": {"name": "p"},
        "spec": {"from": "a", "to": "b"}
    });
    let admitted: TenantEnvironment = admit(&tenant, None);
    let raw: TenantEnvironment = serde_json::from_value(tenant).unwrap();
    assert_eq!(admitted.spec, raw.spec);
    assert_eq!(admitted.spec.realm, "alpha");
    assert_eq!(admitted.spec.restart.debounce, "60s");

    let admitted: PingOneIntegration = admit(&integration, None);
    let raw: PingOneIntegration = serde_json::from_value(integration).unwrap();
    assert_eq!(admitted.spec, raw.spec);
    let spec = &admitted.spec;
    assert_eq!(spec.credential_type, CredentialType::WorkerApplication);
    assert_eq!(
        [
            &spec.esv.environment_id,
            &spec.esv.client_id,
            &spec.esv.client_secret,
            &spec.esv.connection_jwt
        ],
        [
            "esv-pingone-environment-id",
            "esv-pingone-worker-client-id",
            "esv-pingone-worker-client-secret",
            "esv-pingone-connection-jwt"
        ]
    );
    assert_eq!(
        spec.worker_application.as_ref().unwrap().roles,
        ["Identity Data Admin"]
    );

    let admitted: Promotion = admit(&promotion, None);
    let raw: Promotion = serde_json::from_value(promotion).unwrap();
    assert_eq!(admitted.spec, raw.spec);
    assert!(!admitted.spec.dry_run_only);
}

#[test]
fn loopback_http_is_accepted_for_the_simulators() {
    let tenant = json!({
        "apiVersion": GROUP_VERSION, "kind": "TenantEnvironment", "metadata": {"name": "t"},
        "spec": {"tenantUrl": "http://127.0.0.1:8443", "tier": "sandbox",
                 "serviceAccount": {"id": "sa", "privateKeySecretRef": {"name": "s", "key": "jwk"}},
                 "pingOne": {"environmentId": "11111111-1111-4111-8111-111111111111", "region": "NA",
                             "apiUrl": "http://localhost:9000/v1", "authUrl": "http://[::1]:9000"}}
    });
    let _: TenantEnvironment = admit(&tenant, None);
}
