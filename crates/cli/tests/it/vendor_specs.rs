//! Each connector's lookup and revoke calls, sent to Prism serving the
//! vendor's own API description with `--errors`: a request the vendor's
//! contract rejects (wrong path, method, parameter, content type or auth
//! shape) comes back 4xx and fails this test. Tokens still come from the
//! simulators, since the trimmed specs hold no token endpoints for Entra and
//! Google.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sever_connectors::{ConnectorConfig, HttpClient, MemoryTokenCache};
use sever_core::{
    CallContext, Lookup, Outcome, RetryPolicy, RiskLevel, Selection, Step, Subject, Username,
};
use sever_sim::{demo, Directory, Provider, SimOptions, Sims};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn prism_bin() -> PathBuf {
    let p = std::env::var_os("SEVER_PRISM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".ci/node_modules/.bin/prism"));
    assert!(
        p.exists(),
        "Prism is not installed at {}: run `npm ci --prefix .ci` (.ci/run does) or set SEVER_PRISM",
        p.display()
    );
    p
}

fn specs_dir() -> PathBuf {
    let d = std::env::var_os("SEVER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared"))
        .join("specs");
    assert!(d.is_dir(), "vendor specs not found at {}", d.display());
    d
}

struct Mock {
    child: Child,
    base: String,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Prism serving `spec` on a port that was free a moment ago, and a
/// receiver that gets `()` once Prism says it is listening. Its output is
/// read to the end, so Prism never blocks on a full pipe.
fn spawn_prism(spec: &str) -> (Mock, std::sync::mpsc::Receiver<()>) {
    use std::io::BufRead;
    let port = free_port();
    let mut child = Command::new(prism_bin())
        .args([
            "mock",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--errors",
        ])
        .arg(specs_dir().join(spec))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (listening, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("Prism is listening on") {
                let _ = listening.send(());
            }
        }
    });
    let mock = Mock {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    (mock, ready)
}

/// A Prism mock of each spec, each listening on its own port. Connecting to
/// the port is not proof: a process of a test running beside this one can
/// take the port between our pick and Prism's bind, and Prism then exits
/// (EADDRINUSE) while the port still answers. So each mock must say it is
/// listening, and one that exits first is started again on another port.
fn start_mocks<const N: usize>(specs: [&str; N]) -> [Mock; N] {
    let pending: Vec<_> = specs.iter().map(|s| spawn_prism(s)).collect();
    let mut mocks = Vec::new();
    for (spec, (mut mock, mut ready)) in specs.iter().zip(pending) {
        let mut tries = 1;
        while let Err(e) = ready.recv_timeout(Duration::from_secs(60)) {
            assert!(tries < 4, "Prism did not start serving {spec}: {e}");
            tries += 1;
            (mock, ready) = spawn_prism(spec);
        }
        mocks.push(mock);
    }
    let Ok(mocks) = mocks.try_into() else {
        unreachable!("one mock per spec")
    };
    mocks
}

/// Lookup, then revoke (the found subject, or `fallback` when the spec's
/// example is someone else); every call must be answered 2xx.
async fn exercise(cfg: serde_json::Value, fallback: &str) -> Vec<String> {
    let cfg: ConnectorConfig = serde_json::from_value(cfg).unwrap();
    cfg.validate().unwrap();
    let http = HttpClient::new().unwrap();
    let c = sever_connectors::build(&cfg, &http, Arc::new(MemoryTokenCache::new())).unwrap();
    let policy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let cx = CallContext::new(Instant::now() + Duration::from_secs(20), policy);
    let user = Username::parse("alice@example.com").unwrap();
    let lookup = c.lookup(&cx, &user).await;
    let subject = match lookup {
        Ok(Lookup::Found(s)) => s,
        Ok(Lookup::Settled(_)) => Subject {
            id: fallback.to_string(),
            display: fallback.to_string(),
        },
        Err(f) => panic!("{}: lookup rejected: {f:?}", c.instance()),
    };
    let outcome = c.revoke(&cx, &subject).await;
    let mut problems = Vec::new();
    for a in cx.attempts().iter().filter(|a| a.step != Step::Token) {
        if !a.http_status.is_some_and(|s| (200..300).contains(&s)) {
            problems.push(format!(
                "{} {:?} answered {:?} {:?}",
                c.instance(),
                a.step,
                a.http_status,
                a.provider_code
            ));
        }
    }
    match outcome {
        Ok(Outcome::Revoked | Outcome::TokensRevoked) => {}
        other => problems.push(format!("{} revoke: {other:?}", c.instance())),
    }
    problems
}

/// The first page of every directory listing the connector supports
/// (bulk --all, --risky, --group); every call must be answered 2xx and
/// its body read.
async fn list_first_pages(cfg: serde_json::Value) -> Vec<String> {
    let cfg: ConnectorConfig = serde_json::from_value(cfg).unwrap();
    let http = HttpClient::new().unwrap();
    let c = sever_connectors::build(&cfg, &http, Arc::new(MemoryTokenCache::new())).unwrap();
    let dir = c.directory().expect("every connector lists its people");
    let selections = [
        Selection::All,
        Selection::Risky(RiskLevel::High),
        Selection::Group(match c.provider() {
            sever_core::ConnectorKey::Okta => "00g1emaKYZTWRYYRRTSK".to_string(),
            sever_core::ConnectorKey::GoogleWorkspace => "eng@example.com".to_string(),
            _ => "02bd9fd6-8f93-4758-87c3-1fb73740a315".to_string(),
        }),
    ];
    let mut problems = Vec::new();
    for selection in selections.iter().filter(|s| dir.supports(s).is_ok()) {
        let policy = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        let cx = CallContext::new(Instant::now() + Duration::from_secs(20), policy);
        if let Err(f) = dir.page(&cx, selection, None).await {
            problems.push(format!(
                "{} list {}: {f:?}",
                c.instance(),
                selection.label()
            ));
        }
        for a in cx.attempts().iter().filter(|a| a.step != Step::Token) {
            if !a.http_status.is_some_and(|s| (200..300).contains(&s)) {
                problems.push(format!(
                    "{} list {} answered {:?} {:?}",
                    c.instance(),
                    selection.label(),
                    a.http_status,
                    a.provider_code
                ));
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connectors_requests_satisfy_the_vendors_published_api_spec() {
    let [okta, graph, google, slack, miro] = tokio::task::spawn_blocking(|| {
        start_mocks([
            "okta-management.yaml",
            "graph-users.yaml",
            "google-directory.json",
            "slack-web.json",
            "miro.json",
        ])
    })
    .await
    .unwrap();
    let sims = Sims::start(Directory::demo(), SimOptions::default())
        .await
        .unwrap();
    let entra_sim = sims.base_url(Provider::Entra);
    let google_sim = sims.base_url(Provider::Google);

    let cases = [
        (
            json!({"provider": "okta", "base_url": okta.base, "api_token": demo::OKTA_API_TOKEN,
                   "oauth_tokens": true, "forget_devices": false}),
            "00ub0oNGTSWTBKOLGLNR",
        ),
        (
            json!({"provider": "entra", "base_url": format!("{}/v1.0", graph.base),
                   "token_url": format!("{entra_sim}/{}/oauth2/v2.0/token", demo::ENTRA_TENANT_ID),
                   "tenant_id": demo::ENTRA_TENANT_ID, "client_id": demo::ENTRA_CLIENT_ID,
                   "client_secret": demo::ENTRA_CLIENT_SECRET}),
            "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
        ),
        (
            json!({"provider": "google_workspace", "base_url": google.base,
                   "token_url": format!("{google_sim}/token"),
                   "service_account_json": demo::GOOGLE_SERVICE_ACCOUNT_JSON,
                   "admin_subject": demo::GOOGLE_ADMIN_SUBJECT}),
            "alice@example.com",
        ),
        (
            json!({"provider": "slack_enterprise", "base_url": format!("{}/api", slack.base),
                   "token": demo::SLACK_USER_TOKEN, "mobile_only": true}),
            "W012A3CDE",
        ),
        (
            json!({"provider": "miro", "base_url": miro.base, "token": demo::MIRO_TOKEN,
                   "org_id": "3074457345618265000"}),
            "alice@example.com",
        ),
    ];
    let mut problems = Vec::new();
    for (cfg, fallback) in cases {
        problems.extend(list_first_pages(cfg.clone()).await);
        problems.extend(exercise(cfg, fallback).await);
    }
    assert!(
        problems.is_empty(),
        "requests the vendor spec rejects:\n{}",
        problems.join("\n")
    );
}
