//! Typed configuration of one connector instance, and [`build`], which turns
//! it into a [`Connector`].
//!
//! The CLI deserializes each `[[connectors]]` table of `sever.toml` into a
//! [`ConnectorConfig`]; everything that can be wrong with it (a missing
//! credential, a setting of another provider, a bad URL, an unreadable key)
//! is reported here, naming the field, before any provider is called, because
//! finding out during an incident is too late.

use std::sync::Arc;

use jsonwebtoken::EncodingKey;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sever_core::{Connector, ConnectorKey, InstanceName, TokenCache};

use crate::http::{Api, Auth, HttpClient};
use crate::token::{Grant, TokenSource};
use crate::{entra, google_workspace, miro, okta, slack_enterprise};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `connectors[<name>].<field>: <problem>`
    #[error("{context}: {problem}")]
    Invalid { context: String, problem: String },
    #[error("could not start the HTTP client: {0}")]
    Http(String),
}

/// One `[[connectors]]` table. Which fields apply depends on `provider`;
/// [`ConnectorConfig::validate`] rejects the fields of another provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    pub provider: ConnectorKey,
    /// Instance name; defaults to the provider key.
    #[serde(default)]
    pub name: Option<InstanceName>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// API base URL; defaults to the vendor's (Okta has none: it is your org URL).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Token endpoint (Okta OAuth, Entra, Google); defaults to the vendor's.
    #[serde(default)]
    pub token_url: Option<String>,

    // okta
    /// Okta API token (`Authorization: SSWS …`).
    #[serde(default)]
    pub api_token: Option<SecretString>,
    /// Okta service app or Entra app registration client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Okta service app private key (PEM), for private_key_jwt.
    #[serde(default)]
    pub private_key: Option<SecretString>,
    /// Okta service app key id (`kid` of the registered public key).
    #[serde(default)]
    pub key_id: Option<String>,
    /// Okta: also revoke the user's OAuth/OIDC tokens (`oauthTokens=true`).
    #[serde(default)]
    pub oauth_tokens: Option<bool>,
    /// Okta: also forget remembered devices and factors (`forgetDevices=true`).
    /// Off by default: it is more than ending sessions (every device of the
    /// person must re-verify factors, which helpdesks then field), and Okta's
    /// own default differs between Classic (false) and Identity Engine (true),
    /// so Sever always sends the value explicitly and keeps the narrow one
    /// unless an operator asks for more.
    #[serde(default)]
    pub forget_devices: Option<bool>,

    // entra
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<SecretString>,

    // google_workspace
    /// The whole service account key JSON.
    #[serde(default)]
    pub service_account_json: Option<SecretString>,
    /// Admin to impersonate through domain-wide delegation.
    #[serde(default)]
    pub admin_subject: Option<String>,

    // slack_enterprise, miro
    /// Slack user token (`xoxp-…`, org-wide install) or Miro access token.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Slack: end only mobile sessions.
    #[serde(default)]
    pub mobile_only: Option<bool>,
    /// Slack: end only web sessions.
    #[serde(default)]
    pub web_only: Option<bool>,

    // miro
    /// Miro organization id; found through `GET /v1/oauth-token` when absent.
    #[serde(default)]
    pub org_id: Option<String>,

    // pacing of bulk runs (every provider; see `pacing`)
    /// Bulk calls in flight at once against this instance (default 16).
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// The starting rate budget: at most this many calls per
    /// `rate_window_secs`, until the provider states its own (Okta, Miro)
    /// or a 429 lowers it.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// The window of `rate_limit`, in seconds (default 60).
    #[serde(default)]
    pub rate_window_secs: Option<f64>,
}

fn yes() -> bool {
    true
}

const OKTA_SCOPES: &str = "okta.users.read okta.users.manage";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Only for listing a group's members in a bulk job (`--group`).
pub(crate) const GOOGLE_GROUP_SCOPES: &str =
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly";
pub(crate) const GOOGLE_SCOPES: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/admin.directory.user.security";

/// The fields of a Google service account key that Sever uses.
#[derive(Deserialize)]
struct ServiceAccountKey {
    client_email: String,
    private_key: String,
    private_key_id: String,
    #[serde(default)]
    token_uri: Option<String>,
}

/// A validated configuration, ready to build.
pub(crate) struct Parsed {
    pub name: InstanceName,
    pub base: String,
    pub kind: Kind,
}

pub(crate) enum Kind {
    Okta {
        auth: OktaAuth,
        oauth_tokens: bool,
        forget_devices: bool,
    },
    Entra {
        token_url: String,
        client_id: String,
        client_secret: SecretString,
    },
    Google {
        token_url: String,
        key: EncodingKey,
        key_id: String,
        client_email: String,
        admin_subject: String,
    },
    Slack {
        token: SecretString,
        mobile_only: bool,
        web_only: bool,
    },
    Miro {
        token: SecretString,
        org_id: Option<String>,
    },
}

pub(crate) enum OktaAuth {
    Ssws(SecretString),
    OAuth {
        token_url: String,
        client_id: String,
        key: EncodingKey,
        key_id: String,
    },
}

impl ConnectorConfig {
    /// The instance name (the provider key unless `name` is set).
    pub fn instance_name(&self) -> Result<InstanceName, ConfigError> {
        match &self.name {
            Some(n) => Ok(n.clone()),
            None => {
                InstanceName::parse(self.provider.as_str()).map_err(|e| self.err("name", e.problem))
            }
        }
    }

    fn label(&self) -> &str {
        self.name
            .as_ref()
            .map_or(self.provider.as_str(), |n| n.as_str())
    }

    /// Check everything that can be checked without calling the provider.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.parse().map(|_| ())
    }

    fn err(&self, field: &str, problem: impl Into<String>) -> ConfigError {
        let name = self.label();
        ConfigError::Invalid {
            context: if field.is_empty() {
                format!("connectors[{name}]")
            } else {
                format!("connectors[{name}].{field}")
            },
            problem: problem.into(),
        }
    }

    fn required<'a, T>(&self, field: &str, v: &'a Option<T>) -> Result<&'a T, ConfigError> {
        v.as_ref()
            .ok_or_else(|| self.err(field, format!("is required for {}", self.provider)))
    }

    fn secret(&self, field: &str, v: &Option<SecretString>) -> Result<SecretString, ConfigError> {
        let s = self.required(field, v)?;
        if s.expose_secret().trim().is_empty() {
            return Err(self.err(field, "is empty"));
        }
        Ok(SecretString::from(s.expose_secret().trim().to_string()))
    }

    fn url(&self, field: &str, v: &str) -> Result<String, ConfigError> {
        let u = reqwest::Url::parse(v)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        let Some(u) = u else {
            return Err(self.err(field, format!("'{v}' is not an http(s) URL")));
        };
        if !u.username().is_empty() || u.password().is_some() {
            return Err(self.err(field, "must not carry a user name or password"));
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err(self.err(field, format!("'{v}' must not have a query or fragment")));
        }
        Ok(v.trim_end_matches('/').to_string())
    }

    pub(crate) fn parse(&self) -> Result<Parsed, ConfigError> {
        use ConnectorKey::*;
        let name = self.instance_name()?;
        // Settings of another provider are almost always a copy-paste slip;
        // silently ignoring them would hide it.
        let owned: [(&str, bool, &[ConnectorKey]); 15] = [
            ("api_token", self.api_token.is_some(), &[Okta]),
            ("client_id", self.client_id.is_some(), &[Okta, Entra]),
            ("private_key", self.private_key.is_some(), &[Okta]),
            ("key_id", self.key_id.is_some(), &[Okta]),
            ("oauth_tokens", self.oauth_tokens.is_some(), &[Okta]),
            ("forget_devices", self.forget_devices.is_some(), &[Okta]),
            ("tenant_id", self.tenant_id.is_some(), &[Entra]),
            ("client_secret", self.client_secret.is_some(), &[Entra]),
            (
                "service_account_json",
                self.service_account_json.is_some(),
                &[GoogleWorkspace],
            ),
            (
                "admin_subject",
                self.admin_subject.is_some(),
                &[GoogleWorkspace],
            ),
            ("token", self.token.is_some(), &[SlackEnterprise, Miro]),
            (
                "mobile_only",
                self.mobile_only.is_some(),
                &[SlackEnterprise],
            ),
            ("web_only", self.web_only.is_some(), &[SlackEnterprise]),
            ("org_id", self.org_id.is_some(), &[Miro]),
            (
                "token_url",
                self.token_url.is_some(),
                &[Okta, Entra, GoogleWorkspace],
            ),
        ];
        for (field, set, providers) in owned {
            if set && !providers.contains(&self.provider) {
                let names: Vec<_> = providers.iter().map(|p| p.as_str()).collect();
                return Err(self.err(
                    field,
                    format!(
                        "is not a {} setting (it belongs to {})",
                        self.provider,
                        names.join(", ")
                    ),
                ));
            }
        }
        let base = |default: &str| match &self.base_url {
            Some(b) => self.url("base_url", b),
            None => Ok(default.to_string()),
        };
        let token_url = |default: String| match &self.token_url {
            Some(t) => self.url("token_url", t),
            None => Ok(default),
        };
        let kind = match self.provider {
            Okta => {
                let base = match &self.base_url {
                    Some(b) => self.url("base_url", b)?,
                    None => {
                        return Err(self.err(
                            "base_url",
                            "is required for okta (your org URL, e.g. https://acme.okta.com)",
                        ))
                    }
                };
                let oauth = (&self.client_id, &self.private_key, &self.key_id);
                let auth =
                    match (&self.api_token, oauth) {
                        (Some(_), (None, None, None)) => {
                            OktaAuth::Ssws(self.secret("api_token", &self.api_token)?)
                        }
                        (None, (Some(client_id), Some(pem), Some(key_id))) => OktaAuth::OAuth {
                            token_url: token_url(format!("{base}/oauth2/v1/token"))?,
                            client_id: client_id.trim().to_string(),
                            key: self.rsa_key("private_key", pem.expose_secret())?,
                            key_id: key_id.trim().to_string(),
                        },
                        (Some(_), _) => return Err(self.err(
                            "",
                            "okta needs api_token, or client_id + private_key + key_id, not both",
                        )),
                        _ => {
                            return Err(self.err(
                                "",
                                "okta needs api_token, or client_id + private_key + key_id",
                            ))
                        }
                    };
                return Ok(Parsed {
                    name,
                    base,
                    kind: Kind::Okta {
                        auth,
                        oauth_tokens: self.oauth_tokens.unwrap_or(false),
                        forget_devices: self.forget_devices.unwrap_or(false),
                    },
                });
            }
            Entra => {
                let tenant = self.required("tenant_id", &self.tenant_id)?.trim();
                if tenant.is_empty() || tenant.contains(['/', '?', '#', ' ']) {
                    return Err(self.err(
                        "tenant_id",
                        format!("'{tenant}' is not a tenant id or domain"),
                    ));
                }
                Kind::Entra {
                    token_url: token_url(format!(
                        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
                    ))?,
                    client_id: self
                        .required("client_id", &self.client_id)?
                        .trim()
                        .to_string(),
                    client_secret: self.secret("client_secret", &self.client_secret)?,
                }
            }
            GoogleWorkspace => {
                let json = self.secret("service_account_json", &self.service_account_json)?;
                let sa: ServiceAccountKey =
                    serde_json::from_str(json.expose_secret()).map_err(|e| {
                        // serde's data errors can quote values; only say where.
                        let what = if e.to_string().starts_with("missing field") {
                            e.to_string()
                        } else {
                            format!(
                                "{:?} error at line {} column {}",
                                e.classify(),
                                e.line(),
                                e.column()
                            )
                        };
                        self.err(
                            "service_account_json",
                            format!("is not a Google service account key ({what})"),
                        )
                    })?;
                let subject = self.required("admin_subject", &self.admin_subject)?.trim();
                if !subject.contains('@') {
                    return Err(self.err(
                        "admin_subject",
                        format!("'{subject}' is not an email (the admin to impersonate)"),
                    ));
                }
                let default_token = sa
                    .token_uri
                    .clone()
                    .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
                Kind::Google {
                    token_url: token_url(default_token)?,
                    key: self.rsa_key("service_account_json", &sa.private_key)?,
                    key_id: sa.private_key_id,
                    client_email: sa.client_email,
                    admin_subject: subject.to_string(),
                }
            }
            SlackEnterprise => {
                let token = self.secret("token", &self.token)?;
                if ["xoxb-", "xapp-"]
                    .iter()
                    .any(|p| token.expose_secret().starts_with(p))
                {
                    return Err(self.err(
                        "token",
                        "admin.* methods need a user token (xoxp-) from an org-wide install, not a bot or app token",
                    ));
                }
                let (mobile_only, web_only) = (
                    self.mobile_only.unwrap_or(false),
                    self.web_only.unwrap_or(false),
                );
                if mobile_only && web_only {
                    return Err(self.err(
                        "",
                        "mobile_only and web_only cannot both be true (leave both false to end every session)",
                    ));
                }
                Kind::Slack {
                    token,
                    mobile_only,
                    web_only,
                }
            }
            Miro => Kind::Miro {
                token: self.secret("token", &self.token)?,
                org_id: self.org_id.clone(),
            },
        };
        let default_base = match self.provider {
            Entra => "https://graph.microsoft.com/v1.0",
            GoogleWorkspace => "https://admin.googleapis.com",
            SlackEnterprise => "https://slack.com/api",
            _ => "https://api.miro.com",
        };
        Ok(Parsed {
            name,
            base: base(default_base)?,
            kind,
        })
    }

    fn rsa_key(&self, field: &str, pem: &str) -> Result<EncodingKey, ConfigError> {
        EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
            self.err(
                field,
                format!("holds no usable RSA private key in PEM form ({e})"),
            )
        })
    }

    /// The configured secrets, to scrub from messages.
    fn secrets(&self) -> Vec<SecretString> {
        [
            &self.api_token,
            &self.private_key,
            &self.client_secret,
            &self.service_account_json,
            &self.token,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }
}

/// Build the connector a configuration describes. `tokens` keeps OAuth tokens
/// between runs; `http` is the process's shared client.
pub fn build(
    cfg: &ConnectorConfig,
    http: &HttpClient,
    tokens: Arc<dyn TokenCache>,
) -> Result<Arc<dyn Connector>, ConfigError> {
    let Parsed { name, base, kind } = cfg.parse()?;
    let secrets = cfg.secrets();
    let header = |scheme: &str, field: &str, s: &SecretString| {
        Auth::scheme(scheme, s).map_err(|p| cfg.err(field, p))
    };
    let oauth = |token_url: String, grant: Grant| {
        Auth::OAuth(Box::new(TokenSource::new(
            &name,
            cfg.provider.as_str(),
            token_url,
            grant,
            tokens.clone(),
        )))
    };
    let pacing = crate::pacing::PacingConfig {
        max_concurrency: cfg
            .max_concurrency
            .unwrap_or(crate::pacing::DEFAULT_MAX_CONCURRENCY)
            .max(1),
        rate_limit: cfg.rate_limit.filter(|n| *n > 0),
        window: std::time::Duration::try_from_secs_f64(cfg.rate_window_secs.unwrap_or(60.0))
            .ok()
            .filter(|w| !w.is_zero())
            .unwrap_or(std::time::Duration::from_secs(60)),
    };
    let api = |name: &'static str, auth: Auth, explain| {
        Api::new(http, cfg.provider, name, auth, explain, secrets.clone()).with_pacing(pacing)
    };
    let connector: Arc<dyn Connector> = match kind {
        Kind::Okta {
            auth,
            oauth_tokens,
            forget_devices,
        } => {
            let auth = match auth {
                OktaAuth::Ssws(t) => header("SSWS", "api_token", &t)?,
                OktaAuth::OAuth {
                    token_url,
                    client_id,
                    key,
                    key_id,
                } => oauth(
                    token_url,
                    Grant::ClientAssertion {
                        key,
                        kid: key_id,
                        client_id,
                        scope: OKTA_SCOPES.into(),
                    },
                ),
            };
            Arc::new(okta::Okta {
                name: name.clone(),
                base,
                api: api("Okta", auth, okta::explain),
                oauth_tokens,
                forget_devices,
            })
        }
        Kind::Entra {
            token_url,
            client_id,
            client_secret,
        } => Arc::new(entra::Entra {
            name: name.clone(),
            base,
            api: api(
                "Entra",
                oauth(
                    token_url,
                    Grant::ClientSecret {
                        client_id,
                        secret: client_secret,
                        scope: GRAPH_SCOPE.into(),
                    },
                ),
                entra::explain,
            ),
        }),
        Kind::Google {
            token_url,
            key,
            key_id,
            client_email,
            admin_subject,
        } => Arc::new(google_workspace::Google {
            name: name.clone(),
            base,
            admin_subject: admin_subject.clone(),
            group_auth: oauth(
                token_url.clone(),
                Grant::JwtBearer {
                    key: key.clone(),
                    kid: key_id.clone(),
                    iss: client_email.clone(),
                    sub: admin_subject.clone(),
                    scope: GOOGLE_GROUP_SCOPES.into(),
                },
            ),
            api: api(
                "Google",
                oauth(
                    token_url,
                    Grant::JwtBearer {
                        key,
                        kid: key_id,
                        iss: client_email,
                        sub: admin_subject,
                        scope: GOOGLE_SCOPES.into(),
                    },
                ),
                google_workspace::explain,
            ),
        }),
        Kind::Slack {
            token,
            mobile_only,
            web_only,
        } => Arc::new(slack_enterprise::Slack {
            name: name.clone(),
            base,
            api: api(
                "Slack",
                header("Bearer", "token", &token)?,
                slack_enterprise::explain,
            ),
            mobile_only,
            web_only,
            batch: Default::default(),
        }),
        Kind::Miro { token, org_id } => Arc::new(miro::Miro {
            name: name.clone(),
            base,
            api: api("Miro", header("Bearer", "token", &token)?, miro::explain),
            org_id: tokio::sync::OnceCell::new_with(org_id),
        }),
    };
    Ok(connector)
}
