#!/usr/bin/env bash
# The demo: installs what it needs (scripts/setup.sh), then runs ragwall's main job on the bundled
# sample chunks with the bundled default model — no servers. Prints each verdict in one line,
# then the wrapped context and system instruction the prompt builder would receive.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_DYLIB_PATH=$(scripts/setup.sh)
export ORT_DYLIB_PATH
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
"${CARGO_TARGET_DIR:-target}"/release/ragwall guard --input examples/sample_chunks.jsonl --wrap delimit > "$out"
status=$?
set -e
.venv/bin/python - "$out" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'id':<8} {'action':<11} {'score':>6}  reasons")
for v in lines:
    if "context" in v:
        trailer = v
        continue
    reasons = ", ".join(r["code"] for r in v["reasons"]) or "-"
    print(f"{str(v['id']):<8} {v['action']:<11} {v['score']:>6.3f}  {reasons}")
print("\n--- system instruction for the prompt builder ---")
print(trailer["system_instruction"])
print(f"\n--- wrapped context ({trailer['chunks']} chunks passed) ---")
print(trailer["context"])
PY
exit $status
