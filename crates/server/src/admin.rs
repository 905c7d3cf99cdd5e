//! Administrative use cases shared by the REST API and the CLI's `sever
//! tenants|users|keys` commands: create tenants, users and API keys, revoke
//! keys, change a tenant's switches. Each validates its input, writes the
//! change and its audit record in one store transaction, and never returns
//! or records a secret except the one value shown once to its creator.

use serde_json::json;
use sever_core::admin::{ApiKey, Role, Scope, Tenant, TenantSettings, User};
use sever_core::{Clock, Database, InvalidInput, Sealer, StoreError, TenantId};
use uuid::Uuid;

use crate::audit::{Actor, Decision};
use crate::auth::{self, API_KEY_PREFIX, WEBHOOK_SECRET_PREFIX};
use crate::error::ApiError;
use crate::secrets::webhook_secret_aad;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("could not hash the password: {0}")]
    Hash(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => AdminError::Conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => AdminError::NotFound(format!("{what} was not found")),
            other => AdminError::Store(other),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(i) => i.into(),
            AdminError::NotFound(m) => ApiError::not_found(m),
            AdminError::Conflict(m) => ApiError::conflict(m),
            AdminError::Store(s) => s.into(),
            AdminError::Hash(m) => ApiError::internal(m),
        }
    }
}

async fn tenant_exists(db: &dyn Database, tenant: TenantId) -> Result<Tenant, AdminError> {
    db.get_tenant(tenant)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("tenant {tenant} does not exist")))
}

/// Create a tenant (a new random id unless `id` is given). Its switches
/// start off.
pub async fn create_tenant(
    db: &dyn Database,
    clock: &dyn Clock,
    id: Option<TenantId>,
    name: &str,
    actor: &Actor,
) -> Result<Tenant, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(InvalidInput::new("name", "must be 1-200 printable characters").into());
    }
    let id = id.unwrap_or_else(|| TenantId(Uuid::new_v4()));
    if db.get_tenant(id).await?.is_some() {
        return Err(AdminError::Conflict(format!("tenant {id} already exists")));
    }
    let tenant = Tenant {
        id,
        name: name.to_string(),
        created_at: clock.now(),
    };
    let mut ev = actor
        .event(clock, "tenant.create", Decision::Allowed)
        .target(Some(&id.to_string()))
        .result("created")
        .detail(json!({"name": tenant.name}))
        .build();
    ev.tenant_id = id;
    db.create_tenant(&tenant, &ev).await?;
    Ok(tenant)
}

fn parse_email(raw: &str) -> Result<String, InvalidInput> {
    let e = raw.trim();
    let ok = e.len() <= 320
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.rsplit_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'));
    if ok {
        Ok(e.to_string())
    } else {
        Err(InvalidInput::new(
            "email",
            format!("'{}' is not an email address", e.escape_debug()),
        ))
    }
}

/// Shortest password accepted for a local user.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Create a local user with an Argon2id password hash.
pub async fn create_user(
    db: &dyn Database,
    clock: &dyn Clock,
    tenant: TenantId,
    email: &str,
    role: Role,
    password: &str,
    actor: &Actor,
) -> Result<User, AdminError> {
    let email = parse_email(email)?;
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(InvalidInput::new(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        )
        .into());
    }
    tenant_exists(db, tenant).await?;
    if db.find_user(tenant, &email).await?.is_some() {
        return Err(AdminError::Conflict(format!(
            "a user with email {email} already exists in this tenant"
        )));
    }
    let password = password.to_string();
    // Argon2 is deliberately slow; keep it off the async workers.
    let password_hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| AdminError::Hash(e.to_string()))?
        .map_err(|e| AdminError::Hash(e.to_string()))?;
    let user = User {
        id: Uuid::new_v4(),
        tenant_id: tenant,
        email,
        role,
        password_hash,
        created_at: clock.now(),
        disabled: false,
    };
    let mut ev = actor
        .event(clock, "user.create", Decision::Allowed)
        .target(Some(&user.email))
        .result("created")
        .detail(json!({"user_id": user.id, "role": role}))
        .build();
    ev.tenant_id = tenant;
    db.create_user(&user, &ev).await?;
    Ok(user)
}

/// A new API key: the stored record and the key itself, which is shown once
/// and kept nowhere.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub plaintext: String,
}

/// Create an API key holding `scopes`.
pub async fn create_api_key(
    db: &dyn Database,
    clock: &dyn Clock,
    tenant: TenantId,
    name: &str,
    scopes: &[Scope],
    actor: &Actor,
) -> Result<NewApiKey, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(InvalidInput::new("name", "must be 1-100 printable characters").into());
    }
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(InvalidInput::new(
            "scopes",
            "name at least one of sessions:revoke, sessions:read, admin",
        )
        .into());
    }
    tenant_exists(db, tenant).await?;
    let plaintext = auth::random_token(API_KEY_PREFIX);
    let key = ApiKey {
        id: Uuid::new_v4(),
        tenant_id: tenant,
        name: name.to_string(),
        prefix: auth::key_prefix(&plaintext),
        digest: auth::key_digest(&plaintext),
        scopes,
        created_by: actor.name.clone(),
        created_at: clock.now(),
        last_used_at: None,
        revoked_at: None,
    };
    let mut ev = actor
        .event(clock, "api_key.create", Decision::Allowed)
        .target(Some(&key.id.to_string()))
        .result("created")
        .detail(json!({"name": key.name, "key_scopes": key.scopes, "prefix": key.prefix}))
        .build();
    ev.tenant_id = tenant;
    db.create_api_key(&key, &ev).await?;
    Ok(NewApiKey { key, plaintext })
}

/// Revoke a live key of `tenant`.
pub async fn revoke_api_key(
    db: &dyn Database,
    clock: &dyn Clock,
    tenant: TenantId,
    id: Uuid,
    actor: &Actor,
) -> Result<(), AdminError> {
    let mut ev = actor
        .event(clock, "api_key.revoke", Decision::Allowed)
        .target(Some(&id.to_string()))
        .result("revoked")
        .build();
    ev.tenant_id = tenant;
    if db.revoke_api_key(tenant, id, clock.now(), &ev).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!(
            "no live API key {id} in this tenant"
        )))
    }
}

/// A change to a tenant's switches; `None` leaves a switch as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub revocation_enabled: Option<bool>,
    pub webhook_enabled: Option<bool>,
    pub mcp_enabled: Option<bool>,
    pub webhook_require_timestamp: Option<bool>,
}

fn switches(s: &TenantSettings) -> serde_json::Value {
    json!({
        "revocation_enabled": s.revocation_enabled,
        "webhook_enabled": s.webhook_enabled,
        "mcp_enabled": s.mcp_enabled,
        "webhook_require_timestamp": s.webhook_require_timestamp,
    })
}

/// Apply `change`. Turning the webhook channel on generates its signing
/// secret (`sr_…`), returned here once and stored sealed; turning it off
/// deletes the secret, so off-then-on rotates it.
pub async fn update_settings(
    db: &dyn Database,
    sealer: &dyn Sealer,
    clock: &dyn Clock,
    tenant: TenantId,
    change: &SettingsChange,
    actor: &Actor,
) -> Result<(TenantSettings, Option<String>), AdminError> {
    tenant_exists(db, tenant).await?;
    let before = db.get_settings(tenant).await?;
    let mut after = before.clone();
    if let Some(v) = change.revocation_enabled {
        after.revocation_enabled = v;
    }
    if let Some(v) = change.webhook_enabled {
        after.webhook_enabled = v;
    }
    if let Some(v) = change.mcp_enabled {
        after.mcp_enabled = v;
    }
    if let Some(v) = change.webhook_require_timestamp {
        after.webhook_require_timestamp = v;
    }
    let mut new_secret = None;
    let secret_change = if !after.webhook_enabled {
        after.webhook_secret = None;
        if before.webhook_secret.is_some() {
            "deleted"
        } else {
            "none"
        }
    } else if after.webhook_secret.is_none() {
        let secret = auth::random_token(WEBHOOK_SECRET_PREFIX);
        after.webhook_secret = Some(sealer.seal(secret.as_bytes(), &webhook_secret_aad(tenant)));
        new_secret = Some(secret);
        "generated"
    } else {
        "unchanged"
    };
    after.updated_at = clock.now();
    let mut ev = actor
        .event(clock, "settings.update", Decision::Allowed)
        .target(Some(&tenant.to_string()))
        .result("updated")
        .detail(json!({
            "before": switches(&before),
            "after": switches(&after),
            "webhook_secret": secret_change,
        }))
        .build();
    ev.tenant_id = tenant;
    db.put_settings(&after, &ev).await?;
    Ok((after, new_secret))
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// Change a user's role or disable (or re-enable) them. The tenant keeps at
/// least one enabled owner. Disabling a user also ends their web sessions.
pub async fn update_user(
    db: &dyn Database,
    clock: &dyn Clock,
    tenant: TenantId,
    id: Uuid,
    change: &UserChange,
    actor: &Actor,
) -> Result<User, AdminError> {
    let before = db
        .get_user(id)
        .await?
        .filter(|u| u.tenant_id == tenant)
        .ok_or_else(|| AdminError::NotFound(format!("no user {id} in this tenant")))?;
    let mut after = before.clone();
    if let Some(r) = change.role {
        after.role = r;
    }
    if let Some(d) = change.disabled {
        after.disabled = d;
    }
    if after == before {
        return Ok(after);
    }
    let was_owner = before.role == Role::Owner && !before.disabled;
    let is_owner = after.role == Role::Owner && !after.disabled;
    if was_owner && !is_owner {
        let owners = db
            .list_users(tenant)
            .await?
            .iter()
            .filter(|u| u.role == Role::Owner && !u.disabled && u.id != id)
            .count();
        if owners == 0 {
            return Err(InvalidInput::new(
                "role",
                "the tenant must keep an enabled owner; make someone else owner first",
            )
            .into());
        }
    }
    let mut ev = actor
        .event(clock, "user.update", Decision::Allowed)
        .target(Some(&after.email))
        .result("updated")
        .detail(json!({
            "user_id": id,
            "before": {"role": before.role, "disabled": before.disabled},
            "after": {"role": after.role, "disabled": after.disabled},
        }))
        .build();
    ev.tenant_id = tenant;
    db.update_user(&after, &ev).await?;
    if after.disabled && !before.disabled {
        let mut ev = actor
            .event(clock, "ui.sign_out_everywhere", Decision::Allowed)
            .target(Some(&after.email))
            .result("sessions ended: user disabled")
            .build();
        ev.tenant_id = tenant;
        db.delete_user_web_sessions(id, &ev).await?;
    }
    Ok(after)
}

/// The tenant's webhook signing secret, opened; `None` while the channel is off.
pub fn webhook_secret(
    sealer: &dyn Sealer,
    settings: &TenantSettings,
) -> Result<Option<Vec<u8>>, sever_core::SealError> {
    settings
        .webhook_secret
        .as_ref()
        .map(|s| sealer.open(s, &webhook_secret_aad(settings.tenant_id)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(parse_email(" ada@example.com ").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "a b@example.com",
            "a@localhost",
            "a@.com",
        ] {
            assert_eq!(parse_email(bad).unwrap_err().field, "email", "{bad}");
        }
    }
}
