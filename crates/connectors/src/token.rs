//! OAuth access tokens for the providers that need one (Entra client
//! credentials, Google service-account JWT bearer with domain-wide
//! delegation, Okta service-app private_key_jwt).
//!
//! Tokens live an hour; fetching one per revocation would add a round trip
//! and a failure point to every incident and burn the token endpoint's rate
//! budget. So a token is kept in memory, shared through the [`TokenCache`]
//! port (sealed in the store, in practice) across runs and replicas, fetched
//! by one caller at a time (single flight), refreshed a minute before it
//! expires, and dropped when the API answers 401.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration as ChronoDuration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sever_core::{AccessToken, CallContext, ErrorClass, Failure, InstanceName, Step, TokenCache};
use tokio::sync::Mutex;

use crate::http::Api;

/// Refresh a token when it has less than this left.
const REFRESH_MARGIN_SECS: i64 = 60;

/// How a token is obtained.
pub(crate) enum Grant {
    /// Entra: client credentials with a client secret.
    ClientSecret {
        client_id: String,
        secret: SecretString,
        scope: String,
    },
    /// Google: a JWT signed by the service account, impersonating `sub`.
    JwtBearer {
        key: EncodingKey,
        kid: String,
        iss: String,
        sub: String,
        scope: String,
    },
    /// Okta: client credentials authenticated by a private_key_jwt assertion.
    ClientAssertion {
        key: EncodingKey,
        kid: String,
        client_id: String,
        scope: String,
    },
}

#[derive(Default)]
struct Held {
    token: Option<AccessToken>,
    /// Fingerprint of a token the API rejected, so a stale copy in the shared
    /// cache is not picked up again (the port has no delete).
    rejected: Option<u64>,
    /// The `scope` the token endpoint granted, when it says.
    granted_scope: Option<String>,
}

pub(crate) struct TokenSource {
    token_url: String,
    cache_key: String,
    cache: Arc<dyn TokenCache>,
    grant: Grant,
    held: Mutex<Held>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
}

impl TokenSource {
    pub fn new(
        instance: &InstanceName,
        api_provider: &str,
        token_url: String,
        grant: Grant,
        cache: Arc<dyn TokenCache>,
    ) -> Self {
        // Only non-secret identity goes into the key: who asks, for what, where.
        let identity = match &grant {
            Grant::ClientSecret {
                client_id, scope, ..
            } => format!("{client_id}|{scope}"),
            Grant::JwtBearer {
                iss, sub, scope, ..
            } => format!("{iss}|{sub}|{scope}"),
            Grant::ClientAssertion {
                client_id,
                kid,
                scope,
                ..
            } => format!("{client_id}|{kid}|{scope}"),
        };
        let cache_key = format!(
            "{instance}:{api_provider}:{:016x}",
            fnv1a(format!("{token_url}|{identity}").as_bytes())
        );
        Self {
            token_url,
            cache_key,
            cache,
            grant,
            held: Mutex::new(Held::default()),
        }
    }

    /// A usable token, and whether it was fetched just now.
    pub async fn get(&self, cx: &CallContext, api: &Api) -> Result<(SecretString, bool), Failure> {
        // Held across the fetch: concurrent callers wait and then reuse it.
        let mut held = self.held.lock().await;
        let usable =
            |t: &AccessToken| (t.expires_at - Utc::now()).num_seconds() > REFRESH_MARGIN_SECS;
        if let Some(t) = held.token.as_ref().filter(|t| usable(t)) {
            return Ok((t.value.clone(), false));
        }
        if let Some(t) = self.cache.get(&self.cache_key).await {
            if usable(&t) && held.rejected != Some(fingerprint(&t.value)) {
                let value = t.value.clone();
                held.token = Some(t);
                return Ok((value, false));
            }
        }
        let (token, scope) = self.fetch(cx, api).await?;
        self.cache.put(&self.cache_key, &token).await;
        let value = token.value.clone();
        held.token = Some(token);
        held.granted_scope = scope;
        Ok((value, true))
    }

    /// Drop `stale` (the API answered 401 with it).
    pub async fn forget(&self, stale: &SecretString) {
        let mut held = self.held.lock().await;
        let fp = fingerprint(stale);
        if held
            .token
            .as_ref()
            .is_some_and(|t| fingerprint(&t.value) == fp)
        {
            held.token = None;
        }
        held.rejected = Some(fp);
    }

    pub async fn granted_scope(&self) -> Option<String> {
        self.held.lock().await.granted_scope.clone()
    }

    async fn fetch(
        &self,
        cx: &CallContext,
        api: &Api,
    ) -> Result<(AccessToken, Option<String>), Failure> {
        let form: Vec<(&str, String)> = match &self.grant {
            Grant::ClientSecret {
                client_id,
                secret,
                scope,
            } => vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", client_id.clone()),
                ("client_secret", secret.expose_secret().to_string()),
                ("scope", scope.clone()),
            ],
            Grant::JwtBearer {
                key,
                kid,
                iss,
                sub,
                scope,
            } => {
                let iat = Utc::now().timestamp();
                let claims = serde_json::json!({
                    "iss": iss, "sub": sub, "scope": scope, "aud": self.token_url,
                    "iat": iat, "exp": iat + 3600,
                });
                vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                    ),
                    ("assertion", sign(key, kid, &claims, api)?),
                ]
            }
            Grant::ClientAssertion {
                key,
                kid,
                client_id,
                scope,
            } => {
                let iat = Utc::now().timestamp();
                let claims = serde_json::json!({
                    "iss": client_id, "sub": client_id, "aud": self.token_url,
                    "iat": iat, "exp": iat + 300, "jti": uuid::Uuid::new_v4().to_string(),
                });
                vec![
                    ("grant_type", "client_credentials".into()),
                    ("scope", scope.clone()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                    ),
                    ("client_assertion", sign(key, kid, &claims, api)?),
                ]
            }
        };
        let resp = api
            .send(cx, Step::Token, &[], || {
                api.http.post(&self.token_url).form(&form)
            })
            .await?;
        let answer: TokenAnswer = api.json(&resp)?;
        let lifetime = match &answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(3600);
        Ok((
            AccessToken {
                value: SecretString::from(answer.access_token),
                expires_at: Utc::now() + ChronoDuration::seconds(lifetime),
            },
            answer.scope,
        ))
    }
}

fn sign(
    key: &EncodingKey,
    kid: &str,
    claims: &serde_json::Value,
    api: &Api,
) -> Result<String, Failure> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, key).map_err(|e| {
        Failure::new(
            ErrorClass::BadConfig,
            format!("could not sign the {} token request: {e}", api.name),
        )
    })
}

/// Read the payload of a JWT without verifying it (only to tell the operator
/// which permissions a token carries; the provider does the verifying).
pub(crate) fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn fingerprint(s: &SecretString) -> u64 {
    fnv1a(s.expose_secret().as_bytes())
}

/// FNV-1a: stable across builds and platforms, unlike `DefaultHasher`, so
/// cache keys survive upgrades.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A process-local [`TokenCache`], for one-shot CLI runs and tests.
#[derive(Default)]
pub struct MemoryTokenCache {
    tokens: std::sync::Mutex<HashMap<String, AccessToken>>,
}

impl MemoryTokenCache {
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(test)]
    pub(crate) fn keys(&self) -> Vec<String> {
        self.tokens
            .lock()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl TokenCache for MemoryTokenCache {
    async fn get(&self, key: &str) -> Option<AccessToken> {
        self.tokens.lock().ok()?.get(key).cloned()
    }

    async fn put(&self, key: &str, token: &AccessToken) {
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(key.to_string(), token.clone());
        }
    }
}
