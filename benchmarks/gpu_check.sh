#!/usr/bin/env bash
# One-command GPU check for a fresh CUDA machine (written for the lent H200: Python 3.12,
# torch 2.11 + CUDA 13, Triton 3.6, 16 cores, no network), in one run of at most 9 minutes.
#
#   bash benchmarks/gpu_check.sh             # from the repository root, on the GPU machine
#   bash benchmarks/gpu_check.sh --dry-run   # anywhere: CUDA stages say "skipped: no CUDA",
#                                            # the rest runs on CPU at tiny sizes (CI runs it)
#
# Stages and their caps in seconds (each under `timeout`, the whole under GPU_CHECK_BUDGET_S,
# default 540; a stage gets min(cap, time left)):
#   env          10  versions, nvidia-smi
#   build       150  seqgan_fast._C with CUDA in place (TORCH_CUDA_ARCH_LIST=9.0 forced: the
#                    default list compiles twice; MAX_JOBS = cores); meanwhile, in the
#                    background and under the same cap: the Triton GPU tests (they need no
#                    _C) and a Triton / torch.compile warm-up that fills the compile caches
#   tests_cuda   90  the cuda backend's tests and the CUDA-graph discriminator step
#   bench_paper  60  rollout/sample/decode/rewards, paper config, every GPU backend
#   bench_large  75  the same at the large config
#   bench_train  45  score and d_epoch (paper)
#   train_quick  45  seqgan-fast train --device cuda --preset quick
#   train_paper  60  the paper preset on the official oracle, a few batches of each phase
#                    (GPU_CHECK_PAPER_SET), projected to the full schedule
#   (sequential caps: 535 s; packing the results takes a few seconds)
# A CUDA backend that fails to build is a failure (its tests are expected, not skipped:
# SEQGAN_FAST_EXPECT_BACKENDS). Bench JSON is rewritten after every case, so a timeout loses
# one case, not a stage. TF32 is off for the reference and every agreement check.
#
# What comes back (at most 8 files): $OUT/gpu_check.tgz (everything below, checkpoints
# excluded), $OUT/results.json (one document: stages, test counts per backend, bench rows with
# agreement and ratios, roofline, training phases and projection), $OUT/summary.txt (printed
# last) and $OUT/log.txt. $OUT defaults to ./gpu_out.
# The paper stage needs target_params.npz: $SEQGAN_FAST_DATA/seqgan_oracle/ (default
# ../shared/data) or ./gpu_data/seqgan_oracle/ (git-ignored; copy it there and carry it).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DRY=0
case "${1:-}" in
  "") ;;
  --dry-run) DRY=1 ;;
  *) echo "gpu_check.sh: unknown argument ${1} (expected --dry-run or nothing)" >&2; exit 2 ;;
esac
DEST="${OUT:-$ROOT/gpu_out}"
mkdir -p "$DEST" || exit 2
rm -f "$DEST/gpu_check.tgz" "$DEST/results.json" "$DEST/summary.txt" "$DEST/log.txt"
WORK_PARENT="$(mktemp -d)"
WORK="$WORK_PARENT/gpu_check"
mkdir -p "$WORK"
LOG="$DEST/log.txt"
: > "$LOG"
: > "$WORK/stages.tsv"
BUDGET_S="${GPU_CHECK_BUDGET_S:-540}"
START_S=$(date +%s)
PY="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET

log() { echo "[gpu_check +$(( $(date +%s) - START_S ))s] $*" | tee -a "$LOG" >&2; }
left() { echo $(( BUDGET_S - ($(date +%s) - START_S) )); }

# record NAME STATUS SECONDS NOTE: one line of stages.tsv (STATUS: an exit code or "skipped")
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$WORK/stages.tsv"; }

skip() { log "SKIP $1: $2"; record "$1" skipped 0 "$2"; }

# run_stage NAME CAP_S OUTFILE CMD...: CMD under min(CAP_S, time left), output to OUTFILE
# (its tail to the log), recorded in stages.tsv; returns CMD's status (124 on timeout)
run_stage() {
  local name="$1" cap="$2" outfile="$3" t0 rc lim
  shift 3
  lim=$(left)
  if (( lim < 10 )); then
    skip "$name" "the ${BUDGET_S}s budget is spent"
    return 124
  fi
  (( cap > lim )) && cap=$lim
  log "START $name (cap ${cap}s): $*"
  t0=$(date +%s)
  timeout --kill-after=5 "$cap" "$@" > "$outfile" 2>&1
  rc=$?
  tail -n 25 "$outfile" >> "$LOG"
  record "$name" "$rc" "$(( $(date +%s) - t0 ))" "cap ${cap}s"
  log "END $name rc=$rc"
  return $rc
}

# -- env ------------------------------------------------------------------------------------
{ nvidia-smi 2>&1 || echo "nvidia-smi unavailable"; } > "$WORK/nvidia-smi.txt"
run_stage env 10 "$WORK/env.json" "$PY" -c '
import json, os, platform, subprocess, sys
info = {"python": sys.version.split()[0], "machine": platform.machine(), "cores": os.cpu_count()}
try:
    import torch
    info.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                cuda_available=torch.cuda.is_available(),
                device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
except Exception as exc:
    info["torch"] = f"import failed: {exc}"
try:
    import triton
    info["triton"] = triton.__version__
except Exception as exc:
    info["triton"] = f"import failed: {exc}"
try:
    out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout
    info["nvcc"] = out.strip().splitlines()[-1] if out.strip() else None
except OSError:
    info["nvcc"] = None
print(json.dumps(info))
'

HAVE_CUDA=0
if (( DRY == 0 )); then
  if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >> "$LOG" 2>&1
  then HAVE_CUDA=1
  else log "torch sees no CUDA device: the CUDA stages are skipped (use --dry-run on purpose)"
  fi
fi
NO_CUDA="no CUDA"
(( DRY )) && NO_CUDA="no CUDA (dry run)"

# -- build, with the Triton tests and the warm-up beside it --------------------------------
export TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS="$(nproc)"
# torch takes CUDA_HOME from `which nvcc`; where nvcc sits in /usr/local/bin that gives
# /usr/local, whose lib64 has no libcudart (the link then fails: seen on the CPU machines)
if [[ -z "${CUDA_HOME:-}" && ! -e /usr/local/lib64/libcudart.so \
      && -e /usr/local/cuda/lib64/libcudart.so ]]; then
  export CUDA_HOME=/usr/local/cuda
fi
BG_PIDS=()
if (( HAVE_CUDA )); then
  export SEQGAN_FAST_CUDA=1
  ( t0=$(date +%s)
    timeout --kill-after=5 150 env TRITON_INTERPRET=0 "$PY" -m pytest -q -rs -p no:cacheprovider \
      tests/test_score_triton.py tests/test_backend_cuda.py -k triton \
      --junitxml="$WORK/junit_triton.xml" > "$WORK/pytest_triton.txt" 2>&1
    record tests_triton "$?" "$(( $(date +%s) - t0 ))" "background, cap 150s" ) &
  BG_PIDS+=($!)
  ( t0=$(date +%s)
    timeout --kill-after=5 150 "$PY" -m seqgan_fast bench --device cuda --op rollout,sample,decode \
      --backends triton,torch_compile --config paper,large --repeats 1 --warmup 0 -q \
      --json "$WORK/bench_warmup.json" > "$WORK/warmup.txt" 2>&1
    record warmup "$?" "$(( $(date +%s) - t0 ))" "background, cap 150s" ) &
  BG_PIDS+=($!)
  run_stage build 150 "$WORK/build.txt" "$PY" setup.py build_ext --inplace
  BUILD_RC=$?
  log "waiting for the background stages"
  wait "${BG_PIDS[@]}"
else
  skip build "$NO_CUDA"
  skip tests_triton "$NO_CUDA"
  skip warmup "$NO_CUDA"
  BUILD_RC=skipped
fi
"$PY" - >> "$LOG" 2>&1 <<'EOF'
from seqgan_fast import _ext, ops
print("extension:", _ext._C, "import error:", _ext.IMPORT_ERROR)
print("backends:", ops.available_backends())
EOF

# -- GPU tests ------------------------------------------------------------------------------
if (( HAVE_CUDA )); then
  # a cuda backend that did not build fails test_expected_backends_are_available
  run_stage tests_cuda 90 "$WORK/pytest_cuda.txt" env TRITON_INTERPRET=0 \
    SEQGAN_FAST_EXPECT_BACKENDS=cuda,triton "$PY" -m pytest -q -rs -p no:cacheprovider \
    tests/test_backend_cuda.py tests/test_d_step.py -k "not triton" \
    --junitxml="$WORK/junit_cuda.xml"
else
  skip tests_cuda "$NO_CUDA"
fi

# -- benchmarks (on CPU at the tiny config in a dry run) -------------------------------------
if (( HAVE_CUDA )); then
  DEVICE=cuda
  BACKENDS="reference_loop,reference,torch_compile,triton,cuda"
  SIZE=()
  PAPER=paper
  LARGE=large
else
  DEVICE=cpu
  BACKENDS="reference_loop,reference,cpp"
  SIZE=(--quick --threads 1)
  PAPER=tiny
  LARGE=tiny
fi
BENCH=("$PY" -m seqgan_fast bench --device "$DEVICE" --budget "${GPU_CHECK_BENCH_BUDGET_S:-8}" -q)
if (( HAVE_CUDA || DRY )); then
  run_stage bench_paper 60 "$WORK/bench_paper.txt" "${BENCH[@]}" "${SIZE[@]}" \
    --op rollout,sample,decode,rewards --backends "$BACKENDS" --config "$PAPER" \
    --json "$WORK/bench_paper.json"
  run_stage bench_large 75 "$WORK/bench_large.txt" "${BENCH[@]}" "${SIZE[@]}" \
    --op rollout,sample,decode --backends "$BACKENDS" --config "$LARGE" \
    --json "$WORK/bench_large.json"
  if (( HAVE_CUDA )); then
    run_stage bench_train 45 "$WORK/bench_train.txt" "${BENCH[@]}" --op score,d_epoch \
      --backends reference,triton --config paper --json "$WORK/bench_train.json"
  else
    run_stage bench_train 45 "$WORK/bench_train.txt" "${BENCH[@]}" "${SIZE[@]}" --op score \
      --backends reference,cpp --json "$WORK/bench_train.json"
  fi
else
  skip bench_paper "$NO_CUDA"
  skip bench_large "$NO_CUDA"
  skip bench_train "$NO_CUDA"
fi

# -- training (tiny sizes on CPU in a dry run) -----------------------------------------------
TRAIN=("$PY" -m seqgan_fast train --device "$DEVICE" -q --overwrite)
TINY_SET=(num_train=256 num_eval=256 d_num_negatives=256 mle_epochs=1 d_pretrain_rounds=1
          adv_batches=1 d_epochs=1)
if (( HAVE_CUDA || DRY )); then
  QUICK_SET=()
  (( HAVE_CUDA )) || QUICK_SET=(--threads 1 --set "${TINY_SET[@]}")
  run_stage train_quick 45 "$WORK/train_quick.txt" "${TRAIN[@]}" --preset quick \
    --out "$WORK/run_quick" "${QUICK_SET[@]}"
  ORACLE=""
  for cand in "${SEQGAN_FAST_DATA:-$ROOT/../shared/data}/seqgan_oracle/target_params.npz" \
              "$ROOT/gpu_data/seqgan_oracle/target_params.npz"; do
    [[ -f "$cand" ]] && { ORACLE="$cand"; break; }
  done
  if [[ -z "$ORACLE" ]]; then
    skip train_paper "target_params.npz not found (SEQGAN_FAST_DATA or gpu_data/seqgan_oracle)"
  else
    if (( HAVE_CUDA )); then
      read -r -a PAPER_SET <<< "${GPU_CHECK_PAPER_SET:-mle_epochs=20 d_pretrain_rounds=3 adv_batches=3}"
      EXTRA=()
    else
      PAPER_SET=("${TINY_SET[@]}")
      EXTRA=(--threads 1)
    fi
    run_stage train_paper 60 "$WORK/train_paper.txt" "${TRAIN[@]}" --preset paper \
      --out "$WORK/run_paper" "${EXTRA[@]}" --set "oracle_params=$ORACLE" "${PAPER_SET[@]}"
  fi
else
  skip train_quick "$NO_CUDA"
  skip train_paper "$NO_CUDA"
fi

# -- results ----------------------------------------------------------------------------------
"$PY" benchmarks/gpu_report.py "$WORK" --dest "$DEST" --budget "$BUDGET_S" \
  $( (( DRY )) && echo --dry-run ) >> "$LOG" 2>&1
REPORT_RC=$?
tar czf "$DEST/gpu_check.tgz" --exclude=checkpoints --exclude=best -C "$WORK_PARENT" gpu_check \
  2>> "$LOG"
rm -rf "$WORK_PARENT"
log "DONE in $(( $(date +%s) - START_S ))s; results in $DEST"
if [[ -f "$DEST/summary.txt" ]]; then
  cat "$DEST/summary.txt"
else
  echo "gpu_check: no summary (gpu_report.py exited $REPORT_RC; see $LOG)"
fi
exit $REPORT_RC
