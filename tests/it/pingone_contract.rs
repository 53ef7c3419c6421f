//! Contract tests: the PingOne simulator's answers and the client's request bodies checked
//! against the vendor's OpenAPI spec (`../shared/specs/pingone-management-openapi.yml`).
//! They skip, with a message, when that folder is not present.

use crate::pingone_support;
use crate::support;

use pingone_aic_operator::pingone::model::{
    create_application_body, replace_application_body, role_assignment_body, rotate_secret_body,
};
use pingone_aic_operator::pingone::{PingOneApi, Scope, TokenAuthMethod, WorkerApplication};
use pingone_aic_sim::control::FaultSpec;
use pingone_support::Fixture;
use serde_json::{Value, json};
use support::openapi::{Direction, Spec};

const SPEC: &str = "pingone-management-openapi.yml";

const APPS: &str = "/environments/{environmentID}/applications";
const APP: &str = "/environments/{environmentID}/applications/{applicationID}";
const SECRET: &str = "/environments/{environmentID}/applications/{applicationID}/secret";
const ASSIGNMENTS: &str =
    "/environments/{environmentID}/applications/{applicationID}/roleAssignments";
const ASSIGNMENT: &str =
    "/environments/{environmentID}/applications/{applicationID}/roleAssignments/{roleAssignmentID}";

fn assert_valid(spec: &Spec, schema: &Value, value: &Value, direction: Direction, what: &str) {
    let errors = spec.validate(schema, value, direction);
    assert!(
        errors.is_empty(),
        "{what} violates the spec:\n{}\n{value:#}",
        errors.join("\n")
    );
}

/// Calls the simulator as the operator and checks the answer against the operation's schema.
struct Caller<'a> {
    spec: &'a Spec,
    fx: &'a Fixture,
    http: reqwest::Client,
    token: String,
}

impl Caller<'_> {
    async fn call(
        &self,
        template: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Value {
        let url = format!("{}/v1{path}", self.fx.server.base_url);
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, expected, "{method} {path}: {text}");
        match self.spec.response_schema(template, method.as_str(), status) {
            Some(schema) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                assert_valid(
                    self.spec,
                    schema,
                    &value,
                    Direction::Response,
                    &format!("{method} {path} → {status}"),
                );
                value
            }
            None => {
                assert!(
                    text.is_empty(),
                    "{method} {path} → {status} has a body: {text}"
                );
                Value::Null
            }
        }
    }
}

#[tokio::test]
async fn simulator_answers_match_the_spec() {
    let Some(spec) = Spec::load(SPEC) else {
        return;
    };
    let fx = Fixture::new().await;
    fx.sim.set_page_size(1);
    let admin = fx.session("operator");
    admin.verify_credentials().await.unwrap();
    let token = fx.sim.issued_tokens().remove(0);
    let caller = Caller {
        spec: &spec,
        fx: &fx,
        http: pingone_aic_operator::http::client("contract-test").unwrap(),
        token,
    };
    let dev = fx.dev.clone();
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let put = reqwest::Method::PUT;
    let delete = reqwest::Method::DELETE;

    caller
        .call("/organizations", get.clone(), "/organizations", None, 200)
        .await;
    let envs = caller
        .call("/environments", get.clone(), "/environments", None, 200)
        .await;
    assert!(
        envs["_links"]["next"]["href"].is_string(),
        "page size 1 gives a next link"
    );
    let env = caller
        .call(
            "/environments/{environmentID}",
            get.clone(),
            &format!("/environments/{dev}"),
            None,
            200,
        )
        .await;
    assert_valid(
        &spec,
        spec.schema("Environment"),
        &env,
        Direction::Response,
        "environment",
    );

    let worker = WorkerApplication {
        name: "contract".into(),
        description: Some("d".into()),
        enabled: true,
        token_endpoint_auth_method: TokenAuthMethod::ClientSecretBasic,
    };
    let apps_path = format!("/environments/{dev}/applications");
    let app = caller
        .call(
            APPS,
            post.clone(),
            &apps_path,
            Some(create_application_body(&worker)),
            201,
        )
        .await;
    assert_valid(
        &spec,
        spec.schema("ApplicationOIDC"),
        &app,
        Direction::Response,
        "created application",
    );
    let id = app["id"].as_str().unwrap().to_owned();
    let app_path = format!("{apps_path}/{id}");
    let read = caller.call(APP, get.clone(), &app_path, None, 200).await;
    assert_valid(
        &spec,
        spec.schema("ApplicationOIDC"),
        &read,
        Direction::Response,
        "application",
    );
    caller
        .call(
            APP,
            put.clone(),
            &app_path,
            Some(replace_application_body(&worker)),
            200,
        )
        .await;
    let list = caller.call(APPS, get.clone(), &apps_path, None, 200).await;
    assert!(
        list["_links"]["next"]["href"]
            .as_str()
            .unwrap()
            .starts_with("http")
    );

    let secret_path = format!("{app_path}/secret");
    caller
        .call(SECRET, get.clone(), &secret_path, None, 200)
        .await;
    let expires = fx.control().now() + jiff::SignedDuration::from_hours(1);
    let rotated = caller
        .call(
            SECRET,
            post.clone(),
            &secret_path,
            Some(rotate_secret_body(Some(expires))),
            200,
        )
        .await;
    assert!(rotated["previous"]["expiresAt"].is_string());
    caller
        .call(SECRET, delete.clone(), &secret_path, None, 204)
        .await;

    let roles = caller
        .call("/roles", get.clone(), "/roles", None, 200)
        .await;
    let role_id = roles["_embedded"]["roles"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    caller
        .call(
            "/roles/{roleID}",
            get.clone(),
            &format!("/roles/{role_id}"),
            None,
            200,
        )
        .await;
    let ida = admin.role_id("Identity Data Admin").await.unwrap();
    let assignments_path = format!("{app_path}/roleAssignments");
    let assignment_body = role_assignment_body(&ida, &Scope::environment(&dev));
    let assignment = caller
        .call(
            ASSIGNMENTS,
            post.clone(),
            &assignments_path,
            Some(assignment_body.clone()),
            201,
        )
        .await;
    assert_valid(
        &spec,
        spec.schema("RoleAssignment"),
        &assignment,
        Direction::Response,
        "role assignment",
    );
    let duplicate = caller
        .call(
            ASSIGNMENTS,
            post.clone(),
            &assignments_path,
            Some(assignment_body),
            400,
        )
        .await;
    assert_eq!(duplicate["details"][0]["code"], "UNIQUENESS_VIOLATION");
    assert_eq!(duplicate["details"][0]["target"], "role");
    let incompatible = caller
        .call(
            ASSIGNMENTS,
            post.clone(),
            &assignments_path,
            Some(json!({ "role": { "id": ida }, "scope": { "id": dev, "type": "ORGANIZATION" } })),
            400,
        )
        .await;
    assert_eq!(incompatible["details"][0]["target"], "scope");
    caller
        .call(ASSIGNMENTS, get.clone(), &assignments_path, None, 200)
        .await;
    let assignment_path = format!("{assignments_path}/{}", assignment["id"].as_str().unwrap());
    caller
        .call(ASSIGNMENT, get.clone(), &assignment_path, None, 200)
        .await;
    caller
        .call(ASSIGNMENT, delete.clone(), &assignment_path, None, 204)
        .await;

    // Errors carry P1Error bodies.
    let invalid = caller
        .call(
            APPS,
            post.clone(),
            &apps_path,
            Some(json!({ "name": "x", "type": "WORKER" })),
            400,
        )
        .await;
    assert_eq!(invalid["code"], "INVALID_DATA");
    caller
        .call(APP, get.clone(), &format!("{apps_path}/missing"), None, 404)
        .await;
    fx.control().inject(FaultSpec {
        path: "/v1/environments/*/applications".into(),
        status: Some(429),
        retry_after: Some("2".into()),
        ..FaultSpec::default()
    });
    caller.call(APPS, get.clone(), &apps_path, None, 429).await;
    caller.call(APP, delete.clone(), &app_path, None, 204).await;
    caller.call(APP, delete.clone(), &app_path, None, 404).await;

    let anonymous = Caller {
        token: "expired-or-made-up".into(),
        ..caller
    };
    let unauthorized = anonymous
        .call(APPS, get.clone(), &apps_path, None, 401)
        .await;
    assert_eq!(unauthorized["details"][0]["code"], "INVALID_TOKEN");
}

#[test]
fn client_request_bodies_match_the_spec() {
    let Some(spec) = Spec::load(SPEC) else {
        return;
    };
    for method in [
        TokenAuthMethod::ClientSecretBasic,
        TokenAuthMethod::ClientSecretPost,
    ] {
        for description in [None, Some("Managed by pingone-aic-operator".to_owned())] {
            let app = WorkerApplication {
                name: "aic-worker".into(),
                description,
                enabled: true,
                token_endpoint_auth_method: method,
            };
            let create = create_application_body(&app);
            assert_valid(
                &spec,
                spec.request_schema(APPS, "POST"),
                &create,
                Direction::Request,
                "create body",
            );
            assert_valid(
                &spec,
                spec.schema("ApplicationOIDC"),
                &create,
                Direction::Request,
                "create body (OIDC)",
            );
            let replace = replace_application_body(&app);
            assert_valid(
                &spec,
                spec.request_schema(APP, "PUT"),
                &replace,
                Direction::Request,
                "replace body",
            );
            assert_valid(
                &spec,
                spec.schema("ApplicationOIDC"),
                &replace,
                Direction::Request,
                "replace body (OIDC)",
            );
        }
    }
    let expires: jiff::Timestamp = "2026-05-08T10:00:00Z".parse().unwrap();
    for body in [rotate_secret_body(None), rotate_secret_body(Some(expires))] {
        assert_valid(
            &spec,
            spec.request_schema(SECRET, "POST"),
            &body,
            Direction::Request,
            "rotate body",
        );
    }
    let assignment = role_assignment_body("role-id", &Scope::environment("env-id"));
    assert_valid(
        &spec,
        spec.request_schema(ASSIGNMENTS, "POST"),
        &assignment,
        Direction::Request,
        "assignment body",
    );

    // The checker is not vacuous: a body with a read-only field or a bad enum is refused.
    let mut bad = create_application_body(&WorkerApplication {
        name: "x".into(),
        description: None,
        enabled: true,
        token_endpoint_auth_method: TokenAuthMethod::ClientSecretBasic,
    });
    bad["id"] = json!("not-allowed");
    bad["tokenEndpointAuthMethod"] = json!("SOMETHING_ELSE");
    assert_eq!(
        spec.validate(spec.schema("ApplicationOIDC"), &bad, Direction::Request)
            .len(),
        2
    );
}

#[test]
fn the_checker_catches_what_it_should() {
    let spec: Value = serde_json::json!({
        "components": { "schemas": {
            "Thing": { "type": "object", "required": ["name"], "properties": {
                "id": { "type": "string", "readOnly": true },
                "name": { "type": "string", "minLength": 2 },
                "kind": { "type": "string", "enum": ["A", "B"] },
                "when": { "type": "string", "format": "date-time" },
                "tags": { "type": "array", "items": { "type": "integer" } }
            }}
        }}
    });
    let spec = Spec::from_value(spec);
    let thing = spec.schema("Thing").clone();
    let ok = serde_json::json!({ "name": "ab", "kind": "A", "when": "2026-01-01T00:00:00.000Z", "tags": [1] });
    assert!(spec.validate(&thing, &ok, Direction::Request).is_empty());
    let bad = serde_json::json!({ "id": "x", "name": "a", "kind": "C", "when": "yesterday", "tags": ["1"] });
    let errors = spec.validate(&thing, &bad, Direction::Request);
    assert_eq!(errors.len(), 5, "{errors:?}");
    assert_eq!(
        spec.validate(&thing, &serde_json::json!({}), Direction::Response),
        [": missing required name"]
    );
}
