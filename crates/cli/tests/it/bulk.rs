//! `sever bulk` (issue 7): the seed's CSV as is, bad rows reported by line,
//! an export with a column per connector, approval above a threshold, and
//! a SIGKILL mid-job followed by `sever bulk resume` that skips nobody and
//! repeats no provider call.

use std::time::Duration;

use sever_sim::{Directory, Provider, SimOptions, Sims, Step};

use crate::helpers::{count_rows, wait_for, Harness};

async fn harness(people: usize, latency: Duration) -> Harness {
    let sims = Sims::start(
        Directory::generated(people, "example.com"),
        SimOptions {
            latency,
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    sever_cli::demo::write_config(&sims, &dir.path().join("sever.toml")).unwrap();
    Harness { sims, dir }
}

fn write_csv(h: &Harness, name: &str, body: &str) -> String {
    let path = h.dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

fn people_csv(n: usize) -> String {
    // As a person writes it for the seed's Import-Csv loop: CRLF, a BOM, quotes.
    let mut s = "\u{feff}\"UserPrincipalName\"\r\n".to_string();
    for i in 1..=n {
        s.push_str(&format!("\"user{i:05}@example.com\"\r\n"));
    }
    s
}

/// Slack `admin.users.session.resetBulk` calls and the user ids each carried.
fn reset_bulk_calls(h: &Harness) -> Vec<Vec<String>> {
    h.sim()
        .calls_to(Provider::Slack)
        .iter()
        .filter(|c| c.path.ends_with("/admin.users.session.resetBulk") && c.status == 200)
        .map(|c| {
            let body: serde_json::Value = serde_json::from_str(&c.body).unwrap();
            body["user_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// People whose revocation a provider answered with success (a Slack
/// `resetBulk` counts each user id it carried).
fn revokes(h: &Harness, p: Provider) -> usize {
    let single = h
        .sim()
        .calls_to(p)
        .iter()
        .filter(|c| c.step == Step::Revoke && (200..300).contains(&c.status))
        .filter(|c| !c.path.ends_with("/admin.users.session.resetBulk"))
        .count();
    let batched = if p == Provider::Slack {
        reset_bulk_calls(h).iter().map(Vec::len).sum()
    } else {
        0
    };
    single + batched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_is_revoked_with_few_reset_bulk_calls_and_each_person_keeps_its_own_record() {
    let n = 120;
    let h = harness(n, Duration::from_millis(20)).await;
    let csv = write_csv(&h, "users.csv", &people_csv(n));
    let export = h.dir.path().join("results.csv");
    let run = h
        .sever(&[
            "bulk",
            "revoke",
            "--csv",
            &csv,
            "--reason",
            "token theft",
            "--targets",
            "slack_enterprise",
            "--export",
            export.to_str().unwrap(),
            "--yes",
        ])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stderr().contains(&format!("{n} completed, 0 failed")),
        "{}",
        run.stderr()
    );
    // Far fewer Slack revoke calls than people, none of them one by one.
    let batches = reset_bulk_calls(&h);
    assert!(
        batches.len() * 5 <= n,
        "{} resetBulk calls for {n} people",
        batches.len()
    );
    let singles = h
        .sim()
        .calls_to(Provider::Slack)
        .iter()
        .filter(|c| c.path.ends_with("/admin.users.session.reset"))
        .count();
    assert_eq!(singles, 0);
    let mut ids: Vec<String> = batches.concat();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "each person in exactly one batch");
    assert_eq!(revoked(&h, Provider::Slack), emails(n, |_| true));
    // Every person's own record: outcome revoked, one attempt noting the enqueued resetBulk.
    let db = h.db_path();
    assert_eq!(
        count_rows(
            &db,
            "SELECT COUNT(*) FROM revocation_results WHERE instance = 'slack_enterprise' \
             AND outcome = 'revoked' AND subject_id IS NOT NULL"
        )
        .await,
        n as i64
    );
    assert_eq!(
        count_rows(
            &db,
            "SELECT COUNT(*) FROM revocation_attempts WHERE instance = 'slack_enterprise' \
             AND step = 'revoke' AND http_status = 200 AND provider_code = 'resetBulk_enqueued'"
        )
        .await,
        n as i64
    );
    let text = std::fs::read_to_string(&export).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), n, "{text}");
    assert!(rows.iter().all(|r| r.ends_with(",revoked")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_is_revoked_in_bulk_with_bad_rows_reported_and_exported() {
    let h = harness(20, Duration::ZERO).await;
    let mut body = people_csv(12);
    body.push_str(
        "\r\nnot an address@@\r\n=cmd|' /C calc'!A0@example.com\r\nuser00013@example.com\r\n",
    );
    let csv = write_csv(&h, "users.csv", &body);
    let export = h.dir.path().join("results.csv");
    let run = h
        .sever(&[
            "bulk",
            "revoke",
            "--csv",
            &csv,
            "--reason",
            "token theft",
            "--incident",
            "INC-7",
            "--export",
            export.to_str().unwrap(),
            "--protect",
            "user00002@example.com",
            "--yes",
        ])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let err = run.stderr();
    assert!(err.contains("line 15: skipped"), "{err}");
    assert!(err.contains("line 16: skipped"), "{err}");
    assert!(
        err.contains("12 completed, 0 failed, 1 skipped, 2 invalid"),
        "{err}"
    );
    for p in Provider::ALL {
        assert_eq!(revokes(&h, p), 12, "{p:?}");
    }

    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 16, "{text}");
    assert_eq!(
        lines[0],
        "line,username,status,error,request_id,entra,google_workspace,miro,okta,slack_enterprise"
    );
    assert!(
        lines[1].starts_with("2,user00001@example.com,completed,,"),
        "{text}"
    );
    assert!(
        lines[1].ends_with(",revoked,revoked,revoked,tokens_revoked,revoked"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("3,user00002@example.com,skipped,protected"),
        "{text}"
    );
    // The formula-looking row is neutralised in the export.
    assert!(lines[14].starts_with("16,'=cmd"), "{}", lines[14]);
    assert_eq!(
        count_rows(
            &h.db_path(),
            "SELECT COUNT(*) FROM bulk_jobs WHERE incident_id = 'INC-7' AND state = 'completed'"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_people_than_the_threshold_wait_for_approval() {
    let h = harness(10, Duration::ZERO).await;
    let csv = write_csv(&h, "users.csv", &people_csv(10));
    let run = h
        .sever(&[
            "bulk",
            "revoke",
            "--csv",
            &csv,
            "--reason",
            "breach",
            "--yes",
            "--approval-threshold",
            "5",
        ])
        .await;
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(
        run.stderr().contains("sever bulk approve"),
        "{}",
        run.stderr()
    );
    assert_eq!(revokes(&h, Provider::Okta), 0);
    let jobs = h.sever(&["bulk", "list", "--json"]).await;
    let jobs: serde_json::Value = serde_json::from_str(&jobs.stdout()).unwrap();
    assert_eq!(jobs[0]["state"], "pending_approval");
    let id = jobs[0]["id"].as_str().unwrap().to_string();
    // A resume does not run it either.
    let run = h.sever(&["bulk", "resume"]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(revokes(&h, Provider::Okta), 0);
    let run = h.sever(&["bulk", "approve", &id]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(revokes(&h, Provider::Okta), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_mid_run_resumes_without_skipping_or_repeating() {
    let n = 120;
    let h = harness(n, Duration::from_millis(15)).await;
    let csv = write_csv(&h, "users.csv", &people_csv(n));
    let mut child = h
        .command()
        .args([
            "bulk",
            "revoke",
            "--csv",
            &csv,
            "--reason",
            "breach",
            "--yes",
            "--concurrency",
            "4",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let db = h.db_path();
    wait_for("a third of the people are done", 60, async || {
        // The child may not have created the tables yet.
        db.exists()
            && crate::helpers::try_count_rows(
                &db,
                "SELECT COUNT(*) FROM revocation_requests WHERE status = 'completed'",
            )
            .await
            .unwrap_or(0)
                >= (n / 3) as i64
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success());
    let done = count_rows(
        &db,
        "SELECT COUNT(*) FROM revocation_requests WHERE status = 'completed'",
    )
    .await;
    assert!(done < n as i64, "killed before the end ({done})");

    let run = h.sever(&["bulk", "resume"]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        count_rows(
            &db,
            "SELECT COUNT(*) FROM revocation_requests WHERE status = 'completed'"
        )
        .await,
        n as i64
    );
    // One request per person, and each provider revoked each person once
    // (a call in flight at the kill may be repeated: it never finished).
    assert_eq!(
        count_rows(
            &db,
            "SELECT COUNT(DISTINCT username) FROM revocation_requests"
        )
        .await,
        n as i64
    );
    assert_eq!(
        count_rows(&db, "SELECT COUNT(*) FROM revocation_requests").await,
        n as i64
    );
    for p in Provider::ALL {
        let got = revokes(&h, p);
        assert!(
            (n..=n + 4).contains(&got),
            "{p:?}: {got} revokes for {n} people"
        );
    }
    let status = h.sever(&["bulk", "list", "--json"]).await;
    let jobs: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(jobs[0]["state"], "completed");
}

// ---- people from a connector's directory: --all, --risky, --group ----

async fn harness_of(dir: Directory, opts: SimOptions) -> Harness {
    let sims = Sims::start(dir, opts).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    sever_cli::demo::write_config(&sims, &dir.path().join("sever.toml")).unwrap();
    Harness { sims, dir }
}

/// The demo Entra app, also allowed to read risky users and group members.
fn directory_roles() -> SimOptions {
    let mut roles = SimOptions::default().entra_roles;
    roles.push("IdentityRiskyUser.Read.All".into());
    roles.push("GroupMember.Read.All".into());
    SimOptions {
        entra_roles: roles,
        ..SimOptions::default()
    }
}

fn emails(n: usize, keep: impl Fn(usize) -> bool) -> Vec<String> {
    (1..=n)
        .filter(|&i| keep(i))
        .map(|i| format!("user{i:05}@example.com"))
        .collect()
}

fn revoked(h: &Harness, p: Provider) -> Vec<String> {
    let mut v = h.sim().revoked(p);
    v.sort();
    v
}

async fn jobs(h: &Harness) -> Vec<serde_json::Value> {
    let run = h.sever(&["bulk", "list", "--json"]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    serde_json::from_str::<serde_json::Value>(&run.stdout())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_revokes_everyone_in_the_connectors_directory_page_by_page() {
    let n = 450;
    let h = harness_of(
        Directory::generated(n, "example.com"),
        SimOptions::default(),
    )
    .await;
    for (name, p) in [("okta", Provider::Okta), ("miro", Provider::Miro)] {
        let run = h
            .sever(&[
                "bulk",
                "revoke",
                "--all",
                "--connector",
                name,
                "--targets",
                name,
                "--reason",
                "org-wide compromise",
                "--yes",
            ])
            .await;
        assert_eq!(run.code(), 0, "{name}: {}", run.stderr());
        let mut want = emails(n, |_| true);
        if p == Provider::Okta {
            want.push("admin@example.com".into());
            want.sort();
        }
        assert_eq!(revoked(&h, p), want, "{name}");
        assert_eq!(revokes(&h, p), want.len(), "{name}: each person once");
        assert!(
            run.stderr()
                .contains(&format!("{} completed, 0 failed", want.len())),
            "{}",
            run.stderr()
        );
        // Several pages were read (Okta 200 a page, Miro 100).
        let pages = h
            .sim()
            .calls_to(p)
            .iter()
            .filter(|c| {
                c.method == "GET"
                    && (c.path == "/api/v1/users" || c.path.ends_with("/members"))
                    && c.query.as_deref().is_some_and(|q| !q.contains("emails="))
            })
            .count();
        assert!(pages >= 3, "{name}: {pages} pages");
    }
    let jobs = jobs(&h).await;
    let sources: Vec<&str> = jobs.iter().map(|j| j["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["miro:all", "okta:all"]);
    assert!(jobs.iter().all(|j| j["state"] == "completed"), "{jobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risky_high_revokes_exactly_the_high_risk_users() {
    let n = 300;
    let h = harness_of(Directory::generated(n, "example.com"), directory_roles()).await;
    let run = h
        .sever(&[
            "bulk",
            "revoke",
            "--risky",
            "high",
            "--connector",
            "entra",
            "--targets",
            "entra",
            "--reason",
            "risky sign-ins",
            "--yes",
        ])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let high = emails(n, |i| i % 20 == 7);
    assert_eq!(high.len(), 15);
    assert_eq!(revoked(&h, Provider::Entra), high);
    assert_eq!(jobs(&h).await[0]["source"], "entra:risky:high");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_revokes_exactly_the_groups_user_members() {
    let n = 300;
    let dir = Directory::generated(n, "example.com");
    let cases = [
        ("okta", Provider::Okta, dir.group_key(Provider::Okta, "eng")),
        (
            "entra",
            Provider::Entra,
            dir.group_key(Provider::Entra, "eng"),
        ),
        (
            "google_workspace",
            Provider::Google,
            dir.group_key(Provider::Google, "eng"),
        ),
    ];
    let h = harness_of(dir, directory_roles()).await;
    let eng = emails(n, |i| i % 3 == 0);
    for (name, p, key) in &cases {
        let run = h
            .sever(&[
                "bulk",
                "revoke",
                "--group",
                key,
                "--connector",
                name,
                "--targets",
                name,
                "--reason",
                "team laptop stolen",
                "--yes",
            ])
            .await;
        assert_eq!(run.code(), 0, "{name}: {}", run.stderr());
        // The nested group eng-oncall (Entra, Google) is not a person.
        assert!(!run.stderr().contains("skipped:"), "{}", run.stderr());
        assert_eq!(revoked(&h, *p), eng, "{name}");
        let jobs = jobs(&h).await;
        assert_eq!(jobs[0]["source"], format!("{name}:group:{key}"));
        assert_eq!(jobs[0]["rows"], eng.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_source_combinations_answer_a_clear_error_and_create_no_job() {
    let h = harness(5, Duration::ZERO).await;
    let csv = write_csv(&h, "users.csv", &people_csv(2));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![],
            "exactly one of --csv FILE, --all, --risky LEVEL or --group GROUP",
        ),
        (
            vec!["--csv", &csv, "--all", "--connector", "okta"],
            "(got --csv and --all)",
        ),
        (vec!["--all", "--group", "eng"], "(got --all and --group)"),
        (vec!["--all"], "--all needs --connector NAME"),
        (vec!["--group", "eng"], "--group needs --connector NAME"),
        (
            vec!["--csv", &csv, "--connector", "okta"],
            "--connector goes with --all",
        ),
        (
            vec!["--all", "--connector", "nosuch"],
            "no connector named \"nosuch\"",
        ),
        (
            vec!["--risky", "extreme", "--connector", "entra"],
            "low, medium or high",
        ),
        (
            vec!["--risky", "high", "--connector", "okta"],
            "--risky works only with an Entra connector: Okta (okta)",
        ),
        (
            vec!["--risky", "high", "--connector", "google_workspace"],
            "--risky works only with an Entra connector",
        ),
        (
            vec!["--group", "eng", "--connector", "slack_enterprise"],
            "--group: Slack (slack_enterprise) has no groups Sever can read",
        ),
        (
            vec!["--group", "eng", "--connector", "miro"],
            "--group: Miro (miro) has no groups Sever can read",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["bulk", "revoke", "--reason", "test", "--yes"];
        args.extend(extra.iter().copied());
        let run = h.sever(&args).await;
        assert_ne!(run.code(), 0, "{args:?}");
        assert!(run.stderr().contains(want), "{args:?}: {}", run.stderr());
    }
    // A disabled connector's directory is not read either.
    h.edit_config(|t| {
        t.replace(
            "provider = \"miro\"\n",
            "provider = \"miro\"\nenabled = false\n",
        )
    });
    let run = h
        .sever(&[
            "bulk",
            "revoke",
            "--all",
            "--connector",
            "miro",
            "--reason",
            "test",
            "--yes",
        ])
        .await;
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("--all: connector miro is disabled"),
        "{}",
        run.stderr()
    );
    assert!(jobs(&h).await.is_empty());
    for p in Provider::ALL {
        assert_eq!(revokes(&h, p), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_while_listing_resumes_without_skipping_or_repeating_anyone() {
    let n = 2500;
    let h = harness_of(
        Directory::generated(n, "example.com"),
        SimOptions::default(),
    )
    .await;
    // Miro pages by 100 and Sever stores 1,000 at a time: 25 slow pages, killed
    // once the first thousand are stored.
    h.sim().set_latency(Duration::from_millis(100));
    let mut child = h
        .command()
        .args([
            "bulk",
            "revoke",
            "--all",
            "--connector",
            "miro",
            "--targets",
            "miro",
            "--reason",
            "breach",
            "--yes",
            "--approval-threshold",
            "5000",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let db = h.db_path();
    wait_for("a first batch is stored", 60, async || {
        db.exists()
            && crate::helpers::try_count_rows(&db, "SELECT COUNT(*) FROM bulk_items")
                .await
                .unwrap_or(0)
                >= 1000
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success());
    let stored = count_rows(&db, "SELECT COUNT(*) FROM bulk_items").await;
    assert!(
        stored < n as i64,
        "killed before the end of the listing ({stored})"
    );
    assert_eq!(
        revokes(&h, Provider::Miro),
        0,
        "nothing runs before the listing ends"
    );

    h.sim().set_latency(Duration::ZERO);
    let run = h
        .sever(&["bulk", "resume", "--approval-threshold", "5000"])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stderr().contains("skipping the"), "{}", run.stderr());
    assert_eq!(
        count_rows(&db, "SELECT COUNT(DISTINCT username) FROM bulk_items").await,
        n as i64
    );
    assert_eq!(
        count_rows(&db, "SELECT COUNT(*) FROM bulk_items").await,
        n as i64
    );
    assert_eq!(revoked(&h, Provider::Miro), emails(n, |_| true));
    assert_eq!(revokes(&h, Provider::Miro), n);
    assert_eq!(jobs(&h).await[0]["state"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_file_decides_a_bulk_run_its_protected_accounts_are_never_called() {
    let h = harness(6, Duration::ZERO).await;
    std::fs::write(
        h.dir.path().join("policy.json"),
        r#"{"version": "1", "default": "allow",
            "protected_accounts": [{"accounts": ["user00002@*"], "action": "refuse"}]}"#,
    )
    .unwrap();
    h.edit_config(|t| format!("policy_file = \"policy.json\"\n{t}"));
    let csv = write_csv(&h, "users.csv", &people_csv(4));
    let run = h
        .sever(&[
            "bulk", "revoke", "--csv", &csv, "--reason", "breach", "--yes",
        ])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stderr().contains("3 completed, 0 failed, 1 skipped"),
        "{}",
        run.stderr()
    );
    let named = |who: &str| {
        Provider::ALL
            .iter()
            .flat_map(|p| h.sim().calls_to(*p))
            .filter(|c| {
                format!("{} {} {}", c.path, c.query.as_deref().unwrap_or(""), c.body).contains(who)
            })
            .count()
    };
    assert_eq!(named("user00002"), 0, "a protected account is never called");
    assert!(named("user00001") > 0);

    // A policy that refuses bulk runs cancels the job: nothing is called.
    std::fs::write(
        h.dir.path().join("policy.json"),
        r#"{"version": "1", "default": "allow", "tools": {"bulk_revoke": {"action": "deny"}}}"#,
    )
    .unwrap();
    h.sim().reset_calls();
    let run = h
        .sever(&[
            "bulk", "revoke", "--csv", &csv, "--reason", "breach", "--yes",
        ])
        .await;
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr().contains("bulk_revoke is denied"),
        "{}",
        run.stderr()
    );
    assert_eq!(revokes(&h, Provider::Okta), 0);
    let jobs = h.sever(&["bulk", "list", "--json"]).await;
    let jobs: serde_json::Value = serde_json::from_str(&jobs.stdout()).unwrap();
    assert_eq!(jobs[0]["state"], "cancelled");
}
