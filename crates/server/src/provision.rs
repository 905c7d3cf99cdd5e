//! Setting a tenant up from code rather than over HTTP (`sever demo`), with
//! the validation, sealing and audit records of the API: connectors go
//! through the same save as `POST`/`PATCH /api/v1/connectors`.

use serde_json::{Map, Value};
use sever_core::admin::{Role, StoredConnector, User};
use sever_core::TenantId;

use crate::admin::AdminError;
use crate::api::connectors::{check_identity, create_new, identity, save};
use crate::audit::{Actor, Decision};
use crate::error::ApiError;
use crate::AppState;

/// Create the connector `config` describes (the body of `POST
/// /api/v1/connectors`), or update the one of that name as `PATCH` would.
pub async fn put_connector(
    st: &AppState,
    actor: &Actor,
    tenant: TenantId,
    config: &Map<String, Value>,
) -> Result<StoredConnector, ApiError> {
    let (provider, name) = identity(config)?;
    match st.db().get_connector(tenant, &name).await? {
        None => create_new(st, actor, tenant, provider, &name, config).await,
        Some(existing) => {
            check_identity(&existing, config)?;
            save(
                st,
                actor,
                tenant,
                Some(&existing),
                existing.provider,
                &existing.name,
                config,
                "connector.update",
            )
            .await
        }
    }
}

/// A local user with `role` and `password`: created, or (when the email is
/// taken) given the new password and role, enabled. Audited as
/// `user.create` or `user.reset_password`.
pub async fn ensure_user(
    st: &AppState,
    actor: &Actor,
    tenant: TenantId,
    email: &str,
    role: Role,
    password: &str,
) -> Result<User, AdminError> {
    let db = st.db().as_ref();
    let Some(existing) = db
        .find_user(tenant, email)
        .await
        .map_err(AdminError::Store)?
    else {
        return crate::admin::create_user(
            db,
            st.clock().as_ref(),
            tenant,
            email,
            role,
            password,
            actor,
        )
        .await;
    };
    if password.chars().count() < 12 {
        return Err(AdminError::Invalid(sever_core::InvalidInput::new(
            "password",
            "must be at least 12 characters",
        )));
    }
    let password = password.to_string();
    // Argon2 is deliberately slow; keep it off the async workers.
    let hash = tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .map_err(|e| AdminError::Hash(e.to_string()))?
        .map_err(|e| AdminError::Hash(e.to_string()))?;
    let user = User {
        role,
        password_hash: hash,
        disabled: false,
        ..existing
    };
    let mut ev = actor
        .event(
            st.clock().as_ref(),
            "user.reset_password",
            Decision::Allowed,
        )
        .target(Some(&user.email))
        .result("saved")
        .detail(serde_json::json!({"role": role.as_str()}))
        .build();
    ev.tenant_id = tenant;
    db.update_user(&user, &ev)
        .await
        .map_err(AdminError::Store)?;
    Ok(user)
}
