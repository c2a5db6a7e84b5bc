#!/usr/bin/env bash
# Benchmarks `ragwall scan qdrant`: chunks/s over a whole collection (default 10 000 points of
# ~128 tokens) with the default model, against the in-memory Qdrant gRPC server of the tests
# (tests/scan/server.rs, started by the example itself on 127.0.0.1). Target: >= 200 chunks/s on
# 2 cores. Not part of CI (too slow): run it by hand. Uses ONNX Runtime from .venv
# (scripts/setup.sh) unless ORT_DYLIB_PATH is set.
#
#   scripts/bench_scan.sh [POINTS=10000] [MODE=stamp|dry-run|quarantine]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* 2>/dev/null | sort | tail -n1)
  export ORT_DYLIB_PATH
fi
cargo run --release --locked --quiet --example bench_scan -- "${1:-10000}" "${2:-stamp}"
