#!/usr/bin/env bash
# One command for the revocation benchmark (issue 2): latency of one
# `sever revoke` across five connectors with every simulated provider call
# taking 50 ms, the same calls one after another, and peak memory.
# Usage: bench/run.sh [runs]   (results: stdout and bench/out/revoke.json)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin sever -q
exec python3 bench/revoke_latency.py "${1:-40}"
