//! Where connectors keep provider access tokens between calls and between
//! runs, so an incident does not start with a token request to every
//! provider, and a restart does not either.
//!
//! Tokens are secrets: the store only ever sees them sealed, with the cache
//! key as associated data so a sealed token cannot be moved to another
//! entry. A copy is kept in memory so one process does not read the database
//! on every provider call. The cache is an optimisation, never a source of
//! failure: anything wrong with an entry (expired, unreadable, sealed with a
//! key no longer loaded, database down) makes it a miss, and the connector
//! fetches a fresh token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sever_core::{AccessToken, CachedSealedToken, Clock, Sealer, Store, SystemClock, TokenCache};

/// A token this close to expiry is treated as expired, so it cannot lapse
/// between being handed out and being used.
pub const EXPIRY_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// A [`TokenCache`] that seals tokens into a [`Store`].
pub struct SealedTokenCache {
    store: Arc<dyn Store>,
    sealer: Arc<dyn Sealer>,
    clock: Arc<dyn Clock>,
    memory: Mutex<HashMap<String, AccessToken>>,
}

impl std::fmt::Debug for SealedTokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedTokenCache").finish_non_exhaustive()
    }
}

impl SealedTokenCache {
    pub fn new(store: Arc<dyn Store>, sealer: Arc<dyn Sealer>) -> Self {
        Self {
            store,
            sealer,
            clock: Arc::new(SystemClock),
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// Judge expiry by `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn usable(&self, expires_at: DateTime<Utc>) -> bool {
        expires_at - EXPIRY_MARGIN > self.clock.now()
    }

    fn remember(&self, key: &str, token: &AccessToken) {
        if let Ok(mut memory) = self.memory.lock() {
            memory.insert(key.to_string(), token.clone());
        }
    }

    fn remembered(&self, key: &str) -> Option<AccessToken> {
        let mut memory = self.memory.lock().ok()?;
        match memory.get(key) {
            Some(t) if self.usable(t.expires_at) => Some(t.clone()),
            Some(_) => {
                memory.remove(key);
                None
            }
            None => None,
        }
    }
}

#[async_trait]
impl TokenCache for SealedTokenCache {
    async fn get(&self, key: &str) -> Option<AccessToken> {
        if let Some(token) = self.remembered(key) {
            return Some(token);
        }
        let stored = match self.store.get_token(key).await {
            Ok(stored) => stored?,
            Err(e) => {
                tracing::warn!(key, error = %e, "token cache read failed; treating as a miss");
                return None;
            }
        };
        if !self.usable(stored.expires_at) {
            return None;
        }
        let plain = match self.sealer.open(&stored.sealed, key.as_bytes()) {
            Ok(plain) => plain,
            Err(e) => {
                tracing::warn!(key, error = %e, "cached token cannot be opened; treating as a miss");
                return None;
            }
        };
        let value = String::from_utf8(plain).ok()?;
        let token = AccessToken {
            value: SecretString::from(value),
            expires_at: stored.expires_at,
        };
        self.remember(key, &token);
        Some(token)
    }

    async fn put(&self, key: &str, token: &AccessToken) {
        self.remember(key, token);
        let sealed = CachedSealedToken {
            sealed: self
                .sealer
                .seal(token.value.expose_secret().as_bytes(), key.as_bytes()),
            expires_at: token.expires_at,
        };
        if let Err(e) = self.store.put_token(key, &sealed).await {
            tracing::warn!(key, error = %e, "token cache write failed; the token stays in memory only");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteStore, XChaChaSealer};
    use chrono::TimeZone;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const OTHER_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.very-secret-token-value";

    struct FixedClock(Mutex<DateTime<Utc>>);

    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 5, 1, 12, 0, 0).unwrap()
    }

    struct Fixture {
        dir: tempfile::TempDir,
        sqlite: SqliteStore,
        store: Arc<dyn Store>,
        clock: Arc<FixedClock>,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(dir.path().join("s.db").to_str().unwrap())
            .await
            .unwrap();
        Fixture {
            dir,
            store: Arc::new(sqlite.clone()),
            sqlite,
            clock: Arc::new(FixedClock(Mutex::new(noon()))),
        }
    }

    fn cache(fx: &Fixture, key: &str) -> SealedTokenCache {
        SealedTokenCache::new(
            fx.store.clone(),
            Arc::new(XChaChaSealer::from_base64(key).unwrap()),
        )
        .with_clock(fx.clock.clone())
    }

    fn token(value: &str, expires_at: DateTime<Utc>) -> AccessToken {
        AccessToken {
            value: SecretString::from(value.to_string()),
            expires_at,
        }
    }

    #[tokio::test]
    async fn a_token_put_is_returned_and_survives_a_restart() {
        let fx = fixture().await;
        let c = cache(&fx, KEY);
        assert!(c.get("okta:token").await.is_none());
        let expires = noon() + chrono::Duration::hours(1);
        c.put("okta:token", &token(TOKEN, expires)).await;
        let got = c.get("okta:token").await.unwrap();
        assert_eq!(got.value.expose_secret(), TOKEN);
        assert_eq!(got.expires_at, expires);
        // A new process (empty memory) reads it back from the store.
        let restarted = cache(&fx, KEY);
        let got = restarted.get("okta:token").await.unwrap();
        assert_eq!(got.value.expose_secret(), TOKEN);
        // Overwriting replaces it everywhere.
        restarted.put("okta:token", &token("second", expires)).await;
        assert_eq!(
            cache(&fx, KEY)
                .get("okta:token")
                .await
                .unwrap()
                .value
                .expose_secret(),
            "second"
        );
    }

    #[tokio::test]
    async fn tokens_about_to_expire_are_misses_in_memory_and_in_the_store() {
        let fx = fixture().await;
        let c = cache(&fx, KEY);
        c.put("k", &token(TOKEN, noon() + chrono::Duration::seconds(90)))
            .await;
        assert!(c.get("k").await.is_some());
        *fx.clock.0.lock().unwrap() = noon() + chrono::Duration::seconds(31);
        assert!(c.get("k").await.is_none(), "inside the 60 s margin");
        assert!(cache(&fx, KEY).get("k").await.is_none(), "from the store");
    }

    #[tokio::test]
    async fn entries_that_cannot_be_opened_are_misses() {
        let fx = fixture().await;
        let expires = noon() + chrono::Duration::hours(1);
        cache(&fx, KEY).put("k", &token(TOKEN, expires)).await;
        assert!(
            cache(&fx, OTHER_KEY).get("k").await.is_none(),
            "another key"
        );
        // A sealed token moved to another entry does not open there.
        let moved = fx.store.get_token("k").await.unwrap().unwrap();
        fx.store.put_token("elsewhere", &moved).await.unwrap();
        assert!(cache(&fx, KEY).get("elsewhere").await.is_none());
    }

    #[tokio::test]
    async fn the_plain_token_is_never_written_to_the_database() {
        let fx = fixture().await;
        cache(&fx, KEY)
            .put(
                "okta:token",
                &token(TOKEN, noon() + chrono::Duration::hours(1)),
            )
            .await;
        fx.sqlite.close().await;
        // Every byte on disk: the database, its WAL and any other file beside it.
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(fx.dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        assert!(!bytes.is_empty());
        let needle = TOKEN.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the token is stored in the clear"
        );
        assert!(!bytes.windows(12).any(|w| w == b"secret-token"));
    }

    #[tokio::test]
    async fn the_raw_row_holds_only_sealed_bytes() {
        let fx = fixture().await;
        cache(&fx, KEY)
            .put(
                "okta:token",
                &token(TOKEN, noon() + chrono::Duration::hours(1)),
            )
            .await;
        let (key, key_id, blob, expires_at): (String, String, Vec<u8>, String) =
            sqlx::query_as("SELECT key, key_id, blob, expires_at FROM token_cache")
                .fetch_one(&fx.sqlite.pool)
                .await
                .unwrap();
        let row = [
            key.as_bytes(),
            key_id.as_bytes(),
            &blob,
            expires_at.as_bytes(),
        ]
        .concat();
        let needle = TOKEN.as_bytes();
        assert!(!row.windows(needle.len()).any(|w| w == needle));
        assert_eq!(key_id, XChaChaSealer::from_base64(KEY).unwrap().key_id());
    }
}
