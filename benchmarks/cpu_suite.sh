#!/usr/bin/env bash
# The CPU figures of the README and docs/performance.md, as run for them (2-core machine class,
# idle: no build, test or other job beside it). Writes docs/bench/cpu-avx512/*.json (and the
# paper run's .png); prints each table (`python benchmarks/report.py FILE.json --markdown`
# prints one as in the docs). docs/bench/README.md lists which command wrote each file.
# Every run uses the allocator settings of `seqgan-fast train` (seqgan_fast/cli/malloc.py; the
# JSON's machine.malloc); SEQGAN_FAST_MALLOC=system measures glibc's defaults instead.
#   bash benchmarks/cpu_suite.sh [paper|avx2|train|large|cells|all]   (default: all)
# SEQGAN_FAST_BENCH_DIR=DIR writes into DIR instead (another machine class, e.g.
# docs/bench/cpu-avx2; a measurement that does not replace the committed one, e.g. /tmp/x).
# paper  every op with a cpp kernel at the paper size, every ISA path of the one build forced
#        in the same run (cpp = the best this CPU supports, cpp@avx2, cpp@baseline)
# avx2   an AVX2 instance emulated on this one: our core on its avx2 path and torch (ATen,
#        MKL, oneDNN) capped at AVX2 too, so the baselines and the GEMM floor match
# train  discriminator epoch (the module with default Adam vs the trainer's step: fused Adam and
#        the sparse pooling backward, against the sgemm FLOP floor; also AVX2-emulated) and
#        the schedule's phase costs with the projected paper-preset wall time
# large  rollout / sample / decode at the large size on every ISA path, and score (reference,
#        cpp, cpp@avx2)
# cells  the g_cell axis: LSTM and GRU rows (<config>-gru, /LSTM column) for rollout, sample
#        and decode at paper (every ISA path; AVX2-emulated too) and large
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
out=${SEQGAN_FAST_BENCH_DIR:-docs/bench/cpu-avx512}
mkdir -p "$out"
bench() { python -m seqgan_fast bench "$@"; }
paths=cpp,cpp@avx2,cpp@baseline

if [[ $what == paper || $what == all ]]; then
  bench --op rollout,rewards,score,sample,decode,adv_step --config paper \
    --backends reference_loop,reference,$paths --budget 20 --json "$out/paper.json"
  python benchmarks/plot.py "$out/paper.json" -o "$out/paper.png"
fi
if [[ $what == avx2 || $what == all ]]; then
  SEQGAN_FAST_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
  ONEDNN_MAX_CPU_ISA=AVX2 bench --op rollout,rewards,score,sample,adv_step --config paper \
    --backends reference_loop,reference,cpp --budget 20 --json "$out/paper_avx2emu.json"
fi
if [[ $what == train || $what == all ]]; then
  bench --op d_epoch,schedule --config paper --repeats 3 --json "$out/train.json"
  SEQGAN_FAST_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
  ONEDNN_MAX_CPU_ISA=AVX2 bench --op d_epoch --config paper --repeats 3 \
    --json "$out/train_avx2emu.json"
fi
if [[ $what == large || $what == all ]]; then
  bench --op rollout --config large --backends $paths --repeats 2 --warmup 0 \
    --budget 60 --json "$out/large.json"
  bench --op sample,decode --config large --backends reference,$paths --repeats 2 \
    --warmup 0 --budget 60 --json "$out/large_sample.json"
  bench --op score --config large --backends reference,cpp,cpp@avx2 --repeats 2 --warmup 0 \
    --budget 60 --json "$out/large_score.json"
fi
if [[ $what == cells || $what == all ]]; then
  bench --op rollout,sample,decode --config paper --cell lstm,gru \
    --backends reference_loop,reference,$paths --budget 20 --json "$out/paper_cells.json"
  SEQGAN_FAST_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
  ONEDNN_MAX_CPU_ISA=AVX2 bench --op rollout --config paper --cell lstm,gru \
    --backends reference_loop,reference,cpp --budget 20 \
    --json "$out/paper_cells_avx2emu.json"
  bench --op rollout --config large --cell lstm,gru --backends $paths --repeats 2 --warmup 0 \
    --budget 60 --json "$out/large_cells.json"
  bench --op sample,decode --config large --cell lstm,gru --backends reference,$paths \
    --repeats 2 --warmup 0 --budget 60 --json "$out/large_cells_sample.json"
fi
