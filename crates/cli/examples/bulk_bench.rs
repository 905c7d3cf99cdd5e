//! The bulk benchmark of issue 7 (run it with `bench/bulk.sh`).
//!
//! 1. N people × 5 connectors through `sever bulk revoke --csv` (the release
//!    binary, a child process) against the simulators, each set to its
//!    provider's published rate limit multiplied by `--scale` (so a run
//!    takes about a minute, not hours), with `--latency-ms` on every call.
//!    Reports the wall time against the minimum those limits allow and the
//!    share of provider calls answered 429.
//! 2. The seed's PowerShell loop, as written: one person at a time, one
//!    provider after another (lookup, then revoke), with the same
//!    connectors against the same simulators, on a sample of
//!    `--loop-sample` people, extrapolated linearly (a sequential loop's
//!    time is linear in the number of people).
//! 3. Peak resident memory of `sever bulk revoke` while a CSV of
//!    `--memory-rows` rows is read, validated and queued as a bulk job
//!    (it then waits for approval, so nothing is revoked).
//!
//! Output: a Markdown section on stdout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sever_sim::{Directory, Provider, RateLimit, SimOptions, Sims, Step};

/// Published limits, per minute, of the calls a revocation makes (see
/// docs/benchmarks.md, "Issue 7", for the sources).
const LIMITS_PER_MINUTE: [(Provider, &str, u32); 5] = [
    (Provider::Okta, "okta", 600),
    (Provider::Entra, "entra", 1200),
    (Provider::Google, "google_workspace", 2400),
    (Provider::Slack, "slack_enterprise", 20),
    (Provider::Miro, "miro", 200),
];

struct Args {
    people: usize,
    scale: f64,
    latency_ms: u64,
    loop_sample: usize,
    memory_rows: usize,
    concurrency: usize,
    bin: PathBuf,
    loop_script: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        people: 10_000,
        scale: 500.0,
        latency_ms: 50,
        loop_sample: 200,
        memory_rows: 1_000_000,
        concurrency: 256,
        bin: PathBuf::from("target/release/sever"),
        loop_script: PathBuf::from("bench/seed_loop.sh"),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--people" => a.people = v.parse().unwrap(),
            "--scale" => a.scale = v.parse().unwrap(),
            "--latency-ms" => a.latency_ms = v.parse().unwrap(),
            "--loop-sample" => a.loop_sample = v.parse().unwrap(),
            "--memory-rows" => a.memory_rows = v.parse().unwrap(),
            "--concurrency" => a.concurrency = v.parse().unwrap(),
            "--bin" => a.bin = PathBuf::from(v),
            "--loop-script" => a.loop_script = PathBuf::from(v),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Calls per second allowed for `provider` in the benchmark.
fn per_second(per_minute: u32, scale: f64) -> u32 {
    ((f64::from(per_minute) * scale) / 60.0).floor().max(1.0) as u32
}

fn write_people(path: &Path, n: usize) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    w.write_all("\u{feff}\"UserPrincipalName\"\r\n".as_bytes())
        .unwrap();
    for i in 1..=n {
        write!(w, "\"user{:05}@example.com\"\r\n", (i - 1) % 99_999 + 1).unwrap();
    }
    w.flush().unwrap();
}

fn config(sims: &Sims, dir: &Path, scale: f64) -> PathBuf {
    let path = dir.join("sever.toml");
    sever_cli::demo::write_config(sims, &path).unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (_, key, per_minute) in LIMITS_PER_MINUTE {
        text = text.replace(
            &format!("provider = \"{key}\"\n"),
            &format!(
                "provider = \"{key}\"\nrate_limit = {}\nrate_window_secs = 1\nmax_concurrency = 64\n",
                per_second(per_minute, scale)
            ),
        );
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Run `sever args` to the end: exit code, wall time, peak RSS (kB).
fn run_sever(bin: &Path, cfg: &Path, args: &[&str]) -> (i32, Duration, u64, String) {
    let t0 = Instant::now();
    let mut child = std::process::Command::new(bin)
        .args(args)
        .env("SEVER_CONFIG", cfg)
        .current_dir(cfg.parent().unwrap())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0u64;
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let code = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in s.lines() {
                if let Some(v) = line.strip_prefix("VmHWM:") {
                    let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kb);
                }
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, t0.elapsed(), peak, reader.join().unwrap())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let mut limits = HashMap::new();
    for (p, _, per_minute) in LIMITS_PER_MINUTE {
        limits.insert(
            p,
            RateLimit {
                max: per_second(per_minute, a.scale),
                per: Duration::from_secs(1),
            },
        );
    }
    let sims = Sims::start(
        Directory::generated(a.people.max(a.loop_sample), "example.com"),
        SimOptions {
            latency: Duration::from_millis(a.latency_ms),
            rate_limits: limits.clone(),
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let cfg = config(&sims, work.path(), a.scale);
    let csv = work.path().join("users.csv");
    write_people(&csv, a.people);

    // 1. Sever.
    let bin = std::fs::canonicalize(&a.bin).unwrap();
    let h = sims.handle();
    let (code, took, peak_kb, err) = tokio::task::spawn_blocking({
        let (bin, cfg, csv) = (bin.clone(), cfg.clone(), csv.clone());
        let concurrency = a.concurrency.to_string();
        move || {
            run_sever(
                &bin,
                &cfg,
                &[
                    "bulk",
                    "revoke",
                    "--csv",
                    csv.to_str().unwrap(),
                    "--reason",
                    "bench",
                    "--incident",
                    "BENCH-7",
                    "--yes",
                    "--approval-threshold",
                    "100000000",
                    "--concurrency",
                    &concurrency,
                    "--no-progress-bar",
                ],
            )
        }
    })
    .await
    .unwrap();
    assert!(code == 0, "sever bulk revoke failed ({code}):\n{err}");
    let calls = h.calls();
    let total = calls.len();
    let too_many = h.count_429();
    // Calls per rate bucket (Slack: per method; others: per API; tokens apart).
    let mut buckets: HashMap<(Provider, String), usize> = HashMap::new();
    for c in &calls {
        if c.step == Step::Token {
            continue;
        }
        let bucket = if c.provider == Provider::Slack {
            c.path.clone()
        } else {
            "api".into()
        };
        *buckets.entry((c.provider, bucket)).or_default() += 1;
    }
    // The fastest the limits allow: a sliding window of `max` per second
    // admits call k at (k div max) seconds at the earliest.
    let mut t_min = 0f64;
    let mut bound = String::new();
    for ((p, b), n) in &buckets {
        let max = limits[p].max as usize;
        let t = ((n.saturating_sub(1)) / max) as f64;
        if t > t_min {
            t_min = t;
            bound = format!("{p:?} {b}: {n} calls at {max}/s");
        }
    }
    eprintln!("{err}");

    // 2. The seed's loop on a sample: `bench/seed_loop.sh`, one `sever revoke
    //    --targets <connector> <user>` process per person per connector.
    let config = sever_cli::config::Config::load(Some(&cfg)).unwrap();
    let app = sever_cli::app::build(&config).await.unwrap();
    let names: Vec<String> = app
        .engine
        .connectors()
        .map(|(c, _)| c.instance().to_string())
        .collect();
    drop(app);
    let (loop_took, loop_people, loop_failed, loop_calls) = tokio::task::spawn_blocking({
        let (bin, cfg, csv, script) =
            (bin.clone(), cfg.clone(), csv.clone(), a.loop_script.clone());
        let (sample, names) = (a.loop_sample, names.join(","));
        move || seed_loop(&script, &bin, &cfg, &csv, &names, sample)
    })
    .await
    .unwrap();
    assert!(
        loop_people == a.loop_sample,
        "the loop script did {loop_people} people, not {}",
        a.loop_sample
    );
    let loop_full = loop_took.as_secs_f64() * a.people as f64 / a.loop_sample as f64;

    // 3. Memory while a big CSV is read, validated and queued.
    let mem_dir = tempfile::tempdir().unwrap();
    let mem_cfg = config_copy(&cfg, mem_dir.path());
    let big = mem_dir.path().join("big.csv");
    write_people(&big, a.memory_rows);
    let big_size = std::fs::metadata(&big).unwrap().len();
    // Held for approval: more people than the threshold (1,000, or fewer for a small file).
    let threshold = a.memory_rows.saturating_sub(1).min(1000).to_string();
    let (mcode, mtook, mpeak_kb, merr) = tokio::task::spawn_blocking({
        let (bin, cfg, big) = (bin.clone(), mem_cfg.clone(), big.clone());
        move || {
            run_sever(
                &bin,
                &cfg,
                &[
                    "bulk",
                    "revoke",
                    "--csv",
                    big.to_str().unwrap(),
                    "--reason",
                    "bench",
                    "--yes",
                    "--approval-threshold",
                    &threshold,
                ],
            )
        }
    })
    .await
    .unwrap();
    assert!(
        mcode == 3,
        "expected the job to wait for approval ({mcode}):\n{merr}"
    );

    let ratio = took.as_secs_f64() / t_min.max(0.001);
    println!(
        "### Run: {} people × 5 connectors, limits × {}, {} ms per call\n",
        a.people, a.scale, a.latency_ms
    );
    println!("| Measure | Value |\n|---|---|");
    println!(
        "| Sever `bulk revoke` wall time (start to exit, CSV read included) | {:.1} s |",
        took.as_secs_f64()
    );
    println!("| Minimum the limits allow (bottleneck: {bound}) | {t_min:.1} s |");
    println!("| Ratio to the minimum | {ratio:.3} |");
    println!(
        "| Provider calls / answered 429 | {total} / {too_many} ({:.2} %) |",
        100.0 * too_many as f64 / total.max(1) as f64
    );
    println!(
        "| Peak RSS of `sever` during the run | {:.1} MB |",
        peak_kb as f64 / 1024.0
    );
    println!(
        "| Seed loop (`bench/seed_loop.sh`): {} people, {} `sever revoke` processes one after another | {:.1} s ({} failures) |",
        a.loop_sample,
        loop_calls,
        loop_took.as_secs_f64(),
        loop_failed
    );
    println!(
        "| Seed loop extrapolated to {} people | {:.0} s |",
        a.people, loop_full
    );
    println!(
        "| Speed-up of Sever over the loop | {:.1}× |",
        loop_full / took.as_secs_f64()
    );
    println!(
        "| {} -row CSV ({:.1} MB) read, validated, queued | {:.1} s, peak RSS {:.1} MB |",
        a.memory_rows,
        big_size as f64 / 1e6,
        mtook.as_secs_f64(),
        mpeak_kb as f64 / 1024.0
    );
    println!(
        "\nPer-provider limits used (calls per second in the simulators and in `rate_limit`):\n"
    );
    for (p, _, per_minute) in LIMITS_PER_MINUTE {
        println!(
            "- {p:?}: {per_minute}/min published → {}/s",
            per_second(per_minute, a.scale)
        );
    }
    let mut b: Vec<_> = buckets.into_iter().collect();
    b.sort_by(|x, y| format!("{:?}", x.0).cmp(&format!("{:?}", y.0)));
    println!(
        "\nCalls per bucket: {}",
        b.iter()
            .map(|((p, k), n)| format!("{p:?} {k}: {n}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// Run the seed's loop script on the first `sample` people of `csv`: its
/// wall time as it reports it, people, failed calls, calls.
fn seed_loop(
    script: &Path,
    bin: &Path,
    cfg: &Path,
    csv: &Path,
    connectors: &str,
    sample: usize,
) -> (Duration, usize, usize, usize) {
    let out = std::process::Command::new(std::fs::canonicalize(script).unwrap())
        .args(["--csv", csv.to_str().unwrap()])
        .args(["--bin", bin.to_str().unwrap()])
        .args(["--connectors", connectors])
        .args(["--limit", &sample.to_string()])
        .args([
            "--out",
            cfg.with_file_name("seed_loop.csv").to_str().unwrap(),
        ])
        .env("SEVER_CONFIG", cfg)
        .current_dir(cfg.parent().unwrap())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed: {}\n{stdout}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("SEED_LOOP "))
        .unwrap_or_else(|| panic!("no SEED_LOOP line from the loop script:\n{stdout}"));
    let field = |k: &str| -> String {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .unwrap_or_else(|| panic!("no {k} in {line}"))
            .to_string()
    };
    (
        Duration::from_secs_f64(field("seconds").parse().unwrap()),
        field("people").parse().unwrap(),
        field("failed").parse().unwrap(),
        field("calls").parse().unwrap(),
    )
}

fn config_copy(cfg: &Path, dir: &Path) -> PathBuf {
    for f in ["google-service-account.json", "okta-demo-app.pem"] {
        let from = cfg.parent().unwrap().join(f);
        if from.exists() {
            std::fs::copy(&from, dir.join(f)).unwrap();
        }
    }
    let to = dir.join("sever.toml");
    std::fs::copy(cfg, &to).unwrap();
    to
}
