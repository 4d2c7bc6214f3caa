#!/usr/bin/env bash
# One-command GPU check for a fresh CUDA machine (written for an H200; no network needed).
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#
# Stages (each under `timeout`, the whole run under GPU_CHECK_BUDGET_S, default 470 s):
#   1. environment: nvidia-smi, python/torch/triton/nvcc versions, pip list
#   2. stop cleanly (exit 3) when torch sees no CUDA device
#   3. build seqgan_fast._C in place with CUDA (SEQGAN_FAST_CUDA=1, TORCH_CUDA_ARCH_LIST=9.0);
#      GPU_CHECK_PIP=1 uses `pip install --no-build-isolation --no-deps -e .` instead
#      (a second full compile, so off by default to stay inside the budget)
#   4. GPU tests: tests/test_backend_cuda.py, the CUDA-graph discriminator step
#      (tests/test_d_step.py) and the Triton scoring kernel on CUDA tensors
#      (tests/test_score_triton.py), in their own process with TRITON_INTERPRET=0
#   5. seqgan-fast bench --device cuda --op rollout,sample,decode for --config paper and large,
#      backends reference_loop,reference,torch_compile,triton,cuda, JSON per config
#      and the training ops: score (reference vs the Triton kernel) and d_epoch (reference,
#      fast = CUDA-graph step, fast_tf32) for --config paper -> bench_train.json
#   6. fraction of the fp32 FMA roofline (67 TFLOP/s non-tensor on H200; GPU_PEAK_TFLOPS)
#      for the rollout of each config: FLOPs per completion token ~ 2*H*(V + 4*(E+H))
# GPU_CHECK_STAGES (default build,tests,bench) picks stages, e.g. `build,bench` on a second
# run (a warm machine keeps the in-place build, so even `tests` or `bench` alone works there).
# Everything goes to $OUT (or ./gpu_out): log.txt, env.txt, nvidia-smi.txt, build.txt,
# pytest.txt, bench_paper.json, bench_large.json, bench_train.json, roofline.json, summary.txt.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEST="${OUT:-$ROOT/gpu_out}"
mkdir -p "$DEST"
LOG="$DEST/log.txt"
: > "$LOG"
BUDGET_S="${GPU_CHECK_BUDGET_S:-470}"
START_S=$(date +%s)
PY="${PYTHON:-python}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET

want() { [[ ",${GPU_CHECK_STAGES:-build,tests,bench}," == *",$1,"* ]]; }
log() { echo "[gpu_check $(date -u +%H:%M:%S) +$(( $(date +%s) - START_S ))s] $*" | tee -a "$LOG"; }

# run_stage NAME CAP_S OUTFILE CMD...: runs CMD under min(CAP_S, time left), output to OUTFILE
# (and the log); returns CMD's status (124 on timeout).
run_stage() {
  local name="$1" cap="$2" outfile="$3"
  shift 3
  local left=$(( BUDGET_S - ($(date +%s) - START_S) ))
  if (( left < 10 )); then
    log "SKIP $name: total budget of ${BUDGET_S}s spent"
    return 124
  fi
  (( cap > left )) && cap=$left
  log "START $name (limit ${cap}s): $*"
  timeout --kill-after=5 "$cap" "$@" > "$outfile" 2>&1
  local rc=$?
  tail -n 40 "$outfile" >> "$LOG"
  log "END $name rc=$rc"
  return $rc
}

# -- 1. environment ---------------------------------------------------------------------
log "repository $ROOT, output $DEST, budget ${BUDGET_S}s"
{ nvidia-smi || echo "nvidia-smi unavailable"; } > "$DEST/nvidia-smi.txt" 2>&1
{
  echo "date: $(date -u)"
  echo "uname: $(uname -a)"
  echo "cpus: $(nproc)"
  "$PY" - <<'EOF'
import sys
print("python:", sys.version.replace("\n", " "))
try:
    import torch
    print("torch:", torch.__version__, "cuda:", torch.version.cuda,
          "device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
except Exception as exc:  # noqa: BLE001
    print("torch: import failed:", exc)
try:
    import triton
    print("triton:", triton.__version__)
except Exception as exc:  # noqa: BLE001
    print("triton: import failed:", exc)
EOF
  { command -v nvcc && nvcc --version; } || echo "nvcc: not found"
  "$PY" -m pip list 2>/dev/null | grep -iE "^(torch|triton|numpy|scipy|pytest|safetensors|tqdm|matplotlib|nltk|ninja) " || true
} > "$DEST/env.txt" 2>&1
cat "$DEST/env.txt" >> "$LOG"

# -- 2. a CUDA device, or stop here -----------------------------------------------------------
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >> "$LOG" 2>&1; then
  log "FAIL: torch sees no CUDA device (torch.cuda.is_available() is False); nothing built or run"
  echo "no CUDA device" > "$DEST/summary.txt"
  exit 3
fi

# -- 3. build with CUDA -----------------------------------------------------------------------
export SEQGAN_FAST_CUDA=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
BUILD_RC=skipped
if want build; then
  if [[ "${GPU_CHECK_PIP:-0}" == "1" ]]; then
    run_stage build 240 "$DEST/build.txt" "$PY" -m pip install --no-build-isolation --no-deps -e .
  else
    run_stage build 240 "$DEST/build.txt" "$PY" setup.py build_ext --inplace
  fi
  BUILD_RC=$?
fi
"$PY" - >> "$LOG" 2>&1 <<'EOF'
from seqgan_fast import ops, _ext
print("extension:", _ext._C, "import error:", _ext.IMPORT_ERROR)
print("backends on cuda:", ops.available_backends("cuda"))
EOF

# -- 4. GPU tests -----------------------------------------------------------------------------
TEST_RC=skipped
if want tests; then
  run_stage tests 180 "$DEST/pytest.txt" env TRITON_INTERPRET=0 "$PY" -m pytest \
    tests/test_backend_cuda.py tests/test_d_step.py tests/test_score_triton.py -q -rs -s \
    -p no:cacheprovider
  TEST_RC=$?
fi

# -- 5. benchmarks ----------------------------------------------------------------------------
BACKENDS="reference_loop,reference,torch_compile,triton,cuda"
BENCH=("$PY" -m seqgan_fast bench --device cuda --op rollout,sample,decode --backends "$BACKENDS"
       --budget "${GPU_CHECK_BENCH_BUDGET_S:-15}")
PAPER_RC=skipped
LARGE_RC=skipped
TRAIN_RC=skipped
if want bench; then
  run_stage bench_paper 120 "$DEST/bench_paper.txt" "${BENCH[@]}" --config paper \
    --json "$DEST/bench_paper.json"
  PAPER_RC=$?
  run_stage bench_large 180 "$DEST/bench_large.txt" "${BENCH[@]}" --config large \
    --json "$DEST/bench_large.json"
  LARGE_RC=$?
  run_stage bench_train 150 "$DEST/bench_train.txt" "$PY" -m seqgan_fast bench --device cuda \
    --op score,d_epoch --backends reference,triton --config paper \
    --budget "${GPU_CHECK_BENCH_BUDGET_S:-15}" --json "$DEST/bench_train.json"
  TRAIN_RC=$?
fi

# -- 6. roofline fraction of the rollouts -------------------------------------------------------
"$PY" - "$DEST" > "$DEST/roofline.txt" 2>&1 <<'EOF'
import json
import os
import sys

try:
    from seqgan_fast.benchmarks.configs import CONFIGS
except ImportError:
    from benchmarks.configs import CONFIGS

dest = sys.argv[1]
peak = float(os.environ.get("GPU_PEAK_TFLOPS", "67")) * 1e12  # H200 fp32 non-tensor
rows = []
for name in ("paper", "large"):
    path = os.path.join(dest, f"bench_{name}.json")
    if not os.path.exists(path):
        print(f"{name}: no {path}")
        continue
    cfg = CONFIGS[name]
    flops_per_token = 2 * cfg.hidden * (cfg.vocab + 4 * (cfg.emb + cfg.hidden))
    for r in json.load(open(path)).get("results", []):
        if r.get("op") != "rollout" or not r.get("median_s"):
            continue
        tokens = r.get("tokens") or cfg.rollout_tokens
        flops = tokens * flops_per_token
        rows.append({"config": name, "backend": r.get("backend"), "median_s": r["median_s"],
                     "tokens": tokens, "tflops": flops / r["median_s"] / 1e12,
                     "fraction_of_fp32_peak": flops / r["median_s"] / peak})
for r in rows:
    print(f"{r['config']:6s} {r['backend']:15s} median {r['median_s'] * 1e3:9.3f} ms "
          f"{r['tflops']:7.3f} TFLOP/s = {100 * r['fraction_of_fp32_peak']:6.2f}% of fp32 peak")
json.dump({"peak_flops": peak, "flops_per_token": "2*H*(V + 4*(E+H))", "results": rows},
          open(os.path.join(dest, "roofline.json"), "w"), indent=1)
EOF
cat "$DEST/roofline.txt" >> "$LOG"

SUMMARY="build=$BUILD_RC tests=$TEST_RC bench_paper=$PAPER_RC bench_large=$LARGE_RC bench_train=$TRAIN_RC total=$(( $(date +%s) - START_S ))s"
echo "$SUMMARY" > "$DEST/summary.txt"
grep -E "passed|failed|error" "$DEST/pytest.txt" | tail -n 1 >> "$DEST/summary.txt" || true
log "DONE $SUMMARY"
ok() { [[ $1 == 0 || $1 == skipped ]]; }
ok "$BUILD_RC" && ok "$TEST_RC" && ok "$PAPER_RC" && ok "$LARGE_RC" && ok "$TRAIN_RC"
