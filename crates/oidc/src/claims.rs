//! From the claims of a verified token to a [`Principal`]: subject, role, datasets.
//!
//! A claim is looked up first under its whole configured name (so namespaced claims such as
//! `https://bqai.example/role`, which contain dots, work), then as a dotted path into nested
//! objects (`realm_access.role`). Messages name the claim, never its value.

use bqai_core::model::{DatasetScope, Principal, Role};
use bqai_core::{Error, Result};
use serde_json::{Map, Value};

use crate::config::OidcConfig;

/// The longest `sub` accepted (OIDC Core says 255 ASCII characters).
const MAX_SUBJECT_CHARS: usize = 255;

/// How claims become a principal (the parts of [`OidcConfig`] that matter here).
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    issuer: String,
    role_claim: String,
    datasets_claim: String,
    default_role: Option<Role>,
    rate_limit_per_minute: Option<u32>,
    daily_byte_quota: Option<u64>,
}

impl ClaimRules {
    pub(crate) fn new(config: &OidcConfig) -> Self {
        Self {
            issuer: config.issuer.clone(),
            role_claim: config.role_claim.trim().to_string(),
            datasets_claim: config.datasets_claim.trim().to_string(),
            default_role: config.default_role,
            rate_limit_per_minute: config.rate_limit_per_minute,
            daily_byte_quota: config.daily_byte_quota,
        }
    }

    /// The principal of a token whose signature, `exp`, `nbf` and `aud` were checked.
    pub(crate) fn principal(&self, claims: &Map<String, Value>) -> Result<Principal> {
        // jsonwebtoken accepts an `iss` array containing the issuer; the spec says a string.
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(_) => return Err(unauthenticated("wrong issuer")),
            None => return Err(unauthenticated("token has no valid `iss` claim")),
        }
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if valid_subject(s) => s,
            Some(_) => return Err(unauthenticated("token subject (`sub`) is malformed")),
            None => return Err(unauthenticated("token has no valid `sub` claim")),
        };
        Ok(Principal {
            id: Some(format!("oidc:{sub}")),
            role: self.role(claims)?,
            datasets: self.datasets(claims)?,
            rate_limit_per_minute: self.rate_limit_per_minute,
            daily_byte_quota: self.daily_byte_quota,
        })
    }

    fn role(&self, claims: &Map<String, Value>) -> Result<Role> {
        let name = &self.role_claim;
        let found = match claim(claims, name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Role::parse(s).ok_or_else(|| {
                unauthenticated(&format!(
                    "claim `{name}` holds an unknown role (expected admin, analyst or viewer)"
                ))
            })?),
            // An array of the issuer's roles: ours are picked out, the most privileged wins.
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(Role::parse)
                .min_by_key(|r| privilege_rank(*r)),
            Some(_) => {
                return Err(unauthenticated(&format!(
                    "claim `{name}` must be a string or an array of strings"
                )));
            }
        };
        found.or(self.default_role).ok_or_else(|| {
            unauthenticated(&format!(
                "token has no role: claim `{name}` is missing (expected admin, analyst or viewer)"
            ))
        })
    }

    fn datasets(&self, claims: &Map<String, Value>) -> Result<DatasetScope> {
        let name = &self.datasets_claim;
        match claim(claims, name) {
            None | Some(Value::Null) => Ok(DatasetScope::Only(Default::default())),
            Some(Value::String(s)) => Ok(DatasetScope::from_list(
                s.split(|c: char| c == ',' || c.is_whitespace()),
            )),
            Some(Value::Array(items)) => {
                let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                names.map(DatasetScope::from_list).ok_or_else(|| {
                    unauthenticated(&format!("claim `{name}` must hold only strings"))
                })
            }
            Some(_) => Err(unauthenticated(&format!(
                "claim `{name}` must be a string or an array of strings"
            ))),
        }
    }
}

/// 0 is the most privileged.
fn privilege_rank(role: Role) -> u8 {
    match role {
        Role::Admin => 0,
        Role::Analyst => 1,
        Role::Viewer => 2,
    }
}

fn valid_subject(sub: &str) -> bool {
    !sub.is_empty()
        && sub.chars().count() <= MAX_SUBJECT_CHARS
        && !sub.chars().any(char::is_control)
}

/// The claim named `name`, or else the value at the dotted path `name`.
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    if !name.contains('.') {
        return None;
    }
    let mut parts = name.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

fn unauthenticated(msg: &str) -> Error {
    Error::Unauthenticated(msg.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules() -> ClaimRules {
        ClaimRules::new(&OidcConfig::new("https://idp.example.com", "bqai"))
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({"iss": "https://idp.example.com", "sub": "alice"});
        if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
            b.extend(e);
        }
        base.as_object().cloned().unwrap()
    }

    fn message(r: Result<Principal>) -> String {
        match r {
            Err(Error::Unauthenticated(m)) => m,
            other => panic!("expected Unauthenticated, got {other:?}"),
        }
    }

    #[test]
    fn roles_from_a_string_an_array_or_a_nested_path() {
        let p = rules()
            .principal(&claims(json!({"bqai_role": "Analyst"})))
            .unwrap();
        assert_eq!(p.role, Role::Analyst);
        assert_eq!(p.id.as_deref(), Some("oidc:alice"));

        let p = rules()
            .principal(&claims(
                json!({"bqai_role": ["offline_access", "viewer", "admin"]}),
            ))
            .unwrap();
        assert_eq!(p.role, Role::Admin);

        let mut r = rules();
        r.role_claim = "realm_access.role".into();
        let p = r
            .principal(&claims(json!({"realm_access": {"role": "viewer"}})))
            .unwrap();
        assert_eq!(p.role, Role::Viewer);

        r.role_claim = "https://bqai.example/role".into();
        let p = r
            .principal(&claims(json!({"https://bqai.example/role": "admin"})))
            .unwrap();
        assert_eq!(p.role, Role::Admin);
    }

    #[test]
    fn bad_roles_are_refused_without_echoing_the_value() {
        let m = message(rules().principal(&claims(json!({"bqai_role": "superuser"}))));
        assert!(m.contains("unknown role"), "{m}");
        assert!(!m.contains("superuser"), "{m}");
        let m = message(rules().principal(&claims(json!({"bqai_role": 7}))));
        assert!(m.contains("must be a string"), "{m}");
        let m = message(rules().principal(&claims(json!({"bqai_role": ["owner"]}))));
        assert!(m.contains("no role"), "{m}");
    }

    #[test]
    fn datasets_from_an_array_or_a_separated_string() {
        let p = rules()
            .principal(&claims(
                json!({"bqai_role": "viewer", "bqai_datasets": ["Shop", "finance"]}),
            ))
            .unwrap();
        assert_eq!(p.datasets, DatasetScope::from_list(["shop", "finance"]));
        let p = rules()
            .principal(&claims(
                json!({"bqai_role": "viewer", "bqai_datasets": "shop, finance  hr"}),
            ))
            .unwrap();
        assert_eq!(
            p.datasets,
            DatasetScope::from_list(["shop", "finance", "hr"])
        );
        let p = rules()
            .principal(&claims(json!({"bqai_role": "viewer"})))
            .unwrap();
        assert_eq!(p.datasets, DatasetScope::Only(Default::default()));
        let m = message(rules().principal(&claims(
            json!({"bqai_role": "viewer", "bqai_datasets": ["shop", 1]}),
        )));
        assert!(m.contains("only strings"), "{m}");
    }

    #[test]
    fn issuer_must_be_the_exact_string_and_subject_is_required() {
        let r = rules();
        let mut c = claims(json!({"bqai_role": "viewer"}));
        c.insert("iss".into(), json!(["https://idp.example.com"]));
        assert_eq!(message(r.principal(&c)), "wrong issuer");
        let mut c = claims(json!({"bqai_role": "viewer"}));
        c.remove("sub");
        assert!(message(r.principal(&c)).contains("`sub`"));
        c.insert("sub".into(), json!("a\nb"));
        assert!(message(r.principal(&c)).contains("malformed"));
        c.insert("sub".into(), json!("x".repeat(256)));
        assert!(message(r.principal(&c)).contains("malformed"));
    }
}
