"""The Triton kernels lower to an sm_90 cubin (ahead of time, no GPU needed): what the
interpreter tests cannot show (types, bitcasts, the do_not_specialize lists, register use).
Both cells at the paper's hidden size (H = 32, 8 warps) and at H = 128 (4 warps), as
``plan_launch`` picks them. Compiled in a subprocess: the interpreter tests set
TRITON_INTERPRET=1 for this one."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="triton is not installed")

SCRIPT = r"""
import json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from seqgan_fast.ops import triton_decode, triton_rollout, triton_sample, triton_score
from seqgan_fast.ops.triton_common import launch_config, chunk

I64_PTRS = {"prefix_ptr", "out_ptr", "x_ptr", "tok_ptr", "next_ptr"}
I64_INTS = {"R0", "R"}
out = {}
for cell in (0, 1):
    for hp in (32, 128):
        _, warps = launch_config(1024, hp, False)
        meta = dict(BLOCK_R=16, HP=hp, EP=hp, KC=chunk(hp, hp), K=256, PRECISION="ieee",
                    CELL=cell, STREAM=1, HAS_H0=True, HAS_C0=cell == 0)
        for fn in (triton_sample._sample_kernel, triton_rollout._prefix_kernel,
                   triton_rollout._rollout_kernel, triton_decode._decode_kernel):
            sig, consts = {}, {}
            for p in fn.params:
                n = p.name
                if p.is_constexpr:
                    sig[n], consts[n] = "constexpr", meta[n]
                elif n.endswith("_ptr"):
                    sig[n] = "*i64" if n in I64_PTRS else "*fp32"
                else:
                    sig[n] = "fp32" if n == "temperature" else "i64" if n in I64_INTS else "i32"
            k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts),
                               target=GPUTarget("cuda", 90, 32),
                               options={"num_warps": warps, "num_stages": 1})
            out[f"{fn.__name__} cell={cell} H={hp}"] = len(k.asm.get("cubin", b""))
fn = triton_score._pool_group_kernel
sig = {p.name: ("constexpr" if p.is_constexpr else "*i64" if p.name == "tok_ptr" else
                "*fp32" if p.name.endswith("_ptr") else "i32") for p in fn.params}
k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs={"BLOCK_R": 32, "BLOCK_F": 64}),
                   target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
out["_pool_group_kernel"] = len(k.asm.get("cubin", b""))
print(json.dumps(out))
"""


def test_kernels_compile_to_sm90_cubins():
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    sizes = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(sizes) == 17  # 4 kernels x 2 cells x 2 sizes, and the scoring kernel
    empty = [name for name, n in sizes.items() if n < 1000]
    assert not empty, f"no cubin for {empty}"
