//! `sever bench-webhook` (hidden): the webhook throughput benchmark of
//! issue 3, driven by `bench/webhook_load.sh`.
//!
//! It starts the provider simulators in this process (every call delayed by
//! `--latency-ms`), a real `sever serve` child on a fresh SQLite file (or a
//! PostgreSQL schema), provisions a tenant the way an operator would (`sever
//! tenants create`, `sever keys create`, then the API for the five
//! connectors and the webhook secret), and sends signed webhook calls at a
//! fixed rate (open loop: each call leaves at its scheduled time whatever
//! the previous ones are doing, and its time-to-accept is measured from that
//! time, so a stalled server cannot hide its queue). Then it waits until
//! every request is final and reads them back from the database: each must
//! be `completed` with five recorded outcomes and none failed.
//!
//! Prints one JSON object (also written to `--out`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sever_core::{RequestId, RequestQuery, RequestStatus, TenantId};
use sever_sim::{Directory, SimOptions, Sims};

use crate::CliError;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Webhook calls per second.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Latency of every simulated provider call, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// `postgres://…` to run against PostgreSQL (schema `sever_bench`);
    /// default: a fresh SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// `sever.toml` lines for the server, after the database settings (top-level
    /// keys first, then e.g. `[server]`); default `[server] webhook_wait_secs = 0`.
    #[arg(long)]
    pub server_toml: Option<String>,
    /// Where to keep the server's configuration, database and log
    /// (default: a new directory under the system's temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The server's log filter (`SEVER_LOG`); its logs go to `server.log`.
    #[arg(long, default_value = "warn")]
    pub log: String,
    /// Also write the JSON report here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn rt(what: &str) -> impl Fn(String) -> CliError + '_ {
    move |e| CliError::Runtime(format!("{what}: {e}"))
}

/// A `sever serve` child, stopped with SIGTERM when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sever(config: &Path) -> Result<Command, CliError> {
    let exe = std::env::current_exe().map_err(|e| rt("finding the sever binary")(e.to_string()))?;
    let mut c = Command::new(exe);
    c.env("SEVER_CONFIG", config).stdin(Stdio::null());
    Ok(c)
}

fn admin(config: &Path, args: &[&str]) -> Result<String, CliError> {
    let out = sever(config)?
        .args(args)
        .output()
        .map_err(|e| rt("running sever")(e.to_string()))?;
    if !out.status.success() {
        return Err(CliError::Runtime(format!(
            "sever {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn start_server(config: &Path, log: &Path, level: &str) -> Result<Server, CliError> {
    let log = std::fs::File::create(log).map_err(|e| rt("creating the log file")(e.to_string()))?;
    let mut child = sever(config)?
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("SEVER_LOG", level)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| rt("starting sever serve")(e.to_string()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| CliError::Runtime("no stdout from sever serve".into()))?;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| rt("reading sever serve's address")(e.to_string()))?;
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| CliError::Runtime(format!("sever serve did not start: {line:?}")))?
        .to_string();
    Ok(Server { child, base })
}

/// Busy jiffies of the whole machine (from `/proc/stat`) and the user+system
/// jiffies of the given processes, for the CPU report.
fn cpu_sample(pids: &[u32]) -> (u64, Vec<u64>) {
    let total = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            let line = t.lines().next()?.to_string();
            let f: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            Some(
                f.iter().take(8).sum::<u64>()
                    - f.get(3).copied().unwrap_or(0)
                    - f.get(4).copied().unwrap_or(0),
            )
        })
        .unwrap_or(0);
    let procs = pids
        .iter()
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|t| {
                    let rest = t.rsplit_once(')')?.1.to_string();
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    // Fields 14 and 15 (utime, stime), counted after the comm.
                    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
                })
                .unwrap_or(0)
        })
        .collect();
    (total, procs)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({
        "p50": percentile(&v, 50.0),
        "p90": percentile(&v, 90.0),
        "p99": percentile(&v, 99.0),
        "max": v.last().copied().unwrap_or(0.0),
    })
}

struct Sent {
    /// When it was due, in seconds from the start.
    at_secs: f64,
    accept_ms: f64,
    status: u16,
    request_id: Option<String>,
}

pub async fn run(args: BenchArgs) -> Result<ExitCode, CliError> {
    let sims = Sims::start(
        Directory::demo(),
        SimOptions {
            latency: Duration::from_millis(args.latency_ms),
            ..SimOptions::default()
        },
    )
    .await
    .map_err(|e| rt("starting the simulators")(e.to_string()))?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("sever-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| rt("creating the bench directory")(e.to_string()))?;
    let config = dir.join("sever.toml");
    let (db_kind, db_lines, schema) = match &args.database_url {
        Some(url) => (
            "postgresql",
            format!("database_url = \"{url}\"\ndatabase_schema = \"sever_bench\"\n"),
            Some("sever_bench"),
        ),
        None => {
            let db = dir.join("sever.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            ("sqlite", String::new(), None)
        }
    };
    // Top-level keys first, then the caller's lines (which may open
    // `[server]`), then `[retry]`.
    let text = format!(
        "{db_lines}request_deadline_secs = 60\n{}\n\n[retry]\nmax_attempts = 3\nbase_delay_ms = 100\n",
        args.server_toml.as_deref().unwrap_or("[server]\nwebhook_wait_secs = 0\n")
    );
    std::fs::write(&config, text).map_err(|e| rt("writing sever.toml")(e.to_string()))?;

    let server = start_server(&config, &dir.join("server.log"), &args.log)?;
    let tenant = admin(&config, &["tenants", "create", "--name", "bench"])?;
    let key = admin(
        &config,
        &[
            "keys",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "bench",
            "--scopes",
            "admin,sessions:revoke,sessions:read",
        ],
    )?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| rt("building the HTTP client")(e.to_string()))?;
    for body in crate::demo::connector_bodies(&sims) {
        let r = http
            .post(format!("{}/api/v1/connectors", server.base))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .map_err(|e| rt("creating a connector")(e.to_string()))?;
        if !r.status().is_success() {
            return Err(CliError::Runtime(format!(
                "creating a connector: {}",
                r.text().await.unwrap_or_default()
            )));
        }
    }
    // A SOAR sending hundreds of calls a second needs a policy that lets it:
    // the built-in default limits revocations per minute and hour.
    let policy = http
        .put(format!("{}/api/v1/policy", server.base))
        .bearer_auth(&key)
        .json(&json!({"version": "1", "default": "allow"}))
        .send()
        .await
        .map_err(|e| rt("setting the policy")(e.to_string()))?;
    if !policy.status().is_success() && policy.status() != reqwest::StatusCode::NOT_FOUND {
        return Err(CliError::Runtime(format!(
            "setting the policy: {}",
            policy.text().await.unwrap_or_default()
        )));
    }
    let settings: Value = http
        .put(format!("{}/api/v1/settings", server.base))
        .bearer_auth(&key)
        .json(&json!({"revocation_enabled": true, "webhook_enabled": true}))
        .send()
        .await
        .map_err(|e| rt("enabling the webhook")(e.to_string()))?
        .json()
        .await
        .map_err(|e| rt("enabling the webhook")(e.to_string()))?;
    let secret = settings["webhook_signing_secret"]
        .as_str()
        .ok_or_else(|| CliError::Runtime(format!("no webhook secret in {settings}")))?
        .to_string();

    // The load generator runs on a thread and runtime of its own, with its
    // own HTTP client: on the runtime that also serves the simulators'
    // 5,000 calls a second it would read its answers late and charge that
    // to the server (a SOAR does not share a machine with the providers).
    let url = format!("{}/api/v1/session-revocation/webhook", server.base);
    let (rate, duration, for_generator) = (args.rate, args.duration, tenant.clone());
    let handle = sims.handle();
    let pids = [server.child.id(), std::process::id()];
    let log = dir.join("server.log");
    let generator = std::thread::Builder::new()
        .name("load-generator".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| rt("starting the load generator")(e.to_string()))?
                .block_on(generate(
                    url,
                    secret,
                    for_generator,
                    rate,
                    duration,
                    handle,
                    pids,
                    log,
                ))
        })
        .map_err(|e| rt("starting the load generator")(e.to_string()))?;
    let total = u64::from(args.rate) * args.duration;
    let (sent, send_secs, cpu, wall) = generator
        .join()
        .map_err(|_| CliError::Runtime("the load generator panicked".into()))??;
    let accepted_at = wall.elapsed().as_secs_f64();
    let accepted: Vec<&Sent> = sent
        .iter()
        .filter(|s| (200..300).contains(&s.status))
        .collect();
    let ids: std::collections::HashSet<String> = accepted
        .iter()
        .filter_map(|s| s.request_id.clone())
        .collect();

    // Wait until every request is final, reading the database itself.
    let store = sever_store::open_in_schema(
        &match &args.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", dir.join("sever.db").display()),
        },
        schema,
    )
    .await
    .map_err(|e| rt("opening the database")(e.to_string()))?;
    let tenant_id = TenantId::parse(&tenant).map_err(|e| rt("tenant id")(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let (rows, done_at) = loop {
        let mut rows = Vec::new();
        let mut before: Option<RequestId> = None;
        loop {
            let page = store
                .list_requests(&RequestQuery {
                    tenant_id: Some(tenant_id),
                    status: None,
                    username: None,
                    limit: 1000,
                    before,
                })
                .await
                .map_err(|e| rt("listing requests")(e.to_string()))?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            rows.extend(page);
        }
        let unfinished = rows.iter().filter(|r| !r.status.is_final()).count();
        if unfinished == 0 || Instant::now() > deadline {
            break (rows, wall.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let measured: Vec<_> = rows
        .iter()
        .filter(|r| ids.contains(&r.id.to_string()))
        .collect();
    let complete = measured
        .iter()
        .filter(|r| r.status == RequestStatus::Completed && r.connectors == 5 && r.failed == 0)
        .count();
    let complete_ms: Vec<f64> = measured
        .iter()
        .filter_map(|r| {
            r.finished_at
                .map(|f| (f - r.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        })
        .collect();
    let accept_ms: Vec<f64> = sent.iter().map(|s| s.accept_ms).collect();
    let mut sorted = accept_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = percentile(&sorted, 99.0);
    let drain_secs = (done_at - send_secs).max(0.0);
    // Seconds of the run whose slowest accept took over 50 ms, to tell a
    // steady overload from stalls (checkpoints, other load on the machine).
    let mut by_second: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    for s in &sent {
        let e = by_second.entry(s.at_secs as u64).or_default();
        *e = e.max(s.accept_ms);
    }
    let slow_seconds: Vec<Value> = by_second
        .iter()
        .filter(|(_, ms)| **ms > 50.0)
        .map(|(sec, ms)| json!([sec, (ms * 10.0).round() / 10.0]))
        .collect();
    let sustained = accepted.len() as u64 == total
        && complete as u64 == total
        && p99 < 50.0
        // Kept up: the last requests finished soon after the last was sent.
        && drain_secs < 5.0;
    let report = json!({
        "database": db_kind,
        "rate": args.rate,
        "duration_secs": args.duration,
        "provider_latency_ms": args.latency_ms,
        "server_log_filter": args.log,
        "server_toml": args.server_toml.as_deref().unwrap_or("[server]\nwebhook_wait_secs = 0\n"),
        "sent": total,
        "accepted": accepted.len(),
        "statuses": sent.iter().fold(std::collections::BTreeMap::<u16, u64>::new(), |mut m, s| {
            *m.entry(s.status).or_default() += 1;
            m
        }),
        "send_secs": send_secs,
        "all_accepted_after_secs": accepted_at,
        "all_final_after_secs": done_at,
        "drain_after_last_send_secs": drain_secs,
        "completed_with_five_outcomes": complete,
        "time_to_accept_ms": summary(accept_ms),
        "time_to_complete_ms": summary(complete_ms),
        "seconds_with_an_accept_over_50ms": slow_seconds,
        "cpu_busy_cores_while_sending": cpu,
        "sustained": sustained,
    });
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{text}\n"))
            .map_err(|e| rt("writing the report")(e.to_string()))?;
    }
    drop(server);
    sims.shutdown().await;
    Ok(if sustained {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Send `rate` signed webhook calls a second for `duration` seconds (after
/// a warm-up), each at its scheduled time whatever the earlier ones are
/// doing. Returns what each call saw, the sending time, the CPU used while
/// sending, and the clock the sending started on.
#[allow(clippy::too_many_arguments)]
async fn generate(
    url: String,
    secret: String,
    tenant: String,
    rate: u32,
    duration: u64,
    handle: sever_sim::SimHandle,
    pids: [u32; 2],
    log: PathBuf,
) -> Result<(Vec<Sent>, f64, Value, Instant), CliError> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| rt("building the HTTP client")(e.to_string()))?;
    let url = Arc::new(url);
    let secret = Arc::new(secret);
    let send = {
        let http = http.clone();
        let tenant = tenant.clone();
        let origin = tokio::time::Instant::now();
        move |n: u64, at: tokio::time::Instant| {
            let http = http.clone();
            let url = url.clone();
            let secret = secret.clone();
            let body = serde_json::to_vec(&json!({
                "tenant_id": tenant,
                "action": "revoke_sessions",
                "username": "alice@example.com",
                "reason": format!("bench {n}"),
                "source": "bench",
            }))
            .unwrap_or_default();
            async move {
                let sig = sever_server::signature::sign_plain(secret.as_bytes(), &body);
                let r = http
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .header("x-session-revocation-signature", sig)
                    .body(body)
                    .send()
                    .await;
                let accept_ms = at.elapsed().as_secs_f64() * 1000.0;
                let at_secs = (at - origin).as_secs_f64();
                match r {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        Sent {
                            at_secs,
                            accept_ms,
                            status,
                            request_id: v["request_id"].as_str().map(str::to_string),
                        }
                    }
                    Err(_) => Sent {
                        at_secs,
                        accept_ms,
                        status: 0,
                        request_id: None,
                    },
                }
            }
        }
    };

    // Warm up: provider tokens, connections, the tenant's engine.
    for n in 0..20 {
        let s = send(n, tokio::time::Instant::now()).await;
        if !(200..300).contains(&s.status) {
            return Err(CliError::Runtime(format!(
                "a warm-up call was answered {}; see {}",
                s.status,
                log.display()
            )));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let warm_ids = 20u64;

    let cpu_before = cpu_sample(&pids);
    let total = u64::from(rate) * duration;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = tokio::time::Instant::now();
    let wall = Instant::now();
    let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for n in 0..total {
        let at = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(at).await;
        tasks.push(tokio::spawn(send(warm_ids + n, at)));
        if n % u64::from(rate.max(1)) == 0 {
            // The simulators' call log is not needed; keep memory flat.
            handle.reset_calls();
        }
    }
    let send_secs = wall.elapsed().as_secs_f64();
    let cpu_after = cpu_sample(&pids);
    // Jiffies are 1/100 s: busy cores over the sending window.
    let cores = |j: u64| (j as f64 / 100.0 / send_secs * 100.0).round() / 100.0;
    let server_j = cpu_after.1[0].saturating_sub(cpu_before.1[0]);
    let bench_j = cpu_after.1[1].saturating_sub(cpu_before.1[1]);
    let total_j = cpu_after.0.saturating_sub(cpu_before.0);
    let cpu = json!({
        "server": cores(server_j),
        "simulators_and_load_generator": cores(bench_j),
        "everything_else_on_the_machine": cores(total_j.saturating_sub(server_j + bench_j)),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    let mut sent = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(s) = t.await {
            sent.push(s);
        }
    }
    Ok((sent, send_secs, cpu, wall))
}
