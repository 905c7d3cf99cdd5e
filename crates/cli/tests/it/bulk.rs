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

fn revokes(h: &Harness, p: Provider) -> usize {
    h.sim()
        .calls_to(p)
        .iter()
        .filter(|c| c.step == Step::Revoke && (200..300).contains(&c.status))
        .count()
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
        db.exists()
            && count_rows(
                &db,
                "SELECT COUNT(*) FROM revocation_requests WHERE status = 'completed'",
            )
            .await
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
