//! The secret labels a realm's ESV store accepts mappings for: AM's labels with fixed names, and
//! the labels with identifiers that exist once configuration carrying the identifier does.
//!
//! Sources: AIC docs "Secret labels" (am-reference/secret-id-mappings) and "Use ESVs for signing
//! and encryption keys" (tenants/esvs-signing-encryption: "Secret labels with fixed names",
//! "Secret labels with identifiers"); frodo-lib's HAR captures of real tenants, which map
//! `am.services.oauth2.oidc.signing.EDDSA`, `am.services.iot.cert.verification`,
//! `am.authentication.nodes.persistentcookie.encryption` and
//! `am.services.oauth2.stateless.signing.ES512`. A label outside this list and outside the
//! realm's configured identifiers is refused, as AM refuses a `secretId` missing from the
//! mapping schema's enum.

use super::state::{Realm, string_value};
use super::unconfirmed;

/// Labels with fixed names, one mapping per realm each (the documented list, by feature).
pub(super) const FIXED_LABELS: &[&str] = &[
    // OAuth 2.0 and OpenID Connect provider
    "am.services.oauth2.stateless.token.encryption",
    "am.services.oauth2.stateless.signing.ES256",
    "am.services.oauth2.stateless.signing.ES384",
    "am.services.oauth2.stateless.signing.ES512",
    "am.services.oauth2.stateless.signing.HMAC",
    "am.services.oauth2.stateless.signing.RSA",
    "am.services.oauth2.oidc.signing.ES256",
    "am.services.oauth2.oidc.signing.ES384",
    "am.services.oauth2.oidc.signing.ES512",
    "am.services.oauth2.oidc.signing.EDDSA",
    "am.services.oauth2.oidc.signing.RSA",
    "am.services.oauth2.oidc.decryption.RSA1.5",
    "am.services.oauth2.oidc.decryption.RSA.OAEP",
    "am.services.oauth2.oidc.decryption.RSA.OAEP.256",
    "am.services.oauth2.jwt.authenticity.signing",
    "am.services.oauth2.remote.consent.request.encryption",
    "am.services.oauth2.remote.consent.response.decryption",
    "am.services.oauth2.remote.consent.response.signing.RSA",
    // Social identity provider client (relying party)
    "am.services.oauth2.oidc.rp.idtoken.encryption",
    "am.services.oauth2.oidc.rp.jwt.authenticity.signing",
    // Web and Java agents
    "am.applications.agents.remote.consent.request.signing.ES256",
    "am.applications.agents.remote.consent.request.signing.ES384",
    "am.applications.agents.remote.consent.request.signing.ES512",
    "am.applications.agents.remote.consent.request.signing.RSA",
    // Authentication
    "am.authentication.nodes.persistentcookie.encryption",
    "am.authn.authid.signing.HMAC",
    "am.authn.trees.transientstate.encryption",
    "am.default.authentication.modules.persistentcookie.encryption",
    // SAML 2.0
    "am.default.applications.federation.entity.providers.saml2.idp.encryption",
    "am.default.applications.federation.entity.providers.saml2.idp.signing",
    "am.default.applications.federation.entity.providers.saml2.sp.encryption",
    "am.default.applications.federation.entity.providers.saml2.sp.signing",
    "am.services.saml2.metadata.signing.RSA",
    // IoT
    "am.services.iot.jwt.issuer.signing",
    "am.services.iot.cert.verification",
    // UMA
    "am.services.uma.pct.encryption",
];

/// The secret label AM reads a worker's client secret from, built from its Client Secret Label
/// Identifier (AM reference, realm services, "PingOne Worker Service").
pub(super) fn client_secret_label(identifier: &str) -> String {
    ["am.services.pingone.worker", identifier, "clientsecret"].join(".")
}

/// The secret label AM reads a worker's JWT credential from (same source; the field that holds
/// its identifier is [`unconfirmed::CREDENTIAL_FIELD`]).
pub(super) fn credential_label(identifier: &str) -> String {
    ["am.services.pingone.worker", identifier, "credential"].join(".")
}

/// Every label the realm accepts a mapping for now, sorted: the fixed ones and those its
/// workers' label identifiers create.
pub(super) fn valid_labels(realm: &Realm) -> Vec<String> {
    let mut labels: Vec<String> = FIXED_LABELS.iter().map(|s| (*s).to_owned()).collect();
    for worker in realm.workers.values() {
        let secret = string_value(worker.get("clientSecretPurpose"));
        if !secret.is_empty() {
            labels.push(client_secret_label(&secret));
        }
        let credential = string_value(worker.get(unconfirmed::CREDENTIAL_FIELD));
        if !credential.is_empty() {
            labels.push(credential_label(&credential));
        }
    }
    labels.sort();
    labels.dedup();
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_real_tenants_mapped_are_fixed_labels() {
        for captured in [
            "am.services.oauth2.oidc.signing.EDDSA",
            "am.services.iot.cert.verification",
            "am.authentication.nodes.persistentcookie.encryption",
            "am.services.oauth2.stateless.signing.ES512",
        ] {
            assert!(FIXED_LABELS.contains(&captured), "{captured}");
        }
    }

    #[test]
    fn fixed_labels_are_unique_and_named_like_am_labels() {
        let mut sorted = FIXED_LABELS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), FIXED_LABELS.len());
        assert!(FIXED_LABELS.iter().all(|l| l.starts_with("am.")));
    }
}
