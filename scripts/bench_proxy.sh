#!/usr/bin/env bash
# Benchmarks `ragwall proxy` against a direct upstream: added latency (p50/p99) and throughput
# ratio for 10-point search results, with unstamped payloads (scanned by the model) and stamped
# ones (HMAC check only). Uses the default model and ONNX Runtime from .venv (scripts/setup.sh).
#
#   scripts/bench_proxy.sh [REQUESTS=200] [CONCURRENCY=8] [SECONDS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* 2>/dev/null | sort | tail -n1)
  export ORT_DYLIB_PATH
fi
cargo run --release --locked --quiet --example bench_proxy -- "${1:-200}" "${2:-8}" "${3:-5}"
