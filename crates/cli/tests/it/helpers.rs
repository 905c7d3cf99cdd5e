//! The test harness: simulators in this process, `sever` as a child process
//! with a configuration pointing at them, and a scratch directory per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sever_sim::{Directory, SimHandle, SimOptions, Sims};

pub struct Harness {
    pub sims: Sims,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with(SimOptions::default()).await
    }

    pub async fn with(opts: SimOptions) -> Self {
        let sims = Sims::start(Directory::demo(), opts).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        sever_cli::demo::write_config(&sims, &dir.path().join("sever.toml")).unwrap();
        // Tests want quick retries; the shape of the config stays the demo's.
        let cfg = dir.path().join("sever.toml");
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("base_delay_ms = 100", "base_delay_ms = 20");
        std::fs::write(&cfg, text).unwrap();
        Harness { sims, dir }
    }

    pub fn sim(&self) -> SimHandle {
        self.sims.handle()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("sever.toml")
    }

    /// Append text to the generated sever.toml.
    pub fn edit_config(&self, f: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        std::fs::write(self.config(), f(text)).unwrap();
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sever"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("SEVER_CONFIG", self.config())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// Run `sever args...` to completion (off the async runtime, so the
    /// in-process simulators keep serving).
    pub async fn sever(&self, args: &[&str]) -> Run {
        let mut c = self.command();
        c.args(args);
        let out = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        Run(out)
    }

    pub async fn revoke_json(&self, user: &str, extra: &[&str]) -> (Run, serde_json::Value) {
        let mut args = vec!["revoke", user, "--json", "--yes"];
        args.extend_from_slice(extra);
        let run = self.sever(&args).await;
        let v = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                run.stdout(),
                run.stderr()
            )
        });
        (run, v)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("sever.db")
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
}

/// The outcome label of one connector in a request's JSON.
pub fn outcome<'a>(req: &'a serde_json::Value, instance: &str) -> &'a serde_json::Value {
    req["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instance"] == instance)
        .unwrap_or_else(|| panic!("no result for {instance} in {req:#}"))
}

pub async fn count_rows(db: &Path, sql: &str) -> i64 {
    try_count_rows(db, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `None` while the database or its tables do not exist yet (a child
/// process may still be creating them).
pub async fn try_count_rows(db: &Path, sql: &str) -> Result<i64, sqlx::Error> {
    use sqlx::Connection;
    // Read-write: after a writer is killed, only a writable connection may
    // recover the WAL; a read-only one would see the database as it was.
    let url = format!("sqlite://{}", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await?;
    Ok(n)
}

impl Harness {
    /// Run `sever args...` with `input` on its standard input.
    pub async fn sever_with_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut c = self.command();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let input = input.to_string();
        let out = tokio::task::spawn_blocking(move || {
            let mut child = c.spawn().unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        Run(out)
    }

    /// `sever serve --bind 127.0.0.1:0` on this harness's configuration.
    pub async fn serve(&self) -> Served {
        Served::start(self.command()).await
    }
}

/// A `sever serve` child process; killed when dropped.
pub struct Served {
    pub child: std::process::Child,
    pub base: String,
    pub pid: u32,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Start `command` as `serve --bind 127.0.0.1:0` and wait for its
    /// `listening on` line.
    pub async fn start(mut command: Command) -> Served {
        use std::io::{BufRead, Read};
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let pid = child.id();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let out = child.stdout.take().unwrap();
        let first = tokio::task::spawn_blocking(move || {
            let mut reader = std::io::BufReader::new(out);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            // Keep draining so the server never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
            line
        })
        .await
        .unwrap();
        let base = match first.trim().strip_prefix("listening on ") {
            Some(url) => url.to_string(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(std::time::Duration::from_millis(100));
                panic!(
                    "sever serve did not start: stdout {first:?}\nstderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        Served {
            child,
            base,
            pid,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and wait for the graceful exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.pid.to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let mut child_wait = || self.child.try_wait().unwrap();
        for _ in 0..200 {
            if let Some(s) = child_wait() {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("sever serve did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The five demo connectors as the API takes them, pointing at `sims`.
pub fn connector_configs(sims: &Sims) -> Vec<serde_json::Value> {
    use serde_json::json;
    use sever_sim::{demo, Provider};
    let b = |p| sims.base_url(p);
    vec![
        json!({"provider": "okta", "base_url": b(Provider::Okta), "api_token": demo::OKTA_API_TOKEN, "oauth_tokens": true}),
        json!({
            "provider": "entra",
            "base_url": format!("{}/v1.0", b(Provider::Entra)),
            "token_url": format!("{}/{}/oauth2/v2.0/token", b(Provider::Entra), demo::ENTRA_TENANT_ID),
            "tenant_id": demo::ENTRA_TENANT_ID,
            "client_id": demo::ENTRA_CLIENT_ID,
            "client_secret": demo::ENTRA_CLIENT_SECRET,
        }),
        json!({
            "provider": "google_workspace",
            "base_url": b(Provider::Google),
            "token_url": format!("{}/token", b(Provider::Google)),
            "service_account_json": demo::GOOGLE_SERVICE_ACCOUNT_JSON,
            "admin_subject": demo::GOOGLE_ADMIN_SUBJECT,
        }),
        json!({"provider": "slack_enterprise", "base_url": format!("{}/api", b(Provider::Slack)), "token": demo::SLACK_USER_TOKEN}),
        json!({"provider": "miro", "base_url": b(Provider::Miro), "token": demo::MIRO_TOKEN}),
    ]
}

/// Calls to a served API with one key.
pub struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Self {
        Api {
            base: base.to_string(),
            key: key.to_string(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> crate::server::Answer {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        crate::server::answer(rb.send().await.unwrap()).await
    }
}

/// A new tenant and a key with every scope, made with the CLI.
pub async fn tenant_and_admin_key(h: &Harness, name: &str) -> (String, String) {
    let run = h.sever(&["tenants", "create", "--name", name]).await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let tenant = run.stdout().trim().to_string();
    let run = h
        .sever(&[
            "keys",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "ops",
            "--scopes",
            "admin,sessions:revoke,sessions:read",
        ])
        .await;
    assert_eq!(run.code(), 0, "{}", run.stderr());
    (tenant, run.stdout().trim().to_string())
}

/// Poll `f` every 50 ms until it holds, for at most `secs` seconds.
pub async fn wait_for(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out after {secs} s waiting until {what}");
}
