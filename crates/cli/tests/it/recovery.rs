//! A `sever` process killed with SIGKILL mid-run loses nothing: the next start
//! finishes the request without repeating any provider call that finished.

use std::time::Duration;

use sever_sim::{Fault, FaultKind, Provider, Step};

use crate::helpers::*;

async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_flight_is_resumed_and_finished_on_the_next_start() {
    killed_mid_flight_and_resumed("").await;
}

/// `synchronous=NORMAL` gives up only power-loss durability: a killed
/// process still loses no committed outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sqlite_synchronous_normal_a_killed_run_still_loses_nothing() {
    killed_mid_flight_and_resumed("sqlite_synchronous = \"normal\"\n").await;
}

async fn killed_mid_flight_and_resumed(top_level: &str) {
    let h = Harness::start().await;
    h.edit_config(|t| {
        format!(
            "{top_level}{}",
            t.replace("attempt_timeout_ms = 5000", "attempt_timeout_ms = 60000")
        )
    });
    h.sim().set_fault(
        Provider::Slack,
        "alice@example.com",
        Fault {
            kind: FaultKind::Slow(Duration::from_secs(30)),
            step: Step::Revoke,
            times: Some(1),
        },
    );
    let mut child = h
        .command()
        .args(["revoke", "alice@example.com", "--yes", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    // Four connectors finish; Slack's revoke hangs in the simulator.
    let db = h.db_path();
    wait_until("four outcomes are recorded", async || {
        db.exists()
            && try_count_rows(
                &db,
                "SELECT COUNT(*) FROM revocation_results WHERE outcome IS NOT NULL",
            )
            .await
            .is_ok_and(|n| n == 4)
    })
    .await;
    // The simulator records a call when it ends; Slack's lookup has ended, so
    // its revoke (held for 30 s, longer than the attempt timeout) is in flight.
    wait_until("slack's lookup is done", async || {
        h.sim()
            .calls_to(Provider::Slack)
            .iter()
            .any(|c| c.step == Step::Lookup)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    child.kill().unwrap(); // SIGKILL
    assert!(
        !child.wait().unwrap().success(),
        "killed mid-run, not finished"
    );
    assert_eq!(
        count_rows(
            &db,
            "SELECT COUNT(*) FROM revocation_requests WHERE status = 'running'"
        )
        .await,
        1,
        "the killed run is left running, not lost"
    );

    let run = h.sever(&["resume", "--json"]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let resumed: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let req = &resumed[0];
    assert_eq!(req["status"], "completed", "{req:#}");
    assert_eq!(outcome(req, "slack_enterprise")["outcome"], "revoked");

    // No finished provider call was repeated; only Slack's interrupted one was.
    let revokes = |p| {
        h.sim()
            .calls_to(p)
            .into_iter()
            .filter(|c| c.step == Step::Revoke)
            .count()
    };
    for p in [
        Provider::Okta,
        Provider::Entra,
        Provider::Google,
        Provider::Miro,
    ] {
        assert_eq!(revokes(p), 1, "{p:?} revoked once");
    }
    assert_eq!(revokes(Provider::Slack), 2);

    // A second resume finds nothing left.
    let again = h.sever(&["resume", "--json"]).await;
    assert_eq!(again.stdout().trim(), "[]");
}
