//! Where the worker service's PingOne URLs come from: the literal regional URLs, or ESV
//! placeholders whose variables every environment of the promotion group holds with the URLs
//! of its own PingOne environment.
//!
//! Decisions:
//! - The group of an environment is the development environment it is promoted from (directly
//!   or not) and every uat, staging and production environment of the integration promoted
//!   from that one. Only the integration's environments count: it manages no other.
//! - A sandbox is a group of one: nothing is promoted from it, so `Auto` keeps its URLs
//!   literal and writes no URL ESVs there; `Placeholders` asks for them everywhere, sandboxes
//!   included.
//! - What is compared are the effective URLs (region, or `apiUrl`/`authUrl` overrides), not the
//!   region codes: the URLs are what the worker service holds and a promotion carries.
//! - `Literal` for a group whose URLs differ cannot be seen at admission of one object. It is
//!   refused for the whole integration (`RegionMismatch`, naming the environments, their
//!   regions and the fix) before anything is written: a worker service written in development
//!   then would be promoted with the wrong region into the upper environments.
//! - Switching between literal and placeholder URLs rewrites the worker in development and is
//!   carried upwards by the next promotions. URL variables left behind by a switch back to
//!   literal URLs are kept: AM no longer references them, and deleting is the user's call (or
//!   the integration's, with `deletionPolicy: Delete`).

use super::*;
use crate::crd::pingone_integration::RegionalUrls;
use crate::crd::tenant_environment::Region;

/// What the worker service carries as `apiUrl` and `authUrl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WorkerUrls {
    /// The development environment's URLs, as they are.
    Literal,
    /// Placeholders of the URL ESVs, which each environment holds with its own URLs.
    Placeholders,
}

/// One environment of a promotion group and where it reaches PingOne.
#[derive(Clone, Debug)]
pub(super) struct Member {
    pub(super) name: String,
    pub(super) region: Region,
    pub(super) api: String,
    pub(super) auth: String,
}

impl Member {
    fn of(tenant: &TenantEnvironment) -> Result<Self, ReconcileError> {
        let (api, auth) = own_urls(tenant)?;
        Ok(Self {
            name: tenant.name_any(),
            region: tenant.spec.ping_one.region,
            api,
            auth,
        })
    }
}

/// The PingOne API and auth base URLs of a TenantEnvironment as the worker service writes them
/// (no trailing `/`).
pub(super) fn own_urls(tenant: &TenantEnvironment) -> Result<(String, String), ReconcileError> {
    let endpoints = Clients::pingone_endpoints(tenant)?;
    Ok((
        endpoints.api.as_str().trim_end_matches('/').to_owned(),
        endpoints.auth.as_str().trim_end_matches('/').to_owned(),
    ))
}

/// Literal or placeholder URLs for one promotion group, or why `Literal` cannot serve it.
pub(super) fn decide(
    mode: RegionalUrls,
    group: &[Member],
    names: &crate::crd::pingone_integration::EsvNames,
) -> Result<WorkerUrls, ReconcileError> {
    let differ = group
        .iter()
        .any(|m| (&m.api, &m.auth) != (&group[0].api, &group[0].auth));
    match mode {
        RegionalUrls::Placeholders => Ok(WorkerUrls::Placeholders),
        RegionalUrls::Auto if differ => Ok(WorkerUrls::Placeholders),
        RegionalUrls::Auto => Ok(WorkerUrls::Literal),
        RegionalUrls::Literal if !differ => Ok(WorkerUrls::Literal),
        RegionalUrls::Literal => {
            let listed: Vec<String> = group
                .iter()
                .map(|m| format!("{} ({:?}: {} and {})", m.name, m.region, m.api, m.auth))
                .collect();
            Err(ReconcileError::invalid(
                "RegionMismatch",
                format!(
                    "the promotion group reaches PingOne at different URLs: {}; with \
                     service.regionalUrls Literal a promotion would carry {}'s URLs into every \
                     tier. Set service.regionalUrls to Auto or Placeholders: each environment \
                     then holds its own URLs in the ESVs {} and {}",
                    listed.join(", "),
                    group[0].name,
                    names.api_url,
                    names.auth_url
                ),
            ))
        }
    }
}

/// The URLs of each target's group, in the targets' order.
pub(super) fn plan_urls(
    integration: &PingOneIntegration,
    ctx: &Context,
    targets: &[Target<'_>],
) -> Result<Vec<WorkerUrls>, ReconcileError> {
    let group_of = |target: &Target<'_>| {
        (target.tenant.spec.tier != Tier::Sandbox)
            .then(|| group_root(ctx, &target.tenant, targets).name_any())
    };
    let mut decided = Vec::with_capacity(targets.len());
    for target in targets {
        let group = match group_of(target) {
            None => vec![Member::of(&target.tenant)?],
            Some(root) => targets
                .iter()
                .filter(|t| group_of(t).as_ref() == Some(&root))
                .map(|t| Member::of(&t.tenant))
                .collect::<Result<Vec<_>, _>>()?,
        };
        decided.push(decide(
            integration.spec.service.regional_urls,
            &group,
            &integration.spec.esv,
        )?);
    }
    Ok(decided)
}

/// The URL variables an environment holds, `(ESV id, value)`: none with literal URLs.
pub(super) fn url_variables(
    integration: &PingOneIntegration,
    tenant: &TenantEnvironment,
    urls: WorkerUrls,
) -> Result<Vec<(String, String)>, ReconcileError> {
    if urls == WorkerUrls::Literal {
        return Ok(Vec::new());
    }
    let (api, auth) = own_urls(tenant)?;
    let names = &integration.spec.esv;
    Ok(vec![
        (names.api_url.clone(), api),
        (names.auth_url.clone(), auth),
    ])
}

/// The digest `urlsHash` records for the URL variables written; `None` for none.
pub(super) fn urls_digest(variables: &[(String, String)]) -> Option<String> {
    (!variables.is_empty()).then(|| {
        let values: Vec<&str> = variables.iter().map(|(_, v)| v.as_str()).collect();
        digest(&values)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::pingone_integration::EsvNames;

    fn member(name: &str, region: Region) -> Member {
        Member {
            name: name.into(),
            region,
            api: region.api_url(),
            auth: region.auth_url(),
        }
    }

    fn two_regions() -> Vec<Member> {
        vec![
            member("dev", Region::EU),
            member("uat", Region::EU),
            member("staging", Region::NA),
            member("prod", Region::NA),
        ]
    }

    #[test]
    fn auto_uses_placeholders_exactly_when_the_group_spans_regions() {
        let names = EsvNames::default();
        let same = vec![member("dev", Region::EU), member("uat", Region::EU)];
        assert_eq!(
            decide(RegionalUrls::Auto, &same, &names).unwrap(),
            WorkerUrls::Literal
        );
        assert_eq!(
            decide(RegionalUrls::Auto, &two_regions(), &names).unwrap(),
            WorkerUrls::Placeholders
        );
        assert_eq!(
            decide(RegionalUrls::Placeholders, &same, &names).unwrap(),
            WorkerUrls::Placeholders
        );
        assert_eq!(
            decide(RegionalUrls::Literal, &same, &names).unwrap(),
            WorkerUrls::Literal
        );
    }

    #[test]
    fn an_override_counts_as_a_different_url_within_one_region() {
        let names = EsvNames::default();
        let mut custom = member("uat", Region::EU);
        custom.auth = "https://login.example.com".into();
        let group = vec![member("dev", Region::EU), custom];
        assert_eq!(
            decide(RegionalUrls::Auto, &group, &names).unwrap(),
            WorkerUrls::Placeholders
        );
    }

    #[test]
    fn literal_across_regions_is_refused_with_the_environments_and_the_fix() {
        let err = decide(RegionalUrls::Literal, &two_regions(), &EsvNames::default()).unwrap_err();
        assert_eq!(err.reason(), "RegionMismatch");
        let message = err.to_string();
        for part in [
            "dev (EU: https://api.pingone.eu/v1",
            "staging (NA: https://api.pingone.com/v1",
            "Auto or Placeholders",
            "esv-pingone-api-url",
        ] {
            assert!(message.contains(part), "{part:?} not in {message}");
        }
    }

    #[test]
    fn the_urls_hash_follows_the_values_and_is_absent_without_variables() {
        let eu = vec![
            ("esv-a".to_owned(), Region::EU.api_url()),
            ("esv-b".to_owned(), Region::EU.auth_url()),
        ];
        let na = vec![
            ("esv-a".to_owned(), Region::NA.api_url()),
            ("esv-b".to_owned(), Region::NA.auth_url()),
        ];
        assert_eq!(urls_digest(&[]), None);
        assert_ne!(urls_digest(&eu), urls_digest(&na));
        assert!(urls_digest(&eu).is_some_and(|d| !d.contains("pingone")));
    }
}
