#!/usr/bin/env bash
# Packaging check, from the source tree it is run in:
#   1. the source distribution (python -m build --sdist) carries what the build needs: the C++
#      headers, the CUDA sources, CMakeLists.txt and the C++ tests;
#   2. a wheel is built from that sdist (what `pip install seqgan_fast-*.tar.gz` does) against
#      the torch installed here (--no-build-isolation: the extension is tied to torch's ABI);
#   3. the wheel installs into a fresh virtual environment holding the same torch, and works
#      outside the source tree: import, ops.available_backends() lists cpp, a fused
#      ops.rollout equals reference, seqgan-fast --version, a tiny seqgan-fast train.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
say() { echo "[package] $*"; }

"$PY" -m pip install -q build
"$PY" -m build --sdist --no-isolation --outdir "$WORK/dist" . > "$WORK/sdist.log" 2>&1 \
  || { cat "$WORK/sdist.log"; exit 1; }
SDIST=$(ls "$WORK"/dist/*.tar.gz)
tar tzf "$SDIST" | sed 's|^[^/]*/||' | sort > "$WORK/sdist.txt"
for need in csrc/checks.h csrc/common/api.h csrc/cpu/kernels_table.h csrc/cuda/rollout_cuda.cu \
            kernels/seqgan_kernels.cuh kernels/rollout.cu CMakeLists.txt tests/cpp/test_core.cpp \
            seqgan_fast/_version.py; do
  grep -qx "$need" "$WORK/sdist.txt" || { echo "sdist lacks $need"; exit 1; }
done
say "sdist $(basename "$SDIST"): $(wc -l < "$WORK/sdist.txt") entries, headers included:"
grep -E '\.(h|cuh)$' "$WORK/sdist.txt" | tr '\n' ' '; echo

MAX_JOBS="${MAX_JOBS:-2}" "$PY" -m pip wheel -q --no-build-isolation --no-deps \
  -w "$WORK/dist" "$SDIST"
WHEEL=$(ls "$WORK"/dist/*.whl)
"$PY" -m zipfile -l "$WHEEL" | awk 'NR > 1 {print $1}' | sort > "$WORK/wheel.txt"
grep -q '^seqgan_fast/_C\..*\.so$' "$WORK/wheel.txt" || { echo "wheel lacks _C"; exit 1; }
if grep -q '^seqgan_fast/benchmarks/' "$WORK/wheel.txt"; then
  echo "wheel carries seqgan_fast/benchmarks (the harness ships with the source tree only)"
  exit 1
fi
say "wheel $(basename "$WHEEL"): $(wc -l < "$WORK/wheel.txt") files; packages:"
grep '__init__.py$' "$WORK/wheel.txt" | sed 's|/__init__.py||' | tr '\n' ' '; echo

TORCH=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q "torch==$TORCH" 2>&1 | grep -v "^WARNING: Location" || true
"$VPY" -m pip install -q "$WHEEL" 2>&1 | grep -v "^WARNING: Location" || true
cd "$WORK"  # outside the source tree
"$VPY" - <<'PY'
import torch

import seqgan_fast
from seqgan_fast import Generator, ops

assert "site-packages" in seqgan_fast.__file__, seqgan_fast.__file__
assert "cpp" in ops.available_backends(), ops.available_backends()
torch.manual_seed(0)
g = Generator(50, 8, 16, 6)
x = ops.sample(g, 4, seed=1, backend="reference")
fused = ops.rollout(g, x, 3, seed=7, backend="cpp")
ref = ops.rollout(g, x, 3, seed=7, backend="reference")
assert torch.equal(fused, ref), "cpp rollout differs from reference"
print(f"[package] import ok: seqgan_fast {seqgan_fast.__version__} from {seqgan_fast.__file__}, "
      f"backends {ops.available_backends()}, cpp rollout == reference {tuple(fused.shape)}")
PY
"$WORK/venv/bin/seqgan-fast" --version
"$WORK/venv/bin/seqgan-fast" train --out "$WORK/run" -q --threads 1 --set vocab_size=61 \
  seq_len=7 g_emb_dim=8 g_hidden_dim=16 num_train=120 num_eval=90 mle_epochs=2 eval_every=2 \
  d_pretrain_rounds=1 d_num_negatives=64 d_epochs=1 d_emb_dim=8 d_filter_sizes=2,3 \
  d_num_filters=8,8 adv_batches=1 num_rollouts=2 batch_size=32
test -f "$WORK/run/summary.json"
"$VPY" -c "import json,sys; s=json.load(open(sys.argv[1])); print('[package] tiny train ok:', s['version'], 'nll_oracle', round(s['nll_oracle'], 3))" "$WORK/run/summary.json"
say "passed"
