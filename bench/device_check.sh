#!/usr/bin/env bash
# The GPU check of issue 17 item 5, one command on a machine with an NVIDIA
# GPU (bench/README.md):
#
#   bash bench/device_check.sh              # GPU: installs, measures (< 8 min)
#   bash bench/device_check.sh --dry-run    # CPU: same pipeline, tiny sizes
#
# 1. a venv (.venv-gpu) with this package and its gpu extra
#    (tensorflow[and-cuda], TF 2.21)
#    (--dry-run: the existing .venv, nothing installed);
# 2. bench/step_time.py: ResNet-18 at 224x224 and ResNet-20, bp vs
#    ss/fa/brsf/urfb, float32 / mixed_float16 / mixed_bfloat16, XLA off
#    and on (DFA is not a feedback rule of step_time: tfbio.dfa trains with
#    fit, see bench/README.md);
# 3. bench/locally_connected.py: dense and offsets vs the tied conv (time,
#    allocator peak);
# 4. one markdown file, $OUT_MD (default bench/device_check.md), with the
#    machine (nvidia-smi), the commands and every table.
#
# Every measurement runs under `timeout`; the budgets below add up to less
# than 8 minutes after the install (a measurement that runs out is reported
# as such, the others still run).
set -u
cd "$(dirname "$0")/.."

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    *) echo "device_check.sh: unknown argument '$arg' (only --dry-run)" >&2
       exit 2 ;;
  esac
done

OUT_MD=${OUT_MD:-bench/device_check.md}
START=$(date +%s)

if [ "$DRY_RUN" = 1 ]; then
  PY=.venv/bin/python
  export CUDA_VISIBLE_DEVICES=""
  # The pipeline, not the figures: the smallest model, two rules.
  MODELS=liao2016_mnist
  ALGOS=bp,brsf
  STEP_ARGS=(--steps=1 --rounds=1 --warmup=1 --batch_size=8)
  LC_ARGS=(--steps=1 --rounds=1 --warmup=1 --batch_size=4 --mem_repeats=1
           --mem_steps=1 --shapes=b)
  STEP_BUDGET=150; LC_BUDGET=150
else
  VENV=${VENV:-.venv-gpu}
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || exit 1
  fi
  PY=$VENV/bin/python
  # Install time does not count against the 8 minutes of measurement.
  # setup.py's gpu extra: tensorflow[and-cuda] in the project's TF range.
  timeout 900 "$PY" -m pip install --quiet --upgrade pip &&
    timeout 900 "$PY" -m pip install --quiet -e '.[gpu]' || {
      echo "device_check.sh: install failed" >&2; exit 1; }
  "$PY" -c 'import tensorflow as tf, sys; g = tf.config.list_physical_devices("GPU"); print("TensorFlow", tf.__version__, "GPUs:", g); sys.exit(0 if g else 3)' || {
    echo "device_check.sh: TensorFlow sees no GPU" >&2; exit 3; }
  MODELS=resnet18_224,resnet20
  STEP_ARGS=(--steps=5 --rounds=3 --warmup=2 --batch_size=64)
  LC_ARGS=(--steps=10 --rounds=5 --warmup=2 --mem_repeats=1)
  STEP_BUDGET=110; LC_BUDGET=100
  START=$(date +%s)
fi
ALGOS=${ALGOS:-bp,ss,fa,brsf,urfb}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

run() {  # run NAME BUDGET_S CMD...: its table into $TMP/NAME.md, one status
  local name=$1 budget=$2; shift 2
  echo "== $name (<= ${budget}s): $*"
  if timeout "$budget" "$@" --out="$TMP/$name.md" >"$TMP/$name.log" 2>&1; then
    echo "ok ($name)"
  else
    echo "FAILED or over budget ($name, exit $?); log tail:"
    tail -3 "$TMP/$name.log"
    echo "(no table: exit status of \`$*\` was not 0 within ${budget}s)" \
      >"$TMP/$name.md"
  fi
}

for policy in float32 mixed_float16 mixed_bfloat16; do
  extra=()
  [ "$policy" != float32 ] && extra=(--mixed_precision="$policy")
  run "step_$policy" "$STEP_BUDGET" "$PY" bench/step_time.py \
    --models="$MODELS" --algorithms="$ALGOS" --xla=both "${STEP_ARGS[@]}" \
    "${extra[@]}"
done
run lc "$LC_BUDGET" "$PY" bench/locally_connected.py \
  --implementations=dense,offsets --xla=both "${LC_ARGS[@]}"

{
  echo "# tfbio device check"
  echo
  echo "\`bash bench/device_check.sh$([ "$DRY_RUN" = 1 ] && echo ' --dry-run')\`"
  echo "on $(date -u '+%Y-%m-%d %H:%M UTC'), $(( $(date +%s) - START )) s of"
  echo "measurement. Machine: $("$PY" -c 'from tfbio.experiments import machine; print(machine.machine())' 2>/dev/null)."
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo
    echo '```'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    echo '```'
  else
    echo "No nvidia-smi: no GPU (CPU figures)."
  fi
  for policy in float32 mixed_float16 mixed_bfloat16; do
    echo
    echo "## Training step, $policy (ratio to bp; target <= 1.05)"
    echo
    cat "$TMP/step_$policy.md"
  done
  echo
  echo "## LocallyConnected2D: dense and offsets vs the tied conv"
  echo
  cat "$TMP/lc.md"
} >"$OUT_MD"
echo "wrote $OUT_MD ($(( $(date +%s) - START )) s)"
