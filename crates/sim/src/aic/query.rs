//! Query parameters checked against their types in AIC's OpenAPI spec, as AIC checks them before
//! the handler runs: a value of the wrong type or out of range is a 400 naming the parameter.

use std::collections::HashMap;

/// The schema of one query parameter, as far as the spec constrains the operator's calls.
#[derive(Clone, Copy)]
pub(super) enum Param {
    /// `allow_empty`: the spec's `allowEmptyValue`, which makes `?name=` valid.
    Boolean {
        allow_empty: bool,
    },
    Integer {
        min: i64,
        max: Option<i64>,
    },
}

/// `_pageSize`, `_pagedResultsOffset` and `_onlyPending` of the ESV listings.
pub(super) const ESV_LISTING: [(&str, Param); 3] = [
    (
        "_pageSize",
        Param::Integer {
            min: 1,
            max: Some(100),
        },
    ),
    ("_pagedResultsOffset", Param::Integer { min: 0, max: None }),
    ("_onlyPending", Param::Boolean { allow_empty: false }),
];

/// The first parameter whose value its schema refuses, with the message AIC's request validator
/// gives (the `parameter … in query has an error:` form of the body errors, reference §"What the
/// captures corrected", 2). Parameters not listed are left to the handler. An empty value is
/// refused unless the spec allows it (the validator's "empty value is not allowed").
pub(super) fn check(
    query: &HashMap<String, String>,
    params: &[(&str, Param)],
) -> Result<(), String> {
    for (name, param) in params {
        let Some(value) = query.get(*name) else {
            continue;
        };
        let problem = match param {
            Param::Boolean { allow_empty: true } if value.is_empty() => None,
            _ if value.is_empty() => Some("empty value is not allowed".to_owned()),
            Param::Boolean { .. } => match value.as_str() {
                "true" | "false" => None,
                _ => Some(format!("value {value}: an invalid boolean: invalid syntax")),
            },
            Param::Integer { min, max } => match value.parse::<i64>() {
                Err(_) => Some(format!("value {value}: an invalid integer: invalid syntax")),
                Ok(n) if n < *min => Some(format!("number must be at least {min}")),
                Ok(n) if max.is_some_and(|max| n > max) => Some(format!(
                    "number must be at most {}",
                    max.unwrap_or_default()
                )),
                Ok(_) => None,
            },
        };
        if let Some(problem) = problem {
            return Err(format!(
                "parameter \"{name}\" in query has an error: {problem}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn values_of_the_wrong_type_or_out_of_range_name_the_parameter() {
        let refused = |pairs: &[(&str, &str)]| check(&query(pairs), &ESV_LISTING).unwrap_err();
        assert_eq!(
            refused(&[("_onlyPending", "null")]),
            "parameter \"_onlyPending\" in query has an error: value null: an invalid boolean: invalid syntax"
        );
        assert!(refused(&[("_pagedResultsOffset", "-1")]).ends_with("number must be at least 0"));
        assert!(refused(&[("_pageSize", "101")]).ends_with("number must be at most 100"));
        assert!(refused(&[("_pageSize", "1.5")]).contains("an invalid integer"));
        assert!(refused(&[("_onlyPending", "")]).ends_with("empty value is not allowed"));
    }

    #[test]
    fn values_the_spec_allows_and_parameters_it_does_not_constrain_pass() {
        let allowed = query(&[
            ("_onlyPending", "true"),
            ("_pageSize", "100"),
            ("_pagedResultsOffset", "0"),
            ("_pagedResultsCookie", "anything"),
        ]);
        assert_eq!(check(&allowed, &ESV_LISTING), Ok(()));
        let empty = query(&[("localLockOnly", "")]);
        let lock_state = [("localLockOnly", Param::Boolean { allow_empty: true })];
        assert_eq!(check(&empty, &lock_state), Ok(()));
    }
}
