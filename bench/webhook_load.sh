#!/usr/bin/env bash
# One command for the webhook throughput benchmark (issue 3): signed webhook
# calls through to completed five-connector revocations against a real
# `sever serve` (release build), every simulated provider call taking 20 ms.
#
# Usage: bench/webhook_load.sh [sqlite|postgres] [duration_secs] [rate ...]
#   bench/webhook_load.sh sqlite 60 500          # the issue's target on SQLite
#   bench/webhook_load.sh postgres 60 300 400 500
# PostgreSQL: $SEVER_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test;
# the tables go in schema sever_bench). Server settings: $SEVER_BENCH_SERVER_TOML (default
# 'sqlite_synchronous = "normal"\n[server]\nwebhook_wait_secs = 0': commits survive a killed
# process but not a power loss; the webhook answers 202 at once and the SOAR polls).
# Server log filter: $SEVER_BENCH_LOG (default warn; the service's default is info).
# Reports: stdout and bench/out/webhook-<db>-<rate>.json; the exit code is 0 when
# every rate given was sustained (all accepted, all completed with five outcomes,
# p99 time-to-accept < 50 ms, the backlog drained within 5 s of the last call).
set -euo pipefail
cd "$(dirname "$0")/.."
db="${1:-sqlite}"
duration="${2:-60}"
shift $(( $# > 2 ? 2 : $# ))
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(500)
cargo build --release --bin sever -q
mkdir -p bench/out
args=()
if [ "$db" = postgres ]; then
  args+=(--database-url "${SEVER_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}")
elif [ "$db" != sqlite ]; then
  echo "usage: $0 [sqlite|postgres] [duration_secs] [rate ...]" >&2
  exit 2
fi
args+=(--server-toml "$(printf '%b' "${SEVER_BENCH_SERVER_TOML:-sqlite_synchronous = \"normal\"\n[server]\nwebhook_wait_secs = 0}")")
args+=(--log "${SEVER_BENCH_LOG:-warn}")
status=0
for rate in "${rates[@]}"; do
  echo "== $db, $rate/s for ${duration}s" >&2
  "${CARGO_TARGET_DIR:-target}/release/sever" bench-webhook --rate "$rate" --duration "$duration" \
    --out "bench/out/webhook-$db-$rate.json" "${args[@]}" || status=1
done
exit $status
