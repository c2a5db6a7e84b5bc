#!/usr/bin/env bash
# Benchmarks `ragwall serve`: POST /v1/guard with 10 chunks of ~256 tokens, cold (new texts, every
# chunk through the model) and warm (repeated texts, from the score cache). Starts the service on
# 127.0.0.1 with the default model, runs a bounded load, prints requests/s and p50/p99 latency per
# phase, and stops the service.
#   scripts/bench_serve.sh [--clients 4] [--requests 100] [--chunks 10] [--tokens 256]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$(scripts/setup.sh)
  export ORT_DYLIB_PATH
fi
exec cargo run --quiet --release --locked --example bench_serve -- "$@"
