//! `Idempotency-Key`: a SOAR that retries after a timeout must not revoke
//! twice or create two keys. The first successful answer to a key is stored
//! (per tenant); a retry with the same key and the same request gets that
//! answer again, and the same key with a different request is a conflict.
//!
//! "The same request" is the method, the path and the raw body, so one key
//! cannot be replayed against another endpoint. Only successes are stored: a
//! refusal (switch off, bad input) is not a result worth replaying, and the
//! caller may fix the cause and retry with the same key. Concurrent requests
//! with one key in this process are serialised by a per-key lock, so the
//! second sees the first's answer; across replicas, the store's insert keeps
//! the first answer.
//!
//! Answers that carry a secret shown once (a new API key, a webhook signing
//! secret) are sealed before they are stored, so the idempotency table never
//! holds a secret in the clear.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use sever_core::admin::IdempotentResponse;
use sever_core::{Sealed, TenantId};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

/// SHA-256 of what makes two requests "the same".
pub fn request_digest(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    h.finalize().to_vec()
}

/// What to do with a request that carries a key we may have seen.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Never seen: run it.
    Fresh,
    /// Seen with the same request: answer with the stored status and body.
    Replay { status: u16, body: Value },
    /// Seen with another request.
    Conflict,
}

/// The pure rule: compare a stored answer (if any) with this request's digest.
pub fn decide(stored: Option<&IdempotentResponse>, digest: &[u8]) -> Decision {
    match stored {
        None => Decision::Fresh,
        Some(r) if r.body_digest == digest => Decision::Replay {
            status: r.status,
            body: r.response.clone(),
        },
        Some(_) => Decision::Conflict,
    }
}

pub fn conflict() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "idempotency_conflict",
        "this Idempotency-Key was already used with a different request; use a new key",
    )
}

type KeyLock = Arc<tokio::sync::Mutex<()>>;

/// Per-key locks of this process.
#[derive(Default)]
pub struct Locks {
    map: Mutex<HashMap<(TenantId, String), KeyLock>>,
}

/// An idempotent request in progress: holds the key's lock until the answer
/// is stored (or the request fails).
pub struct Pending {
    tenant: TenantId,
    key: String,
    digest: Vec<u8>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

fn aad(tenant: TenantId, key: &str) -> Vec<u8> {
    format!("idempotency:{tenant}:{key}").into_bytes()
}

fn seal(state: &AppState, tenant: TenantId, key: &str, body: &Value) -> Value {
    let sealed = state
        .sealer()
        .seal(body.to_string().as_bytes(), &aad(tenant, key));
    json!({"sealed": {"key_id": sealed.key_id, "blob": STANDARD.encode(sealed.blob)}})
}

fn unseal(state: &AppState, tenant: TenantId, key: &str, stored: Value) -> Result<Value, ApiError> {
    let Some(s) = stored
        .get("sealed")
        .filter(|_| stored.as_object().is_some_and(|o| o.len() == 1))
    else {
        return Ok(stored);
    };
    let key_id = s["key_id"].as_str().unwrap_or_default().to_string();
    let blob = STANDARD
        .decode(s["blob"].as_str().unwrap_or_default())
        .map_err(ApiError::internal)?;
    let plain = state
        .sealer()
        .open(&Sealed { key_id, blob }, &aad(tenant, key))
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "idempotency_conflict",
                "the first answer to this Idempotency-Key can no longer be read (the master key was rotated); use a new key",
            )
        })?;
    serde_json::from_slice(&plain).map_err(ApiError::internal)
}

/// The start of an idempotent request: `Ok(None)` when there is no key.
pub enum Begin {
    NoKey,
    Fresh(Pending),
    Replay { status: u16, body: Value },
}

pub async fn begin(
    state: &AppState,
    tenant: TenantId,
    key: Option<&str>,
    digest: Vec<u8>,
) -> Result<Begin, ApiError> {
    let Some(key) = key else {
        return Ok(Begin::NoKey);
    };
    let lock = {
        let mut map = state
            .idempotency_locks()
            .map
            .lock()
            .map_err(|_| ApiError::internal("idempotency lock poisoned"))?;
        // Forget locks nobody holds, so the map does not grow without bound.
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry((tenant, key.to_string())).or_default().clone()
    };
    let guard = lock.lock_owned().await;
    let stored = state.db().get_idempotent(tenant, key).await?;
    match decide(stored.as_ref(), &digest) {
        Decision::Fresh => Ok(Begin::Fresh(Pending {
            tenant,
            key: key.to_string(),
            digest,
            _guard: guard,
        })),
        Decision::Replay { status, body } => Ok(Begin::Replay {
            status,
            body: unseal(state, tenant, key, body)?,
        }),
        Decision::Conflict => Err(conflict()),
    }
}

/// Store the first answer. `sensitive` answers are sealed.
pub async fn finish(
    state: &AppState,
    pending: Pending,
    status: u16,
    body: &Value,
    sensitive: bool,
) {
    let response = if sensitive {
        seal(state, pending.tenant, &pending.key, body)
    } else {
        body.clone()
    };
    let r = IdempotentResponse {
        tenant_id: pending.tenant,
        key: pending.key.clone(),
        body_digest: pending.digest.clone(),
        status,
        response,
        created_at: state.clock().now(),
    };
    match state.db().put_idempotent(&r).await {
        Ok(true) => {}
        // Another replica answered the same key first; ours stands for this
        // caller, theirs is what retries will see.
        Ok(false) => tracing::warn!(key = %pending.key, "idempotency key was stored concurrently"),
        Err(e) => tracing::warn!(error = %e, "could not store the idempotent answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(digest: Vec<u8>) -> IdempotentResponse {
        IdempotentResponse {
            tenant_id: TenantId::DEFAULT,
            key: "k1".into(),
            body_digest: digest,
            status: 200,
            response: json!({"request_id": "r1", "job_status": "completed"}),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_new_key_runs_a_repeat_replays_and_a_different_body_conflicts() {
        let d = request_digest("POST", "/api/v1/revocations", br#"{"username":"a@b.co"}"#);
        assert_eq!(decide(None, &d), Decision::Fresh);
        let s = stored(d.clone());
        assert_eq!(
            decide(Some(&s), &d),
            Decision::Replay {
                status: 200,
                body: json!({"request_id": "r1", "job_status": "completed"})
            }
        );
        let other = request_digest("POST", "/api/v1/revocations", br#"{"username":"x@b.co"}"#);
        assert_eq!(decide(Some(&s), &other), Decision::Conflict);
    }

    #[test]
    fn the_same_body_on_another_endpoint_or_method_is_a_different_request() {
        let body = br#"{"name":"k"}"#;
        let a = request_digest("POST", "/api/v1/api-keys", body);
        assert_ne!(a, request_digest("POST", "/api/v1/connectors", body));
        assert_ne!(a, request_digest("PUT", "/api/v1/api-keys", body));
        // Whitespace is part of the raw body: a client must resend the same bytes.
        assert_ne!(
            a,
            request_digest("POST", "/api/v1/api-keys", br#"{"name": "k"}"#)
        );
    }
}
