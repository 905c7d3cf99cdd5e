//! Administration from the CLI: tenants, users and API keys made on the
//! database's machine and used against `sever serve`; the audit trail
//! verified and exported; the master key rotated with stored secrets still
//! working afterwards.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sever_server::signature::sign_plain;

use crate::helpers::*;

fn json_of(run: &Run) -> Value {
    assert_eq!(run.code(), 0, "stderr: {}", run.stderr());
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

fn lines_of(run: &Run) -> Vec<Value> {
    assert_eq!(run.code(), 0, "stderr: {}", run.stderr());
    run.stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_users_and_keys_made_on_the_cli_work_against_the_served_api_and_are_audited() {
    let h = Harness::start().await;

    let run = h.sever(&["tenants", "create", "--name", "Acme"]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let acme = run.stdout().trim().to_string();
    uuid::Uuid::parse_str(&acme).unwrap();
    let other = json_of(
        &h.sever(&["tenants", "create", "--name", "Globex", "--json"])
            .await,
    );
    let listed = json_of(&h.sever(&["tenants", "list", "--json"]).await);
    let names: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{listed}");
    assert!(names.contains(&"Acme") && names.contains(&"Globex"));
    let bad = h.sever(&["tenants", "create", "--name", " "]).await;
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
    assert!(bad.stderr().contains("name"), "{}", bad.stderr());

    // Passwords come from stdin here; empty and short ones change nothing.
    let create_user = |password: &'static str| {
        let h = &h;
        let acme = acme.clone();
        async move {
            h.sever_with_stdin(
                &[
                    "users",
                    "create",
                    "--tenant",
                    &acme,
                    "--email",
                    "ada@example.com",
                    "--role",
                    "admin",
                    "--password-stdin",
                ],
                password,
            )
            .await
        }
    };
    for (pw, why) in [("\n", "must not be empty"), ("short-pw\n", "at least 12")] {
        let run = create_user(pw).await;
        assert_eq!(run.code(), 2, "{}", run.stderr());
        assert!(run.stderr().contains(why), "{}", run.stderr());
    }
    let no_stdin = h
        .sever(&[
            "users",
            "create",
            "--tenant",
            &acme,
            "--email",
            "x@example.com",
            "--role",
            "viewer",
        ])
        .await;
    assert_eq!(no_stdin.code(), 2);
    assert!(
        no_stdin.stderr().contains("--password-stdin"),
        "{}",
        no_stdin.stderr()
    );
    let run = create_user("correct horse battery staple\n").await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let again = create_user("correct horse battery staple\n").await;
    assert_eq!(again.code(), 1, "a duplicate: {}", again.stderr());
    let bad_role = h
        .sever_with_stdin(
            &[
                "users",
                "create",
                "--tenant",
                "Acme",
                "--email",
                "b@example.com",
                "--role",
                "root",
                "--password-stdin",
            ],
            "long enough password",
        )
        .await;
    assert_eq!(bad_role.code(), 2);
    assert!(bad_role.stderr().contains("unknown role 'root'"));
    let users = h.sever(&["users", "list", "--tenant", "Acme"]).await;
    assert_eq!(users.code(), 0, "{}", users.stderr());
    assert!(
        users.stdout().contains("ada@example.com"),
        "{}",
        users.stdout()
    );
    assert!(users.stdout().contains("admin"));
    assert!(
        !users.stdout().contains("argon2"),
        "no password hash is shown"
    );
    assert!(!users.stdout().contains("battery"));

    // Keys: shown once, by tenant name or id; `default` works too.
    let run = h
        .sever(&[
            "keys",
            "create",
            "--tenant",
            "Acme",
            "--name",
            "soar",
            "--scopes",
            "sessions:revoke,sessions:read",
        ])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let key = run.stdout().trim().to_string();
    assert!(key.starts_with("sk_"), "{key}");
    assert!(run.stderr().contains("not shown again"), "{}", run.stderr());
    let bad_scope = h
        .sever(&[
            "keys", "create", "--tenant", "Acme", "--name", "x", "--scopes", "root",
        ])
        .await;
    assert_eq!(bad_scope.code(), 2);
    assert!(bad_scope.stderr().contains("unknown scope 'root'"));
    let default_key = json_of(
        &h.sever(&[
            "keys", "create", "--tenant", "default", "--name", "cli", "--scopes", "admin", "--json",
        ])
        .await,
    );
    assert_eq!(
        default_key["tenant_id"],
        sever_core::TenantId::DEFAULT.to_string()
    );
    let listed = h
        .sever(&["keys", "list", "--tenant", &acme, "--json"])
        .await;
    let keys = json_of(&listed);
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert!(
        !listed.stdout().contains(&key),
        "the key itself is never listed"
    );
    let key_id = keys[0]["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(keys[0]["prefix"].as_str().unwrap()));

    // The key works against the server until it is revoked.
    let served = h.serve().await;
    let api = Api::new(&served.base, &key);
    let a = api.call(Method::GET, "/api/v1/revocations", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let wrong_tenant = h
        .sever(&["keys", "revoke", "--tenant", "Globex", &key_id])
        .await;
    assert_eq!(wrong_tenant.code(), 2, "{}", wrong_tenant.stderr());
    let revoked = h
        .sever(&["keys", "revoke", "--tenant", &acme, &key_id])
        .await;
    assert_eq!(revoked.code(), 0, "{}", revoked.stderr());
    let a = api.call(Method::GET, "/api/v1/revocations", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    drop(served);

    // Every change is in the chain, and the chain is intact.
    let verify = h.sever(&["audit", "verify"]).await;
    assert_eq!(verify.code(), 0, "{}", verify.stderr());
    assert!(
        verify.stdout().starts_with("audit chain intact: "),
        "{}",
        verify.stdout()
    );
    let records = lines_of(&h.sever(&["audit", "export", "--tenant", "Acme"]).await);
    let actions: Vec<_> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for expected in [
        "tenant.create",
        "user.create",
        "api_key.create",
        "api_key.revoke",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    assert!(records.iter().all(|r| r["tenant_id"] == acme.as_str()));
    let by_cli: Vec<_> = records.iter().filter(|r| r["channel"] == "cli").collect();
    assert!(by_cli.len() >= 4);
    assert!(by_cli
        .iter()
        .all(|r| r["decision"] == "allowed" && r["actor"].as_str().unwrap().starts_with("cli:")));
    assert!(
        records
            .iter()
            .any(|r| r["channel"] == "api" && r["decision"] == "denied"),
        "the revoked key's refused call is recorded too"
    );
    let user_rec = records
        .iter()
        .find(|r| r["action"] == "user.create")
        .unwrap();
    assert_eq!(user_rec["target"], "ada@example.com");
    assert!(!user_rec.to_string().contains("battery"));
    let seq = records[1]["seq"].as_i64().unwrap();
    let after = lines_of(
        &h.sever(&[
            "audit",
            "export",
            "--tenant",
            &acme,
            "--after-seq",
            &seq.to_string(),
        ])
        .await,
    );
    assert_eq!(after[0]["seq"], records[2]["seq"]);
    assert!(after.iter().all(|r| r["seq"].as_i64().unwrap() > seq));
    let all = lines_of(&h.sever(&["audit", "export"]).await);
    assert!(all.iter().any(|r| r["tenant_id"] == other["id"]));
    assert!(
        all.iter().any(|r| r["action"] == "audit.export"),
        "exports are recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_audit_record_is_found_by_audit_verify() {
    use sqlx::Connection;
    let h = Harness::start().await;
    tenant_and_admin_key(&h, "Acme").await;
    let verify = h.sever(&["audit", "verify"]).await;
    assert_eq!(verify.code(), 0, "{}", verify.stderr());
    assert_eq!(verify.stdout().trim(), "audit chain intact: 2 records");

    // The database refuses the edit...
    let url = format!("sqlite://{}", h.db_path().display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let refused = sqlx::query("UPDATE audit_log SET actor = 'cli:mallory' WHERE seq = 2")
        .execute(&mut conn)
        .await;
    assert!(refused.is_err(), "the trigger keeps the log append-only");
    // ...until someone with the file drops its trigger; the chain still tells.
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'cli:mallory' WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let verify = h.sever(&["audit", "verify"]).await;
    assert_eq!(verify.code(), 1, "{}", verify.stdout());
    assert!(
        verify
            .stderr()
            .contains("audit chain broken at seq 2: record 2 was edited"),
        "{}",
        verify.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_reseals_every_secret_and_stored_connectors_keep_working() {
    use sqlx::Connection;
    let h = Harness::start().await;
    let (tenant, key) = tenant_and_admin_key(&h, "Acme").await;
    let mut served = h.serve().await;
    let api = Api::new(&served.base, &key);
    for c in connector_configs(&h.sims) {
        let a = api.call(Method::POST, "/api/v1/connectors", Some(c)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    let a = api
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"revocation_enabled": true, "webhook_enabled": true})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let webhook_secret = a.body["webhook_signing_secret"]
        .as_str()
        .unwrap()
        .to_string();
    // A revocation leaves sealed provider tokens (Entra, Google) in the cache.
    let a = api
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "alice@example.com"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["status"], "completed", "{}", a.body);

    // Not while a server holds the old key in memory.
    let refused = h.sever(&["keys", "rotate"]).await;
    assert_eq!(refused.code(), 1, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("sever serve is using") && refused.stderr().contains("stop it"),
        "{}",
        refused.stderr()
    );
    assert!(served.terminate().await.success(), "{}", served.stderr());

    let key_file = h.dir.path().join("master.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let report = json_of(&h.sever(&["keys", "rotate", "--json"]).await);
    assert_eq!(report["connectors_resealed"], 5, "{report}");
    assert_eq!(report["webhook_secrets_resealed"], 1, "{report}");
    assert!(report["tokens_cleared"].as_u64().unwrap() >= 2, "{report}");
    let new_id = report["key_id"].as_str().unwrap().to_string();
    assert_eq!(report["previous_key_ids"].as_array().unwrap().len(), 1);
    assert_ne!(report["previous_key_ids"][0], new_id.as_str());
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert!(!new_key.contains(old_key.trim()), "the old key is gone");
    assert_eq!(new_key.lines().count(), 1);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let url = format!("sqlite://{}", h.db_path().display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let ids: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT secrets_key_id FROM connector_instances \
         UNION SELECT DISTINCT webhook_secret_key_id FROM tenant_settings \
         WHERE webhook_secret_key_id IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        ids,
        vec![(new_id.clone(),)],
        "everything is under the new key"
    );
    let (tokens,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM token_cache")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tokens, 0);
    conn.close().await.unwrap();

    // The restarted server opens every stored secret with the new key.
    let served = h.serve().await;
    let api = Api::new(&served.base, &key);
    for name in [
        "okta",
        "entra",
        "google_workspace",
        "slack_enterprise",
        "miro",
    ] {
        let a = api
            .call(
                Method::POST,
                &format!("/api/v1/connectors/{name}/test"),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body["ok"], true, "{name}: {}", a.body);
    }
    let a = api
        .call(
            Method::POST,
            "/api/v1/revocations",
            Some(json!({"username": "bob@example.com"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["status"], "completed", "{}", a.body);
    // The webhook secret is the same value, re-sealed. (Not alice again: the
    // server's default policy revokes a person at most once a minute.)
    let body = serde_json::to_vec(&json!({
        "tenant_id": tenant,
        "action": "revoke_sessions",
        "username": "erin@example.com",
        "reason": "after rotation",
        "integration_targets": ["okta"],
    }))
    .unwrap();
    let r = api
        .http
        .post(served.url("/api/v1/session-revocation/webhook"))
        .header("content-type", "application/json")
        .header(
            "X-Session-Revocation-Signature",
            sign_plain(webhook_secret.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let a = crate::server::answer(r).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["job_status"], "completed", "{}", a.body);
    drop(served);

    let verify = h.sever(&["audit", "verify"]).await;
    assert_eq!(verify.code(), 0, "{}", verify.stderr());
    let records = lines_of(&h.sever(&["audit", "export"]).await);
    let count = |action: &str| records.iter().filter(|r| r["action"] == action).count();
    assert_eq!(count("connector.reseal"), 5);
    assert_eq!(count("settings.reseal"), 1);
    assert_eq!(count("master_key.rotate"), 1);
    assert!(!records
        .iter()
        .any(|r| r.to_string().contains(&webhook_secret)));

    // With the key in SEVER_MASTER_KEY, sever cannot rewrite it: it says how.
    let inline = |envs: &[(&str, &str)]| {
        let mut c = h.command();
        for (k, v) in envs {
            c.env(k, v);
        }
        c.args(["keys", "rotate", "--json"]);
        tokio::task::spawn_blocking(move || Run(c.output().unwrap()))
    };
    let current = new_key.trim().to_string();
    let run = inline(&[("SEVER_MASTER_KEY", &current)]).await.unwrap();
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("SEVER_PREVIOUS_MASTER_KEY")
            && run.stderr().contains("openssl rand -base64 32"),
        "{}",
        run.stderr()
    );
    // Given the new key and the previous one, it re-seals everything.
    let next = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    let run = inline(&[
        ("SEVER_MASTER_KEY", next),
        ("SEVER_PREVIOUS_MASTER_KEY", &current),
    ])
    .await
    .unwrap();
    let report: Value = json_of(&run);
    assert_eq!(report["connectors_resealed"], 5, "{report}");
    assert_eq!(report["webhook_secrets_resealed"], 1, "{report}");
    let mut c = h.command();
    c.env("SEVER_MASTER_KEY", next);
    let served = Served::start(c).await;
    let api = Api::new(&served.base, &key);
    let a = api
        .call(Method::POST, "/api/v1/connectors/okta/test", None)
        .await;
    assert_eq!(a.body["ok"], true, "{}", a.body);
}
