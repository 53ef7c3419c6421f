//! The application bodies PingOne accepts on create and replace: the spec's `ApplicationOIDC`,
//! `ApplicationSAML`, `ApplicationWSFED` or `ApplicationExternalLink`, chosen by `protocol`, with
//! the types each protocol allows, checked attribute by attribute down to nested objects.
//!
//! Sources: the management spec's schemas (attribute names, types, enums, ranges, required
//! nested attributes) and the Terraform provider's `pingone_application` documentation (which
//! application types each protocol takes). Refusing attributes a protocol's schema does not
//! name is the simulator's choice (no capture shows PingOne's answer to one); it keeps a typo in
//! a request from passing silently.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::{Reply, invalid, p1};

/// What one attribute's value must be.
#[derive(Clone, Copy)]
enum Shape {
    Text,
    Flag,
    Whole {
        min: i64,
        max: i64,
    },
    OneOf(&'static [&'static str]),
    Matching(fn(&str) -> bool),
    Texts,
    EachOneOf(&'static [&'static str]),
    Object(&'static [Attribute]),
    Objects(&'static [Attribute]),
    /// An object the spec leaves open (`template.configuration`, a group reference).
    AnyObject,
    /// In the spec, but deep and unused by the operator: refused rather than stored unchecked.
    NotModelled,
}

#[derive(Clone, Copy)]
struct Attribute {
    name: &'static str,
    shape: Shape,
    required: bool,
}

const fn optional(name: &'static str, shape: Shape) -> Attribute {
    Attribute {
        name,
        shape,
        required: false,
    }
}

const fn required(name: &'static str, shape: Shape) -> Attribute {
    Attribute {
        name,
        shape,
        required: true,
    }
}

const REFERENCE: &[Attribute] = &[required("id", Shape::Text)];
/// An integer the spec does not bound.
const INTEGER: Shape = Shape::Whole {
    min: i64::MIN,
    max: i64::MAX,
};

const PROTOCOLS: &[&str] = &["OPENID_CONNECT", "SAML", "WS_FED", "EXTERNAL_LINK"];
const APP_TYPES: &[&str] = &[
    "WEB_APP",
    "NATIVE_APP",
    "SINGLE_PAGE_APP",
    "WORKER",
    "SERVICE",
    "CUSTOM_APP",
    "PING_ONE_SELF_SERVICE",
    "PING_ONE_ADMIN_CONSOLE",
    "PING_ONE_PORTAL",
    "TEMPLATE_APP",
    "PORTAL_LINK_APP",
];
const AUTH_METHODS: &[&str] = &[
    "NONE",
    "CLIENT_SECRET_BASIC",
    "CLIENT_SECRET_POST",
    "PRIVATE_KEY_JWT",
    "CLIENT_SECRET_JWT",
];
const GRANT_TYPES: &[&str] = &[
    "AUTHORIZATION_CODE",
    "IMPLICIT",
    "REFRESH_TOKEN",
    "CLIENT_CREDENTIALS",
    "DEVICE_CODE",
    "TOKEN_EXCHANGE",
    "CIBA",
];
const SIGNING_ALGORITHMS: &[&str] = &[
    "SHA256withRSA",
    "SHA384withRSA",
    "SHA512withRSA",
    "SHA256withECDSA",
    "SHA384withECDSA",
    "SHA512withECDSA",
];

const CORS_SETTINGS: Shape = Shape::Object(&[
    required(
        "behavior",
        Shape::OneOf(&["ALLOW_NO_ORIGINS", "ALLOW_SPECIFIC_ORIGINS"]),
    ),
    optional("origins", Shape::Texts),
]);

/// Attributes every protocol's schema shares (the spec's `Application`).
const COMMON: &[Attribute] = &[
    optional(
        "accessControl",
        Shape::Object(&[
            optional(
                "role",
                Shape::Object(&[required("type", Shape::OneOf(&["ADMIN_USERS_ONLY"]))]),
            ),
            optional(
                "group",
                Shape::Object(&[
                    required("type", Shape::OneOf(&["ANY_GROUP", "ALL_GROUPS"])),
                    required("groups", Shape::Objects(REFERENCE)),
                ]),
            ),
        ]),
    ),
    optional("description", Shape::Text),
    optional("enabled", Shape::Flag),
    optional("hiddenFromAppPortal", Shape::Flag),
    optional(
        "icon",
        Shape::Object(&[required("id", Shape::Text), required("href", Shape::Text)]),
    ),
    optional("loginPageUrl", Shape::Text),
    optional("name", Shape::Text),
    optional("protocol", Shape::OneOf(PROTOCOLS)),
    optional("type", Shape::OneOf(APP_TYPES)),
];

const OIDC: &[Attribute] = &[
    optional("additionalRefreshTokenReplayProtectionEnabled", Shape::Flag),
    optional("allowWildcardInRedirectUris", Shape::Flag),
    optional("corsSettings", CORS_SETTINGS),
    optional("devicePathId", Shape::Matching(device_path_id)),
    optional("deviceCustomVerificationUri", Shape::Text),
    optional("deviceTimeout", Shape::Whole { min: 1, max: 3600 }),
    optional("devicePollingInterval", Shape::Whole { min: 1, max: 60 }),
    optional("idpSignoff", Shape::Flag),
    optional("includeX5t", Shape::Flag),
    optional("jwks", Shape::Text),
    optional("jwksUrl", Shape::Text),
    optional("mobile", Shape::NotModelled),
    optional(
        "kerberos",
        Shape::Object(&[required("key", Shape::Object(REFERENCE))]),
    ),
    optional("grantTypes", Shape::EachOneOf(GRANT_TYPES)),
    optional("homePageUrl", Shape::Text),
    optional("initiateLoginUri", Shape::Text),
    optional("opSessionCheckEnabled", Shape::Flag),
    optional("parRequirement", Shape::OneOf(&["REQUIRED", "OPTIONAL"])),
    optional("parTimeout", Shape::Whole { min: 1, max: 600 }),
    optional(
        "pkceEnforcement",
        Shape::OneOf(&["OPTIONAL", "REQUIRED", "S256_REQUIRED"]),
    ),
    optional("postLogoutRedirectUris", Shape::Texts),
    optional("redirectUris", Shape::Texts),
    optional(
        "refreshTokenDuration",
        Shape::Whole {
            min: 60,
            max: i32::MAX as i64,
        },
    ),
    optional(
        "refreshTokenRollingDuration",
        Shape::Whole {
            min: i64::MIN,
            max: i32::MAX as i64,
        },
    ),
    optional(
        "refreshTokenRollingGracePeriodDuration",
        Shape::Whole {
            min: i64::MIN,
            max: 86_400,
        },
    ),
    optional(
        "refreshTokenType",
        Shape::OneOf(&["JSON_WEB_TOKEN", "OPAQUE_TOKEN"]),
    ),
    optional("requestScopesForMultipleResourcesEnabled", Shape::Flag),
    optional("requireSignedRequestObject", Shape::Flag),
    optional(
        "responseTypes",
        Shape::EachOneOf(&["TOKEN", "ID_TOKEN", "CODE"]),
    ),
    optional(
        "signing",
        Shape::Object(&[required("keyRotationPolicy", Shape::Object(REFERENCE))]),
    ),
    optional("supportUnsignedRequestObject", Shape::Flag),
    optional(
        "tags",
        Shape::EachOneOf(&["PING_FED_CONNECTION_INTEGRATION"]),
    ),
    optional("targetLinkUri", Shape::Text),
    optional("template", TEMPLATE),
    optional("tokenEndpointAuthMethod", Shape::OneOf(AUTH_METHODS)),
];

const TEMPLATE: Shape = Shape::Object(&[
    required("configuration", Shape::AnyObject),
    required("integration", Shape::Object(REFERENCE)),
    required("version", Shape::Object(REFERENCE)),
]);

const SAML: &[Attribute] = &[
    optional("homePageUrl", Shape::Text),
    optional("acsUrls", Shape::Texts),
    optional("assertionDuration", INTEGER),
    optional("assertionSigned", Shape::Flag),
    optional("corsSettings", CORS_SETTINGS),
    optional("defaultTargetUrl", Shape::Text),
    optional("enableRequestedAuthnContext", Shape::Flag),
    optional("enableAlwaysAcceptAcsUrlInSignedAuthnRequest", Shape::Flag),
    optional(
        "idpSigning",
        Shape::Object(&[
            required("key", Shape::Object(REFERENCE)),
            optional("algorithm", Shape::OneOf(SIGNING_ALGORITHMS)),
        ]),
    ),
    optional("nameIdFormat", Shape::Text),
    optional("responseSigned", Shape::Flag),
    optional("sessionNotOnOrAfterDuration", INTEGER),
    optional("sloBinding", Shape::OneOf(&["HTTP_REDIRECT", "HTTP_POST"])),
    optional("sloEndpoint", Shape::Text),
    optional("sloResponseEndpoint", Shape::Text),
    optional("sloWindow", INTEGER),
    optional(
        "spEncryption",
        Shape::Object(&[
            required(
                "algorithm",
                Shape::OneOf(&["AES_128", "AES_256", "TRIPLEDES"]),
            ),
            required("certificate", Shape::Object(REFERENCE)),
        ]),
    ),
    optional("spEntityId", Shape::Text),
    optional(
        "spVerification",
        Shape::Object(&[
            optional("authnRequestSigned", Shape::Flag),
            required("certificates", Shape::Objects(REFERENCE)),
        ]),
    ),
    optional("template", TEMPLATE),
    optional(
        "virtualServerIdSettings",
        Shape::Object(&[
            optional("enabled", Shape::Flag),
            optional(
                "virtualServerIds",
                Shape::Objects(&[
                    required("vsId", Shape::Text),
                    optional("default", Shape::Flag),
                ]),
            ),
        ]),
    ),
];

const WS_FED: &[Attribute] = &[
    optional(
        "assertionDuration",
        Shape::Whole {
            min: 300,
            max: 3_932_100,
        },
    ),
    optional("audienceRestriction", Shape::Text),
    optional("corsSettings", CORS_SETTINGS),
    optional("domainName", Shape::Text),
    optional(
        "idpSigning",
        Shape::Object(&[
            required("algorithm", Shape::OneOf(SIGNING_ALGORITHMS)),
            required("key", Shape::Object(REFERENCE)),
        ]),
    ),
    optional(
        "kerberos",
        Shape::Object(&[optional(
            "gateways",
            Shape::Objects(&[
                required("id", Shape::Text),
                required("type", Shape::OneOf(&["LDAP"])),
                required("userType", Shape::AnyObject),
            ]),
        )]),
    ),
    optional("replyUrl", Shape::Text),
    optional("sloEndpoint", Shape::Text),
    optional(
        "subjectNameIdentifierFormat",
        Shape::OneOf(&[
            "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        ]),
    ),
    optional("wsTrustVersion", Shape::OneOf(&["1.2", "1.3"])),
];

const EXTERNAL_LINK: &[Attribute] = &[
    optional("homePageUrl", Shape::Text),
    optional("externalId", Shape::Text),
];

/// Per protocol: its own attributes, the ones its schema requires besides the common ones, and
/// the application types it takes (Terraform provider docs: `oidc_options.type`,
/// `saml_options.type` with `TEMPLATE_APP` since provider issue #841, `wsfed_options.type`, and
/// `PORTAL_LINK_APP` for external links). The built-in `PING_ONE_*` applications have no
/// create schema in the spec: PingOne makes them with the environment.
fn protocol_rules(
    protocol: &str,
) -> (
    &'static [Attribute],
    &'static [&'static str],
    &'static [&'static str],
) {
    match protocol {
        "OPENID_CONNECT" => (
            OIDC,
            &["tokenEndpointAuthMethod"],
            &[
                "WEB_APP",
                "NATIVE_APP",
                "SINGLE_PAGE_APP",
                "WORKER",
                "SERVICE",
                "CUSTOM_APP",
            ],
        ),
        "SAML" => (
            SAML,
            &["spEntityId", "acsUrls", "assertionDuration"],
            &["WEB_APP", "CUSTOM_APP", "TEMPLATE_APP"],
        ),
        "WS_FED" => (
            WS_FED,
            &["domainName", "idpSigning", "replyUrl"],
            &["WEB_APP", "CUSTOM_APP"],
        ),
        _ => (EXTERNAL_LINK, &["homePageUrl"], &["PORTAL_LINK_APP"]),
    }
}

/// The spec's `devicePathId` pattern, `^[a-zA-Z0-9_-]{1,50}$`.
fn device_path_id(value: &str) -> bool {
    (1..=50).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn unsupported(target: &str, allowed: &[&str]) -> Reply {
    p1(
        StatusCode::BAD_REQUEST,
        "INVALID_DATA",
        "The request could not be completed. One or more validation errors were in the request.",
        vec![json!({
            "code": "INVALID_VALUE",
            "target": target,
            "message": format!("{target} has an unsupported value"),
            "innerError": { "allowedValues": allowed },
        })],
    )
}

fn wrong_type(target: &str, expected: &str) -> Reply {
    invalid(
        target,
        "INVALID_VALUE",
        &format!("{target} must be {expected}"),
    )
}

fn check_value(target: &str, value: &Value, shape: Shape) -> Result<(), Reply> {
    match (shape, value) {
        (Shape::Text, Value::String(_)) | (Shape::Flag, Value::Bool(_)) => Ok(()),
        (Shape::Text, _) => Err(wrong_type(target, "a string")),
        (Shape::Flag, _) => Err(wrong_type(target, "a boolean")),
        (Shape::Whole { min, max }, value) => match value.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            Some(_) => Err(invalid(
                target,
                "OUT_OF_RANGE",
                &format!("{target} must be between {min} and {max}"),
            )),
            None => Err(wrong_type(target, "an integer")),
        },
        (Shape::OneOf(allowed), Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        (Shape::OneOf(allowed), _) => Err(unsupported(target, allowed)),
        (Shape::Matching(matches), Value::String(s)) if matches(s) => Ok(()),
        (Shape::Matching(_), _) => Err(invalid(
            target,
            "INVALID_VALUE",
            &format!("{target} does not match the required pattern"),
        )),
        (Shape::Texts, Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        (Shape::Texts, _) => Err(wrong_type(target, "an array of strings")),
        (Shape::EachOneOf(allowed), Value::Array(items)) => {
            if items
                .iter()
                .all(|i| i.as_str().is_some_and(|s| allowed.contains(&s)))
            {
                Ok(())
            } else {
                Err(unsupported(target, allowed))
            }
        }
        (Shape::EachOneOf(_), _) => Err(wrong_type(target, "an array")),
        (Shape::Object(attributes), Value::Object(fields)) => {
            check_object(target, fields, attributes)
        }
        (Shape::Objects(attributes), Value::Array(items)) => {
            items.iter().enumerate().try_for_each(|(i, item)| {
                let target = format!("{target}[{i}]");
                match item {
                    Value::Object(fields) => check_object(&target, fields, attributes),
                    _ => Err(wrong_type(&target, "an object")),
                }
            })
        }
        (Shape::Objects(_), _) => Err(wrong_type(target, "an array of objects")),
        (Shape::AnyObject, Value::Object(_)) => Ok(()),
        (Shape::Object(_) | Shape::AnyObject, _) => Err(wrong_type(target, "an object")),
        (Shape::NotModelled, _) => Err(invalid(
            target,
            "INVALID_VALUE",
            &format!("{target} is not modelled by the simulator"),
        )),
    }
}

/// Required attributes first, then every attribute against its shape; an attribute the schema
/// does not name is refused.
fn check_object(
    prefix: &str,
    fields: &Map<String, Value>,
    attributes: &[Attribute],
) -> Result<(), Reply> {
    let target = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    if let Some(missing) = attributes
        .iter()
        .find(|a| a.required && !fields.contains_key(a.name))
    {
        let target = target(missing.name);
        return Err(invalid(
            &target,
            "REQUIRED_VALUE",
            &format!("{target} is required"),
        ));
    }
    for (name, value) in fields {
        let Some(attribute) = attributes.iter().find(|a| a.name == name) else {
            let target = target(name);
            return Err(invalid(
                &target,
                "INVALID_VALUE",
                &format!("{target} is not an attribute of this object"),
            ));
        };
        check_value(&target(name), value, attribute.shape)?;
    }
    Ok(())
}

fn enum_field(fields: &Map<String, Value>, field: &str, allowed: &[&str]) -> Result<String, Reply> {
    match fields.get(field) {
        None => Err(invalid(
            field,
            "REQUIRED_VALUE",
            &format!("{field} is required"),
        )),
        Some(Value::String(value)) if allowed.contains(&value.as_str()) => Ok(value.clone()),
        Some(_) => Err(unsupported(field, allowed)),
    }
}

/// Validates an application body and returns the fields to store, with `assignActorRoles`
/// (create only; ignored on replace, as documented).
pub(super) fn application_fields(
    body: &[u8],
    creating: bool,
) -> Result<(Map<String, Value>, Option<bool>), Reply> {
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(p1(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "The request could not be completed. The request body is not a JSON object.",
            vec![],
        ));
    };
    // Read-only attributes a client sends back from a read are ignored, as PingOne does.
    for read_only in ["id", "environment", "createdAt", "updatedAt", "_links"] {
        fields.remove(read_only);
    }
    let assign_actor_roles = match fields.remove("assignActorRoles") {
        Some(Value::Bool(value)) if creating => Some(value),
        Some(Value::Bool(_)) | None => None,
        Some(_) => return Err(wrong_type("assignActorRoles", "a boolean")),
    };
    if fields.contains_key("clientId") || fields.contains_key("clientSecret") {
        return Err(invalid(
            "clientId",
            "INVALID_VALUE",
            "Importing client credentials is not enabled for this environment",
        ));
    }
    let name = fields.get("name").and_then(Value::as_str).unwrap_or("");
    if name.trim().is_empty() {
        return Err(invalid("name", "REQUIRED_VALUE", "name is required"));
    }
    let kind = enum_field(&fields, "type", APP_TYPES)?;
    let protocol = enum_field(&fields, "protocol", PROTOCOLS)?;
    let (own, protocol_requires, kinds) = protocol_rules(&protocol);
    if !kinds.contains(&kind.as_str()) {
        return Err(invalid(
            "type",
            "INVALID_VALUE",
            &format!("{kind} applications cannot use the {protocol} protocol"),
        ));
    }
    if let Some(missing) = protocol_requires
        .iter()
        .find(|f| fields.get(**f).is_none_or(Value::is_null))
    {
        return Err(invalid(
            missing,
            "REQUIRED_VALUE",
            &format!("{missing} is required for {protocol} applications"),
        ));
    }
    for (name, value) in &fields {
        let Some(attribute) = COMMON.iter().chain(own).find(|a| a.name == name) else {
            return Err(invalid(
                name,
                "INVALID_VALUE",
                &format!("{name} is not an attribute of {protocol} applications"),
            ));
        };
        check_value(name, value, attribute.shape)?;
    }
    // PingOne documents `enabled` as defaulting to false.
    fields.entry("enabled").or_insert(Value::Bool(false));
    if protocol == "OPENID_CONNECT" {
        // The simulator asks for at least one grant type: an OIDC application without one can
        // obtain no token.
        if fields
            .get("grantTypes")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            return Err(invalid(
                "grantTypes",
                "REQUIRED_VALUE",
                "grantTypes is required",
            ));
        }
        fields
            .entry("pkceEnforcement")
            .or_insert_with(|| json!("OPTIONAL"));
    }
    Ok((fields, assign_actor_roles))
}
