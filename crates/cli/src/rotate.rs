//! `sever keys rotate`: re-seal every secret at rest under a new master key.
//!
//! Sealed values are connector credentials and webhook signing secrets;
//! cached provider tokens are simply dropped (a connector fetches a fresh
//! one). Every re-seal is written with its audit record, and the run ends
//! with one `master_key.rotate` record.
//!
//! With a key file, the rotation is crash-safe: the new key is first added
//! in front of the old one (so both open everything), then everything is
//! re-sealed, checked, and only then is the old key removed from the file,
//! which is replaced atomically each time. A run that stops half-way leaves
//! a file that opens everything; running the command again finishes the job.
//!
//! A key given inline (`SEVER_MASTER_KEY`) cannot be rewritten from here:
//! the operator sets the new key plus `SEVER_PREVIOUS_MASTER_KEY`, and this
//! command re-seals whatever is not yet under the new key.

use std::process::ExitCode;

use serde::Serialize;
use serde_json::json;
use sever_core::{Clock, Database, Sealer, SystemClock, TenantId};
use sever_server::audit::Decision;
use sever_server::{connector_aad, webhook_secret_aad, Actor};
use sever_store::XChaChaSealer;

use crate::config::{Config, MasterKeySource};
use crate::{app, lockfile, os_user, output, CliError};

const INLINE_INSTRUCTIONS: &str = "the master key comes from SEVER_MASTER_KEY (or `master_key` \
in the configuration), which sever cannot rewrite. To rotate it:
  1. generate a new key:  openssl rand -base64 32
  2. restart every sever process with SEVER_MASTER_KEY=<new key> and SEVER_PREVIOUS_MASTER_KEY=<old key>
     (both keys open what they sealed; new secrets are sealed with the new key)
  3. run `sever keys rotate` with the same two variables: it re-seals every stored secret under the new key
  4. remove SEVER_PREVIOUS_MASTER_KEY and restart every sever process";

/// What one rotation did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub key_id: String,
    pub previous_key_ids: Vec<String>,
    pub connectors_resealed: usize,
    pub webhook_secrets_resealed: usize,
    pub tokens_cleared: u64,
}

pub async fn run(config: &Config, db: &dyn Database, json: bool) -> Result<ExitCode, CliError> {
    // A running server on this SQLite file holds the old key in memory and
    // would keep sealing with it.
    let _db_lock = match sever_store::sqlite_path(&config.database_url) {
        Some(path) => Some(lockfile::acquire(&path).map_err(|e| match e {
            lockfile::LockError::Held { db, pid } => CliError::Runtime(format!(
                "sever serve is using {}{}; stop it before rotating the master key (it holds the old key in memory)",
                db.display(),
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            )),
            other => CliError::Runtime(other.to_string()),
        })?),
        None => None,
    };
    let report = match &config.master_key {
        MasterKeySource::Inline(_) => {
            if config.previous_master_key.is_none() {
                return Err(CliError::Usage(INLINE_INSTRUCTIONS.into()));
            }
            let sealer = app::load_sealer(config)?;
            let report = reseal_all(db, &sealer).await?;
            if !json {
                eprintln!(
                    "Now remove SEVER_PREVIOUS_MASTER_KEY (previous_master_key) and restart every sever process."
                );
            }
            report
        }
        MasterKeySource::File(path) => {
            let _key_lock = lockfile::acquire(path).map_err(|e| match e {
                lockfile::LockError::Held { pid, .. } => CliError::Runtime(format!(
                    "another `sever keys rotate` is running{}",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                )),
                other => CliError::Runtime(other.to_string()),
            })?;
            let master = |e: sever_store::KeyError| CliError::Usage(format!("master key: {e}"));
            // Creates the file on a first run; either way it must load.
            XChaChaSealer::load_or_create_key_file(path).map_err(master)?;
            let mut sealer = XChaChaSealer::rotate_key_file(path).map_err(master)?;
            if let Some(prev) = &config.previous_master_key {
                sealer = sealer
                    .with_older_key_base64(secrecy::ExposeSecret::expose_secret(prev))
                    .map_err(master)?;
            }
            let report = reseal_all(db, &sealer).await.map_err(|e| match e {
                CliError::Runtime(m) => CliError::Runtime(format!(
                    "{m}\nThe key file {} still holds the older keys, so nothing is lost; fix the cause and run `sever keys rotate` again.",
                    path.display()
                )),
                other => other,
            })?;
            XChaChaSealer::retire_older_keys(path).map_err(master)?;
            if !json && !sever_store::is_sqlite(&config.database_url) {
                eprintln!(
                    "Restart every sever process that uses this database with the new key file {}: running ones hold the old key.",
                    path.display()
                );
            }
            report
        }
    };
    let actor = Actor::cli(TenantId::DEFAULT, format!("cli:{}", os_user()));
    let ev = actor
        .event(&SystemClock, "master_key.rotate", Decision::Allowed)
        .target(Some(&report.key_id))
        .result("rotated")
        .detail(json!({
            "key_id": report.key_id,
            "previous_key_ids": report.previous_key_ids,
            "connectors_resealed": report.connectors_resealed,
            "webhook_secrets_resealed": report.webhook_secrets_resealed,
            "tokens_cleared": report.tokens_cleared,
        }))
        .build();
    db.append_audit(&ev)
        .await
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    if json {
        output::print_json(&report);
    } else {
        println!(
            "Master key rotated to {}{}: re-sealed {} connector secret(s) and {} webhook signing secret(s); cleared {} cached provider token(s).",
            report.key_id,
            if report.previous_key_ids.is_empty() {
                String::new()
            } else {
                format!(" (from {})", report.previous_key_ids.join(", "))
            },
            report.connectors_resealed,
            report.webhook_secrets_resealed,
            report.tokens_cleared
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn store_err(e: sever_core::StoreError) -> CliError {
    CliError::Runtime(e.to_string())
}

/// Re-seal under `sealer`'s current key every value sealed with another
/// key, audited one by one, and drop cached tokens of other keys. Refuses to
/// write anything when some value cannot be opened, and checks afterwards
/// that nothing is left under another key.
pub async fn reseal_all(db: &dyn Database, sealer: &XChaChaSealer) -> Result<Report, CliError> {
    let current = sealer.key_id().to_string();
    let clock = SystemClock;
    let actor = Actor::cli(TenantId::DEFAULT, format!("cli:{}", os_user()));
    let mut report = Report {
        key_id: current.clone(),
        previous_key_ids: sealer.older_key_ids(),
        ..Report::default()
    };

    // Open everything first: one unreadable value stops the run before any write.
    let connectors = db.all_connectors().await.map_err(store_err)?;
    let settings = db.all_settings().await.map_err(store_err)?;
    let mut unreadable = Vec::new();
    let mut connector_work = Vec::new();
    for c in connectors {
        let Some(sealed) = c.secrets.as_ref().filter(|s| s.key_id != current) else {
            continue;
        };
        match sealer.open(sealed, &connector_aad(c.tenant_id, &c.name)) {
            Ok(plain) => connector_work.push((c, plain)),
            Err(e) => unreadable.push(format!(
                "connector '{}' of tenant {}: {e}",
                c.name, c.tenant_id
            )),
        }
    }
    let mut settings_work = Vec::new();
    for s in settings {
        let Some(sealed) = s.webhook_secret.as_ref().filter(|s| s.key_id != current) else {
            continue;
        };
        match sealer.open(sealed, &webhook_secret_aad(s.tenant_id)) {
            Ok(plain) => settings_work.push((s, plain)),
            Err(e) => unreadable.push(format!(
                "the webhook signing secret of tenant {}: {e}",
                s.tenant_id
            )),
        }
    }
    if !unreadable.is_empty() {
        return Err(CliError::Runtime(format!(
            "cannot rotate: {} stored secret(s) cannot be opened with the loaded keys (re-enter them over the API, or load the key that sealed them):\n  {}",
            unreadable.len(),
            unreadable.join("\n  ")
        )));
    }

    for (mut c, plain) in connector_work {
        let from = c.secrets.as_ref().map(|s| s.key_id.clone());
        c.secrets = Some(sealer.seal(&plain, &connector_aad(c.tenant_id, &c.name)));
        let mut ev = actor
            .event(&clock as &dyn Clock, "connector.reseal", Decision::Allowed)
            .target(Some(c.name.as_str()))
            .result("resealed")
            .detail(json!({"from_key_id": from, "to_key_id": current}))
            .build();
        ev.tenant_id = c.tenant_id;
        db.put_connector(&c, &ev).await.map_err(store_err)?;
        report.connectors_resealed += 1;
    }
    for (mut s, plain) in settings_work {
        let from = s.webhook_secret.as_ref().map(|s| s.key_id.clone());
        s.webhook_secret = Some(sealer.seal(&plain, &webhook_secret_aad(s.tenant_id)));
        let mut ev = actor
            .event(&clock as &dyn Clock, "settings.reseal", Decision::Allowed)
            .target(Some(&s.tenant_id.to_string()))
            .result("resealed")
            .detail(json!({
                "field": "webhook_secret",
                "from_key_id": from,
                "to_key_id": current,
            }))
            .build();
        ev.tenant_id = s.tenant_id;
        db.put_settings(&s, &ev).await.map_err(store_err)?;
        report.webhook_secrets_resealed += 1;
    }
    report.tokens_cleared = db
        .clear_tokens_not_sealed_with(&current)
        .await
        .map_err(store_err)?;

    // Something written meanwhile by a process holding an older key would be
    // lost once that key is retired.
    let left: usize = db
        .all_connectors()
        .await
        .map_err(store_err)?
        .iter()
        .filter(|c| c.secrets.as_ref().is_some_and(|s| s.key_id != current))
        .count()
        + db.all_settings()
            .await
            .map_err(store_err)?
            .iter()
            .filter(|s| {
                s.webhook_secret
                    .as_ref()
                    .is_some_and(|s| s.key_id != current)
            })
            .count();
    if left > 0 {
        return Err(CliError::Runtime(format!(
            "{left} secret(s) were sealed with an older key while re-sealing (is a sever process with the old key still running?)"
        )));
    }
    Ok(report)
}
