"""The compiled (non-interpreted) Triton kernels do not specialise on the integer arguments that
change from call to call (seed words, step, row offsets, batch sizes): Triton compiles one
kernel per specialisation (an argument equal to 1, or divisible by 16), so specialising on them
would recompile mid-training. Checked on the JIT functions' parameters, which needs no GPU."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="triton is not installed")

# kernel -> the arguments that vary per call
PER_CALL = {
    "seqgan_fast.ops.triton_sample:_sample_kernel": ["B", "P", "seed_lo", "seed_hi", "row_offset"],
    "seqgan_fast.ops.triton_decode:_decode_kernel":
        ["B", "seed_lo", "seed_hi", "step", "row_offset", "stream"],
    "seqgan_fast.ops.triton_rollout:_prefix_kernel": ["B"],
    "seqgan_fast.ops.triton_rollout:_rollout_kernel": ["R0", "R", "B", "seed_lo", "seed_hi"],
    "seqgan_fast.ops.triton_score:_pool_group_kernel": ["M"],
}

PROBE = """
import importlib, json, sys
out = {}
for key in json.loads(sys.argv[1]):
    mod, name = key.split(":")
    fn = getattr(importlib.import_module(mod), name)
    out[key] = {"unspecialised": [p.name for p in fn.params if p.do_not_specialize],
                "ints": [p.name for p in fn.params if not p.is_constexpr]}
print(json.dumps(out))
"""


def test_per_call_arguments_are_not_specialised():
    env = {**os.environ, "TRITON_INTERPRET": "0"}  # the real JIT objects, not the interpreter's
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(PER_CALL))], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    for key, names in PER_CALL.items():
        assert set(names) <= set(got[key]["ints"]), f"{key}: {names} not all arguments"
        assert set(got[key]["unspecialised"]) == set(names), \
            f"{key}: do_not_specialize {got[key]['unspecialised']}, want {names}"
