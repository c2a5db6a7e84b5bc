#!/usr/bin/env bash
# Installs everything ragwall needs at run and test time, from package registries only:
#   - the Python venv .venv with the pinned requirements.txt (onnxruntime's shared library,
#     tokenizers/numpy for benchmarks, qdrant-client for proxy tests);
#   - the release build of ragwall (crates from crates.io).
# Idempotent: a second run only checks. Prints the path of the ONNX Runtime library it found.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python requirements" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
ORT_LIB=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* 2>/dev/null | sort | tail -n1)
if [ -z "$ORT_LIB" ]; then
  echo "setup: onnxruntime's shared library is missing from .venv" >&2
  exit 1
fi
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
echo "setup: building ragwall (release)" >&2
cargo build --release --locked --quiet
echo "$PWD/$ORT_LIB"
