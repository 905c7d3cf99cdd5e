//! Signed-in people in the admin web UI: their sessions, and the counters
//! that lock an email out after repeated failed sign-ins.
//!
//! A session is identified by a random id kept only in the browser's cookie;
//! the store holds its SHA-256, like API keys, so a copy of the database
//! signs nobody in. Each session carries its own CSRF token (synchronizer
//! pattern), handed to the pages the session renders and compared on every
//! state-changing form. Failed sign-ins are counted per key (the lowercased
//! email) in one conditional statement, so concurrent failures on several
//! replicas are all counted.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::admin::AuditEvent;
use crate::domain::TenantId;
use crate::ports::StoreError;

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 of the session id in the cookie.
    pub digest: Vec<u8>,
    pub user_id: Uuid,
    pub tenant_id: TenantId,
    /// Compared with the `_csrf` field of every state-changing form.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The session ends then, whatever its activity.
    pub expires_at: DateTime<Utc>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl WebSession {
    /// Usable at `now`: not past its absolute expiry, and seen within `idle`.
    pub fn is_live(&self, now: DateTime<Utc>, idle: chrono::Duration) -> bool {
        now < self.expires_at && now - self.last_seen_at < idle
    }
}

/// Failed sign-ins of one key within the current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginThrottle {
    pub key: String,
    pub failures: u32,
    pub first_failed_at: DateTime<Utc>,
    /// Sign-ins for the key are refused until then.
    pub locked_until: Option<DateTime<Utc>>,
}

impl LoginThrottle {
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|t| now < t)
    }
}

/// How a failed sign-in is counted: failures older than `window_start` are
/// forgotten, and the `max`th failure within the window locks the key until
/// `lock_until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    pub at: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub max: u32,
    pub lock_until: DateTime<Utc>,
}

/// Storage of web sessions and sign-in failure counters. Every method is one
/// transaction; those that take an audit event write it in the same one.
#[async_trait]
pub trait WebSessionStore: Send + Sync {
    /// A new session (signing in), with its audit record.
    async fn create_web_session(
        &self,
        session: &WebSession,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    async fn get_web_session(&self, digest: &[u8]) -> Result<Option<WebSession>, StoreError>;
    /// Record activity; never moves `last_seen_at` back. False when the
    /// session no longer exists.
    async fn touch_web_session(&self, digest: &[u8], at: DateTime<Utc>)
        -> Result<bool, StoreError>;
    /// End one session (signing out), with its audit record. False (and
    /// nothing written) when there was no such session.
    async fn delete_web_session(
        &self,
        digest: &[u8],
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// End every session of a user (sign out everywhere, a disabled user, a
    /// changed role), with its audit record; returns how many ended.
    async fn delete_user_web_sessions(
        &self,
        user: Uuid,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError>;
    /// Forget sessions that expired before `before`; returns how many.
    async fn purge_web_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    async fn get_login_throttle(&self, key: &str) -> Result<Option<LoginThrottle>, StoreError>;
    /// Count one failed sign-in for `key` under `policy`, atomically, and
    /// return the counter after it.
    async fn record_login_failure(
        &self,
        key: &str,
        policy: &FailurePolicy,
    ) -> Result<LoginThrottle, StoreError>;
    /// A successful sign-in forgets the key's failures.
    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_its_expiry_or_an_idle_gap() {
        let t0 = Utc::now();
        let s = WebSession {
            digest: vec![1],
            user_id: Uuid::new_v4(),
            tenant_id: TenantId::DEFAULT,
            csrf_token: "c".into(),
            created_at: t0,
            last_seen_at: t0,
            expires_at: t0 + chrono::Duration::hours(12),
            client_ip: None,
            user_agent: None,
        };
        let idle = chrono::Duration::hours(2);
        assert!(s.is_live(t0 + chrono::Duration::minutes(119), idle));
        assert!(!s.is_live(t0 + chrono::Duration::minutes(120), idle));
        let mut active = s.clone();
        active.last_seen_at = t0 + chrono::Duration::hours(11);
        assert!(active.is_live(
            t0 + chrono::Duration::hours(12) - chrono::Duration::seconds(1),
            idle
        ));
        assert!(!active.is_live(t0 + chrono::Duration::hours(12), idle));
    }
}
