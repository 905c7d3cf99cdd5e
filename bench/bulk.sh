#!/usr/bin/env bash
# One command for the bulk benchmark (issue 7): 10,000 people x 5 connectors
# through `sever bulk revoke --csv` against the simulators at each provider's
# published rate limit (scaled, see docs/benchmarks.md "Issue 7"), the seed's
# one-call-at-a-time loop for comparison (bench/seed_loop.sh: one `sever revoke`
# process per person per connector), and peak memory while a
# 1,000,000-row CSV is read, validated and queued.
# Usage: bench/bulk.sh [--people N] [--scale S] [--latency-ms MS]
#                      [--loop-sample N] [--memory-rows N] [--concurrency N]
#                      [--loop-script bench/seed_loop.sh]
# Results: a Markdown section on stdout (and bench/out/bulk.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin sever -q
cargo build --release -p sever-cli --example bulk_bench -q
mkdir -p bench/out
target/release/examples/bulk_bench --bin target/release/sever "$@" | tee bench/out/bulk.md
