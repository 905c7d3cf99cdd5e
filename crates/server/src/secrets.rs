//! Connector credentials are write-only. A connector's configuration arrives
//! as one flat JSON object (the fields of a `[[connectors]]` table); this
//! module splits the secret fields from the rest, merges an update into what
//! is stored (a blank or absent secret keeps the stored one, as the seed's
//! "leave a password field blank to keep the existing value" promises),
//! validates the result as a [`ConnectorConfig`] before anything is saved,
//! and seals the secrets as one JSON object bound to its tenant and name.
//!
//! The associated data used when sealing lives here too, because `sever keys
//! rotate` must use the same strings to re-seal.

use serde_json::{Map, Value};
use sever_connectors::ConnectorConfig;
use sever_core::admin::StoredConnector;
use sever_core::{InstanceName, InvalidInput, Sealed, Sealer, TenantId};

use crate::error::ApiError;

/// The fields of [`ConnectorConfig`] that are credentials.
pub const SECRET_FIELDS: [&str; 5] = [
    "api_token",
    "private_key",
    "client_secret",
    "service_account_json",
    "token",
];

/// Fields that name the instance rather than configure it; stored in their own columns.
const IDENTITY_FIELDS: [&str; 3] = ["name", "provider", "enabled"];

/// An update's list of secrets to delete (e.g. when moving Okta from an API
/// token to OAuth); not a configuration field.
pub const CLEAR_SECRETS: &str = "clear_secrets";

/// Associated data of a connector's sealed secrets.
pub fn connector_aad(tenant: TenantId, name: &InstanceName) -> Vec<u8> {
    format!("connector:{tenant}:{name}").into_bytes()
}

/// Associated data of a tenant's sealed webhook signing secret.
pub fn webhook_secret_aad(tenant: TenantId) -> Vec<u8> {
    format!("webhook-secret:{tenant}").into_bytes()
}

pub fn is_secret(field: &str) -> bool {
    SECRET_FIELDS.contains(&field)
}

fn blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// A secret as stored: a string. The Google key may be pasted as the JSON
/// object it is; it is kept as the text the connector expects.
fn secret_text(field: &str, v: &Value) -> Result<String, InvalidInput> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Object(_) if field == "service_account_json" => Ok(v.to_string()),
        _ => Err(InvalidInput::new(
            secret_field_name(field),
            "must be a string",
        )),
    }
}

fn secret_field_name(field: &str) -> &'static str {
    SECRET_FIELDS
        .iter()
        .find(|f| **f == field)
        .copied()
        .unwrap_or("secret")
}

/// The result of merging an update into a stored connector.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// Non-secret settings (without name, provider, enabled).
    pub settings: Map<String, Value>,
    pub secrets: Map<String, Value>,
    pub enabled: bool,
    /// Names of settings and secrets the update changed (never values).
    pub changed: Vec<String>,
}

/// Merge `update` into the stored `settings` and `secrets`:
/// a non-secret field set to `null` or `""` is removed, any other value
/// replaces; a secret that is absent, `null` or blank keeps the stored value,
/// and one named in `clear_secrets` is removed.
pub fn merge(
    settings: &Map<String, Value>,
    secrets: &Map<String, Value>,
    enabled: bool,
    update: &Map<String, Value>,
) -> Result<Merged, InvalidInput> {
    let mut out = Merged {
        settings: settings.clone(),
        secrets: secrets.clone(),
        enabled,
        changed: Vec::new(),
    };
    for (k, v) in update {
        match k.as_str() {
            "name" | "provider" => {}
            "enabled" => {
                out.enabled = v
                    .as_bool()
                    .ok_or_else(|| InvalidInput::new("enabled", "must be true or false"))?;
            }
            CLEAR_SECRETS => {
                let names = v.as_array().ok_or_else(|| {
                    InvalidInput::new(CLEAR_SECRETS, "must be a list of secret field names")
                })?;
                for n in names {
                    let n = n.as_str().filter(|n| is_secret(n)).ok_or_else(|| {
                        InvalidInput::new(
                            CLEAR_SECRETS,
                            format!(
                                "{n} is not a secret field (one of {})",
                                SECRET_FIELDS.join(", ")
                            ),
                        )
                    })?;
                    if out.secrets.remove(n).is_some() {
                        out.changed.push(n.to_string());
                    }
                }
            }
            f if is_secret(f) => {
                if blank(v) {
                    continue;
                }
                let text = secret_text(f, v)?;
                out.secrets.insert(f.to_string(), Value::String(text));
                out.changed.push(f.to_string());
            }
            f => {
                if blank(v) {
                    if out.settings.remove(f).is_some() {
                        out.changed.push(f.to_string());
                    }
                } else if out.settings.get(f) != Some(v) {
                    out.settings.insert(f.to_string(), v.clone());
                    out.changed.push(f.to_string());
                }
            }
        }
    }
    out.changed.sort();
    out.changed.dedup();
    Ok(out)
}

/// The whole configuration the connectors crate reads: identity, settings
/// and secrets in one object.
pub fn full_config(
    provider: &str,
    name: &InstanceName,
    enabled: bool,
    settings: &Map<String, Value>,
    secrets: &Map<String, Value>,
) -> Map<String, Value> {
    let mut m = settings.clone();
    m.retain(|k, _| !IDENTITY_FIELDS.contains(&k.as_str()));
    m.extend(secrets.clone());
    m.insert("provider".into(), Value::String(provider.into()));
    m.insert("name".into(), Value::String(name.as_str().into()));
    m.insert("enabled".into(), Value::Bool(enabled));
    m
}

/// Turn a full configuration into a [`ConnectorConfig`] and check it, with
/// errors that name the field. Messages never quote a secret value.
pub fn parse_config(config: &Map<String, Value>) -> Result<ConnectorConfig, ApiError> {
    let value = Value::Object(config.clone());
    let cfg: ConnectorConfig = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // "unknown field `x`, expected one of ..." names the field itself.
        let field = if let Some(rest) = inner.strip_prefix("unknown field `") {
            rest.split('`').next().unwrap_or("body").to_string()
        } else if path == "." || path.is_empty() {
            inner
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
                .unwrap_or("body")
                .to_string()
        } else {
            path
        };
        let problem = if is_secret(&field) {
            "must be a string".to_string()
        } else {
            inner
        };
        ApiError::invalid(&field, problem)
    })?;
    cfg.validate().map_err(config_error)?;
    Ok(cfg)
}

/// `connectors[okta].api_token: is required` → 422 `api_token: is required`.
pub fn config_error(e: sever_connectors::ConfigError) -> ApiError {
    match e {
        sever_connectors::ConfigError::Invalid { context, problem } => {
            let field = context
                .split_once("].")
                .map(|(_, f)| f.to_string())
                .unwrap_or_else(|| "configuration".into());
            ApiError::invalid(&field, problem)
        }
        other => ApiError::internal(other),
    }
}

/// Seal `secrets` (or nothing, when there are none).
pub fn seal_secrets(
    sealer: &dyn Sealer,
    tenant: TenantId,
    name: &InstanceName,
    secrets: &Map<String, Value>,
) -> Option<Sealed> {
    if secrets.is_empty() {
        return None;
    }
    Some(sealer.seal(
        Value::Object(secrets.clone()).to_string().as_bytes(),
        &connector_aad(tenant, name),
    ))
}

/// The stored secrets of a connector, opened.
pub fn open_secrets(
    sealer: &dyn Sealer,
    c: &StoredConnector,
) -> Result<Map<String, Value>, String> {
    let Some(sealed) = &c.secrets else {
        return Ok(Map::new());
    };
    let plain = sealer
        .open(sealed, &connector_aad(c.tenant_id, &c.name))
        .map_err(|e| e.to_string())?;
    match serde_json::from_slice(&plain) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err("the stored secrets are not a JSON object".into()),
    }
}

/// The stored non-secret settings as an object.
pub fn settings_of(c: &StoredConnector) -> Map<String, Value> {
    c.settings.as_object().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_blank_or_absent_secret_keeps_the_stored_value() {
        let settings = obj(json!({"base_url": "https://a.okta.com"}));
        let secrets = obj(json!({"api_token": "stored"}));
        for update in [
            json!({}),
            json!({"api_token": ""}),
            json!({"api_token": null}),
            json!({"api_token": "   "}),
        ] {
            let m = merge(&settings, &secrets, true, &obj(update.clone())).unwrap();
            assert_eq!(m.secrets["api_token"], "stored", "{update}");
            assert!(m.changed.is_empty(), "{update}");
        }
    }

    #[test]
    fn a_new_secret_replaces_and_clear_secrets_removes() {
        let secrets = obj(json!({"api_token": "old"}));
        let m = merge(
            &Map::new(),
            &secrets,
            true,
            &obj(json!({"api_token": "new"})),
        )
        .unwrap();
        assert_eq!(m.secrets["api_token"], "new");
        assert_eq!(m.changed, vec!["api_token"]);
        let m = merge(
            &Map::new(),
            &secrets,
            true,
            &obj(json!({"clear_secrets": ["api_token"], "client_id": "c"})),
        )
        .unwrap();
        assert!(m.secrets.is_empty());
        assert_eq!(m.settings["client_id"], "c");
        let e = merge(
            &Map::new(),
            &secrets,
            true,
            &obj(json!({"clear_secrets": ["base_url"]})),
        )
        .unwrap_err();
        assert_eq!(e.field, "clear_secrets");
    }

    #[test]
    fn settings_are_replaced_or_removed_and_secrets_are_split_from_them() {
        let settings = obj(json!({"base_url": "https://a", "oauth_tokens": true, "org_id": "1"}));
        let m = merge(
            &settings,
            &Map::new(),
            true,
            &obj(json!({"base_url": "https://b", "oauth_tokens": null, "org_id": "", "enabled": false, "token": "t"})),
        )
        .unwrap();
        assert_eq!(
            Value::Object(m.settings.clone()),
            json!({"base_url": "https://b"})
        );
        assert_eq!(Value::Object(m.secrets.clone()), json!({"token": "t"}));
        assert!(!m.enabled);
        assert_eq!(
            m.changed,
            vec!["base_url", "oauth_tokens", "org_id", "token"]
        );
    }

    #[test]
    fn a_service_account_key_pasted_as_an_object_is_kept_as_text() {
        let m = merge(
            &Map::new(),
            &Map::new(),
            true,
            &obj(json!({"service_account_json": {"client_email": "x"}})),
        )
        .unwrap();
        assert_eq!(m.secrets["service_account_json"], r#"{"client_email":"x"}"#);
        let e = merge(&Map::new(), &Map::new(), true, &obj(json!({"token": 5}))).unwrap_err();
        assert_eq!(e.field, "token");
    }

    #[test]
    fn validation_names_the_field_and_never_quotes_a_secret() {
        let name = InstanceName::parse("okta").unwrap();
        let cfg = full_config(
            "okta",
            &name,
            true,
            &obj(json!({"base_url": "https://a.okta.com"})),
            &Map::new(),
        );
        let e = parse_config(&cfg).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert!(
            e.message.starts_with("api_token:") || e.message.contains("api_token"),
            "{e}"
        );

        let cfg = full_config(
            "okta",
            &name,
            true,
            &obj(json!({"base_url": "https://a.okta.com", "bogus": 1})),
            &obj(json!({"api_token": "canary-secret"})),
        );
        let e = parse_config(&cfg).unwrap_err();
        assert!(e.message.starts_with("bogus:"), "{e}");
        assert!(!e.message.contains("canary-secret"), "{e}");

        let cfg = full_config(
            "okta",
            &name,
            true,
            &obj(json!({"base_url": "ftp://x"})),
            &obj(json!({"api_token": "canary-secret"})),
        );
        let e = parse_config(&cfg).unwrap_err();
        assert!(e.message.starts_with("base_url:"), "{e}");

        let cfg = full_config(
            "okta",
            &name,
            true,
            &obj(json!({"oauth_tokens": "yes"})),
            &obj(json!({"api_token": "canary-secret"})),
        );
        let e = parse_config(&cfg).unwrap_err();
        assert!(e.message.starts_with("oauth_tokens:"), "{e}");

        let cfg = full_config(
            "okta",
            &name,
            true,
            &obj(json!({"base_url": "https://a.okta.com"})),
            &obj(json!({"api_token": "canary-secret"})),
        );
        assert!(parse_config(&cfg).is_ok());
    }

    #[test]
    fn the_secret_field_list_covers_every_credential_the_connectors_accept() {
        // serde's "unknown field" error lists every field ConnectorConfig has;
        // a new credential field there must be added to SECRET_FIELDS or it
        // would be stored in the clear.
        let e = serde_json::from_value::<ConnectorConfig>(json!({"provider": "okta", "zzz": 1}))
            .unwrap_err()
            .to_string();
        let expected: Vec<&str> = e
            .split("expected one of ")
            .nth(1)
            .unwrap()
            .split(", ")
            .map(|f| f.trim_matches(|c: char| c == '`' || c.is_whitespace()))
            .map(|f| f.split('`').next().unwrap())
            .collect();
        let known_settings = crate::api::connectors::SETTING_FIELDS;
        for f in &expected {
            assert!(
                is_secret(f) || known_settings.contains(f) || IDENTITY_FIELDS.contains(f),
                "ConnectorConfig field {f} is neither a known setting nor a secret"
            );
        }
        for f in SECRET_FIELDS.iter().chain(known_settings) {
            assert!(expected.contains(f), "{f} is not a ConnectorConfig field");
        }
    }
}
