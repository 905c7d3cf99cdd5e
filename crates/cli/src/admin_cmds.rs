//! `sever tenants|users|keys|audit`: administration from the terminal of the
//! machine that holds the database, for the first tenant, owner and API key
//! before anyone can log in, and for operators who prefer a shell. Every
//! change goes through the server crate's admin functions, so it is
//! validated and audited exactly as the same change made over the API;
//! the actor is `cli:<os user>`.
//!
//! Reads are not audited (whoever runs these can read the database file),
//! except `audit export`, which records that the trail left the system.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use sever_core::admin::{AuditQuery, Role, Scope, Tenant};
use sever_core::{Clock, Database, SystemClock, TenantId};
use sever_server::admin::MIN_PASSWORD_LEN;
use sever_server::{Actor, AdminError};
use uuid::Uuid;

use crate::{os_user, output, CliError};

#[derive(Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant and print its id.
    Create {
        #[arg(long)]
        name: String,
        /// Use this id instead of a new random one.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a local user (the password is read from a prompt or --password-stdin).
    Create {
        /// Tenant id, name, or `default`.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// owner, admin, analyst or viewer.
        #[arg(long)]
        role: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's users.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print it, once.
    Create {
        /// Tenant id, name, or `default`.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Comma-separated: sessions:revoke, sessions:read, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's API keys (never the keys themselves).
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key.
    Revoke {
        #[arg(long)]
        tenant: String,
        /// The key's id (from `sever keys list`).
        id: String,
    },
    /// Re-seal every stored secret under a new master key.
    Rotate {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the whole audit hash chain.
    Verify,
    /// Print audit records as JSON lines, oldest first.
    Export {
        /// Only this tenant's records (id, name, or `default`).
        #[arg(long)]
        tenant: Option<String>,
        /// Only records after this sequence number.
        #[arg(long)]
        after_seq: Option<i64>,
    },
}

fn actor(tenant: TenantId) -> Actor {
    Actor::cli(tenant, format!("cli:{}", os_user()))
}

fn store_err(e: sever_core::StoreError) -> CliError {
    CliError::Runtime(e.to_string())
}

impl From<AdminError> for CliError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(_) | AdminError::NotFound(_) => CliError::Usage(e.to_string()),
            AdminError::Conflict(_) | AdminError::Store(_) | AdminError::Hash(_) => {
                CliError::Runtime(e.to_string())
            }
        }
    }
}

/// `--tenant`: `default`, a tenant id, or the exact name of one tenant. With
/// `create_default`, the default tenant is created (and audited) if missing.
pub async fn resolve_tenant(
    db: &dyn Database,
    raw: &str,
    create_default: bool,
) -> Result<TenantId, CliError> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("default") {
        if create_default {
            crate::serve::ensure_default_tenant(db).await?;
        } else if db
            .get_tenant(TenantId::DEFAULT)
            .await
            .map_err(store_err)?
            .is_none()
        {
            return Err(CliError::Usage(
                "the default tenant does not exist yet (`sever serve` on SQLite, or any command that creates something in it, makes it)".into(),
            ));
        }
        return Ok(TenantId::DEFAULT);
    }
    if let Ok(id) = TenantId::parse(raw) {
        return match db.get_tenant(id).await.map_err(store_err)? {
            Some(_) => Ok(id),
            None => Err(CliError::Usage(format!(
                "tenant {id} does not exist (see `sever tenants list`)"
            ))),
        };
    }
    let named: Vec<Tenant> = db
        .list_tenants()
        .await
        .map_err(store_err)?
        .into_iter()
        .filter(|t| t.name == raw)
        .collect();
    match named.as_slice() {
        [t] => Ok(t.id),
        [] => Err(CliError::Usage(format!(
            "no tenant has the id or name '{raw}' (see `sever tenants list`)"
        ))),
        _ => Err(CliError::Usage(format!(
            "{} tenants are named '{raw}'; give the id instead",
            named.len()
        ))),
    }
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub async fn tenants(db: &dyn Database, command: TenantsCommand) -> Result<ExitCode, CliError> {
    match command {
        TenantsCommand::Create { name, id, json } => {
            let id = id
                .as_deref()
                .map(|raw| {
                    if raw.trim().eq_ignore_ascii_case("default") {
                        Ok(TenantId::DEFAULT)
                    } else {
                        TenantId::parse(raw).map_err(|e| CliError::Usage(e.to_string()))
                    }
                })
                .transpose()?;
            let tenant = sever_server::create_tenant(
                db,
                &SystemClock,
                id,
                &name,
                &actor(id.unwrap_or(TenantId::DEFAULT)),
            )
            .await?;
            if json {
                output::print_json(&tenant);
            } else {
                println!("{}", tenant.id);
                eprintln!("Created tenant '{}'.", tenant.name);
            }
        }
        TenantsCommand::List { json } => {
            let list = db.list_tenants().await.map_err(store_err)?;
            if json {
                output::print_json(&list);
            } else {
                let rows = list
                    .iter()
                    .map(|t| vec![t.id.to_string(), t.name.clone(), ts(t.created_at)])
                    .collect::<Vec<_>>();
                print!("{}", output::table(&["ID", "NAME", "CREATED"], &rows));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The password of a new user: all of standard input (one trailing newline
/// dropped) with `--password-stdin`, else a prompt without echo on a terminal.
fn read_password(email: &str, from_stdin: bool) -> Result<String, CliError> {
    if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("cannot read the password from stdin: {e}")))?;
        let text = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        return Ok(text.to_string());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(CliError::Usage(
            "no password given: standard input is not a terminal; pipe the password in with --password-stdin".into(),
        ));
    }
    let first = prompt_hidden(&format!("Password for {email}: "))?;
    let again = prompt_hidden("Repeat the password: ")?;
    if first != again {
        return Err(CliError::Usage("the two passwords differ".into()));
    }
    Ok(first)
}

/// Prompt on stderr and read one line from the terminal with echo off
/// (through `stty`, so no terminal library is needed).
fn prompt_hidden(prompt: &str) -> Result<String, CliError> {
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    };
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let hidden = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if hidden {
        stty("echo");
        eprintln!();
    }
    read.map_err(|e| CliError::Usage(format!("cannot read the password: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub async fn users(db: &dyn Database, command: UsersCommand) -> Result<ExitCode, CliError> {
    match command {
        UsersCommand::Create {
            tenant,
            email,
            role,
            password_stdin,
            json,
        } => {
            let role: Role = role
                .parse()
                .map_err(|e: sever_core::InvalidInput| CliError::Usage(e.to_string()))?;
            let password = read_password(&email, password_stdin)?;
            if password.is_empty() {
                return Err(CliError::Usage("password: must not be empty".into()));
            }
            if password.chars().count() < MIN_PASSWORD_LEN {
                return Err(CliError::Usage(format!(
                    "password: must be at least {MIN_PASSWORD_LEN} characters"
                )));
            }
            let tenant = resolve_tenant(db, &tenant, true).await?;
            let user = sever_server::create_user(
                db,
                &SystemClock,
                tenant,
                &email,
                role,
                &password,
                &actor(tenant),
            )
            .await?;
            if json {
                output::print_json(&json!({
                    "id": user.id,
                    "tenant_id": user.tenant_id,
                    "email": user.email,
                    "role": user.role,
                    "created_at": user.created_at,
                }));
            } else {
                println!(
                    "Created {} {} in tenant {} (user id {}).",
                    user.role, user.email, user.tenant_id, user.id
                );
            }
        }
        UsersCommand::List { tenant, json } => {
            let tenant = resolve_tenant(db, &tenant, false).await?;
            let list = db.list_users(tenant).await.map_err(store_err)?;
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|u| {
                        json!({
                            "id": u.id,
                            "email": u.email,
                            "role": u.role,
                            "created_at": u.created_at,
                            "disabled": u.disabled,
                        })
                    })
                    .collect();
                output::print_json(&v);
            } else {
                let rows = list
                    .iter()
                    .map(|u| {
                        vec![
                            u.email.clone(),
                            u.role.to_string(),
                            if u.disabled { "disabled" } else { "active" }.into(),
                            ts(u.created_at),
                            u.id.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                print!(
                    "{}",
                    output::table(&["EMAIL", "ROLE", "STATE", "CREATED", "ID"], &rows)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn keys(
    config: &crate::config::Config,
    db: &dyn Database,
    command: KeysCommand,
) -> Result<ExitCode, CliError> {
    match command {
        KeysCommand::Create {
            tenant,
            name,
            scopes,
            json,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(str::parse::<Scope>)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CliError::Usage(e.to_string()))?;
            let tenant = resolve_tenant(db, &tenant, true).await?;
            let new = sever_server::create_api_key(
                db,
                &SystemClock,
                tenant,
                &name,
                &scopes,
                &actor(tenant),
            )
            .await?;
            let k = &new.key;
            if json {
                output::print_json(&json!({
                    "id": k.id,
                    "tenant_id": k.tenant_id,
                    "name": k.name,
                    "prefix": k.prefix,
                    "scopes": k.scopes,
                    "created_at": k.created_at,
                    "key": new.plaintext,
                }));
            } else {
                println!("{}", new.plaintext);
            }
            eprintln!(
                "Created API key {} '{}' ({}) in tenant {}.\nStore it now: it is not shown again.",
                k.id,
                k.name,
                k.scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                k.tenant_id
            );
        }
        KeysCommand::List { tenant, json } => {
            let tenant = resolve_tenant(db, &tenant, false).await?;
            let list = db.list_api_keys(tenant).await.map_err(store_err)?;
            if json {
                output::print_json(&list);
            } else {
                let rows = list
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.to_string(),
                            k.name.clone(),
                            format!("{}…", k.prefix),
                            k.scopes
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                            ts(k.created_at),
                            k.last_used_at.map(ts).unwrap_or_else(|| "never".into()),
                            k.revoked_at
                                .map(|t| format!("revoked {}", ts(t)))
                                .unwrap_or_else(|| "live".into()),
                        ]
                    })
                    .collect::<Vec<_>>();
                print!(
                    "{}",
                    output::table(
                        &[
                            "ID",
                            "NAME",
                            "PREFIX",
                            "SCOPES",
                            "CREATED",
                            "LAST USED",
                            "STATE"
                        ],
                        &rows
                    )
                );
            }
        }
        KeysCommand::Revoke { tenant, id } => {
            let tenant = resolve_tenant(db, &tenant, false).await?;
            let id = Uuid::parse_str(id.trim())
                .map_err(|_| CliError::Usage(format!("'{id}' is not an API key id (a UUID)")))?;
            sever_server::revoke_api_key(db, &SystemClock, tenant, id, &actor(tenant)).await?;
            println!("Revoked API key {id}.");
        }
        KeysCommand::Rotate { json } => return crate::rotate::run(config, db, json).await,
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(db: &dyn Database, command: AuditCommand) -> Result<ExitCode, CliError> {
    match command {
        AuditCommand::Verify => match sever_store::verify_audit(db).await.map_err(store_err)? {
            Ok(n) => {
                println!("audit chain intact: {n} records");
                Ok(ExitCode::SUCCESS)
            }
            Err(broken) => {
                let seq = match broken {
                    sever_core::admin::ChainBreak::Edited { seq }
                    | sever_core::admin::ChainBreak::Broken { seq }
                    | sever_core::admin::ChainBreak::Gap { seq, .. } => seq,
                };
                Err(CliError::Runtime(format!(
                    "audit chain broken at seq {seq}: {broken}"
                )))
            }
        },
        AuditCommand::Export { tenant, after_seq } => {
            let tenant = match tenant {
                Some(t) => Some(resolve_tenant(db, &t, false).await?),
                None => None,
            };
            let mut after = after_seq;
            let mut count = 0u64;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            loop {
                let page = db
                    .list_audit(&AuditQuery {
                        tenant_id: tenant,
                        after_seq: after,
                        limit: 1000,
                    })
                    .await
                    .map_err(store_err)?;
                let Some(last) = page.last() else { break };
                after = Some(last.seq);
                for r in &page {
                    let line = serde_json::to_string(r)
                        .map_err(|e| CliError::Runtime(format!("cannot render a record: {e}")))?;
                    writeln!(out, "{line}").map_err(|e| {
                        CliError::Runtime(format!("cannot write to standard output: {e}"))
                    })?;
                    count += 1;
                }
            }
            out.flush()
                .map_err(|e| CliError::Runtime(format!("cannot write to standard output: {e}")))?;
            let who = actor(tenant.unwrap_or(TenantId::DEFAULT));
            let ev = who
                .event(
                    &SystemClock as &dyn Clock,
                    "audit.export",
                    sever_server::audit::Decision::Allowed,
                )
                .result(format!("{count} records"))
                .detail(json!({
                    "tenant": tenant.map(|t| t.to_string()),
                    "after_seq": after_seq,
                    "records": count,
                }))
                .build();
            db.append_audit(&ev).await.map_err(store_err)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
