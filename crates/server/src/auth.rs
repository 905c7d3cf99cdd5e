//! Who is calling and what they may do: API keys (made, hashed, looked up),
//! scope checks, and password hashing for local users.
//!
//! A key is `sk_` + 32 random bytes in base64url. Only its SHA-256 is kept, so
//! a copy of the database does not let anyone call the API; a fast hash is
//! enough because the key is random, not chosen by a person. Passwords are
//! chosen by people and get Argon2id.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sever_core::admin::{ApiKey, Scope};
use sha2::{Digest, Sha256};

use crate::audit::Actor;
use crate::error::{ApiError, Ctx};
use crate::AppState;

pub const API_KEY_PREFIX: &str = "sk_";
pub const WEBHOOK_SECRET_PREFIX: &str = "sr_";

/// `prefix` + 32 random bytes, base64url without padding.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a whole API key: what the store keeps and looks keys up by.
pub fn key_digest(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// The part of a key shown in listings so people can tell keys apart.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(API_KEY_PREFIX.len() + 8).collect()
}

/// Argon2id (the crate's defaults: 19 MiB, 2 passes) in PHC string form.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
}

/// True when `password` matches the PHC string `phc`; false for a wrong
/// password or an unreadable hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// 403 naming the scope, unless `held` has it. Scopes do not imply one
/// another: a key holds exactly what it was given.
pub fn check_scope(held: &[Scope], needed: Scope) -> Result<(), ApiError> {
    if held.contains(&needed) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "this API key lacks the '{needed}' scope"
        )))
    }
}

/// The live API key `token` names: 401 when unknown or revoked (a revoked
/// key's use is recorded as a refusal by the actor `deny_as` makes). Records
/// the key's use, at most once a minute.
pub(crate) async fn lookup_api_key(
    state: &AppState,
    token: &str,
    deny_as: impl FnOnce(&ApiKey) -> Actor,
) -> Result<ApiKey, ApiError> {
    let key = state
        .db()
        .find_api_key(&key_digest(token))
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown API key"))?;
    if key.revoked_at.is_some() {
        let e = ApiError::unauthorized("this API key was revoked");
        deny_as(&key).deny(state, "authenticate", None, &e).await;
        return Err(e);
    }
    let now = state.clock().now();
    if key.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY) {
        if let Err(e) = state.db().touch_api_key(key.id, now).await {
            tracing::warn!(error = %e, "could not record the API key's last use");
        }
    }
    Ok(key)
}

/// A caller authenticated with an API key.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub key: ApiKey,
    pub ctx: Ctx,
}

impl ApiCaller {
    pub fn actor(&self) -> Actor {
        Actor::api_key(&self.key, &self.ctx)
    }
}

/// How often `last_used_at` is written: on every call would turn reads into writes.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ctx = Ctx::from_request_parts(parts, state).await?;
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("missing API key: send 'Authorization: Bearer sk_…'")
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(API_KEY_PREFIX))
            .ok_or_else(|| {
                ApiError::unauthorized("malformed Authorization header: expected 'Bearer sk_…'")
            })?;
        let key = lookup_api_key(state, token, |k| Actor::api_key(k, &ctx)).await?;
        Ok(ApiCaller { key, ctx })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_base64url_and_stored_as_sha256() {
        let a = random_token(API_KEY_PREFIX);
        let b = random_token(API_KEY_PREFIX);
        assert!(a.starts_with("sk_") && a.len() == 3 + 43, "{a}");
        assert_ne!(a, b);
        assert!(a[3..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(key_digest(&a).len(), 32);
        assert_eq!(key_digest(&a), key_digest(&a.clone()));
        assert_eq!(key_prefix(&a).len(), 11);
    }

    #[test]
    fn a_missing_scope_is_refused_with_a_message_naming_it() {
        let held = [Scope::SessionsRead];
        assert!(check_scope(&held, Scope::SessionsRead).is_ok());
        let e = check_scope(&held, Scope::SessionsRevoke).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
        assert!(e.message.contains("sessions:revoke"), "{e}");
        // admin does not imply the session scopes
        assert!(check_scope(&[Scope::Admin], Scope::SessionsRead).is_err());
        assert!(check_scope(&[], Scope::Admin)
            .unwrap_err()
            .message
            .contains("'admin'"));
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("wrong", &phc));
        assert!(!verify_password("x", "not a hash"));
    }
}
