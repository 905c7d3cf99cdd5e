"""Time whole `sever revoke` processes against the simulators (50 ms per call).

Each run is a fresh process: start-up, opening the database, the sealed token
cache, ten provider calls, and every outcome durably written. Peak memory is the
child's max RSS from wait4. The sequential baseline is the same binary with
`max_parallel_connectors = 1`: the same calls, one connector after another.
"""
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
SEVER = Path(os.environ.get("SEVER_BIN", ROOT / "target" / "release" / "sever"))
LATENCY_MS = 50


def run(env, args):
    """One whole `sever` process; posix_spawn keeps the harness's own cost out."""
    out_path, err_path = OUT / "stdout", OUT / "stderr"
    actions = [
        (os.POSIX_SPAWN_OPEN, 1, str(out_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        (os.POSIX_SPAWN_OPEN, 2, str(err_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(str(SEVER), [str(SEVER), *args], env, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    out, err = out_path.read_text(), err_path.read_text()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"sever {' '.join(args)} exited {code}:\n{out}\n{err}")
    return elapsed * 1000.0, usage.ru_maxrss / 1024.0, out


def series(env, n, user="alice@example.com"):
    times, rss = [], []
    for _ in range(n):
        t, m, out = run(env, ["revoke", user, "--yes", "--json"])
        req = json.loads(out)
        assert req["status"] == "completed", req
        times.append(t)
        rss.append(m)
    return times, rss


def summary(times):
    s = sorted(times)
    return {
        "runs": len(s),
        "median_ms": round(statistics.median(s), 1),
        "p90_ms": round(s[int(len(s) * 0.9) - 1], 1),
        "min_ms": round(s[0], 1),
        "max_ms": round(s[-1], 1),
    }


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    OUT.mkdir(parents=True, exist_ok=True)
    for f in OUT.glob("sever.db*"):
        f.unlink()
    cfg = OUT / "sever.toml"
    if cfg.exists():
        cfg.unlink()
    sim = subprocess.Popen(
        [str(SEVER), "sim", "--latency-ms", str(LATENCY_MS), "--write-config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if cfg.exists() and cfg.stat().st_size > 0:
                break
            time.sleep(0.05)
        time.sleep(0.2)
        env = {"PATH": os.environ.get("PATH", ""), "SEVER_CONFIG": str(cfg), "HOME": str(OUT)}
        # Cold run: fetches and seals the Entra and Google tokens.
        cold, _, _ = run(env, ["revoke", "alice@example.com", "--yes", "--json"])
        par_t, par_rss = series(env, n)
        seq_env = dict(env, SEVER_MAX_PARALLEL_CONNECTORS="1")
        seq_t, _ = series(seq_env, max(10, n // 4))
    finally:
        sim.terminate()
        sim.wait()
    par, seq = summary(par_t), summary(seq_t)
    budget = 2 * LATENCY_MS + 25
    result = {
        "latency_per_call_ms": LATENCY_MS,
        "cold_first_run_ms": round(cold, 1),
        "concurrent": par,
        "sequential": seq,
        "speedup_median": round(seq["median_ms"] / par["median_ms"], 2),
        "budget_ms": budget,
        "within_budget": par["median_ms"] <= budget,
        "peak_rss_mb": round(max(par_rss), 1),
    }
    (OUT / "revoke.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
