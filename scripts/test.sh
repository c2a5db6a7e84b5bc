#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: installs what it needs (scripts/setup.sh), then
# runs formatting and lint checks, every Rust test (unit, integration with the real model and
# real HTTP on loopback), the detection regression gate, and the config/compose checks.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_DYLIB_PATH=$(scripts/setup.sh)
export ORT_DYLIB_PATH

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== GPU build (cuda + tensorrt execution providers compile; no GPU here to run them)"
cargo check --locked --quiet --features cuda,tensorrt
echo "== cargo test"
cargo test --locked --release
echo "== ragwall check-config ragwall.example.toml"
"${CARGO_TARGET_DIR:-target}"/release/ragwall check-config ragwall.example.toml
echo "== docker-compose.yml (Compose schema, references, loopback ports; no engine needed)"
.venv/bin/python scripts/compose_check.py docker-compose.yml
echo "== detection regression gate (tests/data/regression.jsonl)"
"${CARGO_TARGET_DIR:-target}"/release/ragwall eval --data tests/data/regression.jsonl --gate tests/data/regression.gate.toml
