"""The cpp backend's run-time ISA choice: one build carrying every path (avx512, avx2,
baseline), chosen by CPUID, forced by SEQGAN_FAST_ISA or ops.set_cpu_isa."""
import functools
import os
import subprocess
import sys

import pytest
import torch
from helpers import small_generator

from seqgan_fast import _ext, ops
from seqgan_fast.ops.rollout import rollout_ref

pytestmark = pytest.mark.skipif(
    not ops.is_available("cpp", "cpu"),
    reason=f"cpp backend unavailable (seqgan_fast._C without CPU kernels; {_ext.REBUILD_HINT})")

PATHS = ops.cpu_isa_paths()


def _python(code: str, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, timeout=120)


def test_paths_are_ordered_and_include_baseline():
    assert PATHS[-1] == "baseline" and PATHS[0] == ops.cpu_isa_best()
    assert set(PATHS) <= {"avx512", "avx2", "baseline"}
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if " avx512bw " in flags and " avx512vl " in flags and " avx512dq " in flags:
        assert PATHS[0] == "avx512"
    elif " avx2 " in flags and " fma " in flags:
        assert PATHS[0] == "avx2"


def test_force_and_restore():
    before = ops.cpu_isa()
    with ops.force_cpu_isa("baseline") as isa:
        assert isa == "baseline" == ops.cpu_isa()
    assert ops.cpu_isa() == before
    assert ops.set_cpu_isa("auto") == before and ops.cpu_isa() == ops.cpu_isa_best()


@pytest.mark.parametrize("bad,match", [("sse9", "unknown CPU ISA path 'sse9'"),
                                        ("AVX2", "unknown CPU ISA path 'AVX2'"),
                                        ("", None)])
def test_set_cpu_isa_refuses_unknown_paths(bad, match):
    before = ops.cpu_isa()
    if match is None:  # "" means auto
        ops.set_cpu_isa(bad)
        assert ops.cpu_isa() == ops.cpu_isa_best()
        ops.set_cpu_isa(before)
        return
    with pytest.raises(ValueError, match=match):
        ops.set_cpu_isa(bad)
    assert ops.cpu_isa() == before


def test_unrunnable_path_is_refused():
    if PATHS[0] == "avx512":
        pytest.skip("this CPU runs every path")
    with pytest.raises(ValueError, match="cannot run on this CPU"):
        ops.set_cpu_isa("avx512")


@pytest.mark.parametrize("isa", PATHS)
def test_environment_variable_forces_a_path(isa):
    code = ("import seqgan_fast.ops as o, torch; from helpers import small_generator;"
            "g = small_generator(); o.sample(g, 4, seed=0, backend='cpp'); print(o.cpu_isa())")
    r = _python(code, SEQGAN_FAST_ISA=isa, PYTHONPATH=os.path.dirname(__file__))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == isa


def test_bad_environment_variable_is_one_clear_error():
    r = _python("import seqgan_fast.ops as o; o.cpu_isa()", SEQGAN_FAST_ISA="avx9000")
    assert r.returncode != 0
    assert "SEQGAN_FAST_ISA: unknown CPU ISA path 'avx9000'" in r.stderr


@functools.lru_cache(maxsize=1)
def _paper_case():
    """The paper's generator size (V=5000, E=H=32, T=20), 16 sequences, 2 rollouts each."""
    g = small_generator(5000, 32, 32, 20, seed=7, scale=1.0)
    x = ops.sample(g, 16, seed=1, backend="reference")
    return g, x, rollout_ref(g.kernel_weights(), x, 2, 3, 1.0)


def test_fma_paths_are_bit_identical():
    """avx512 and avx2 run the same lanes with the same FMAs in the same order."""
    if "avx2" not in PATHS or "avx512" not in PATHS:
        pytest.skip("needs a CPU that runs both the avx512 and the avx2 path")
    g, x, _ = _paper_case()
    out = {}
    for isa in ("avx512", "avx2"):
        with ops.force_cpu_isa(isa):
            out[isa] = (ops.rollout(g, x, 16, seed=3, backend="cpp"),
                        ops.sample(g, 256, seed=9, temperature=0.8, backend="cpp"))
    assert torch.equal(out["avx512"][0], out["avx2"][0])
    assert torch.equal(out["avx512"][1], out["avx2"][1])


@pytest.mark.parametrize("isa", PATHS)
def test_every_path_agrees_with_reference_at_paper_size(isa):
    g, x, want = _paper_case()
    with ops.force_cpu_isa(isa):
        got = ops.rollout(g, x, 2, seed=3, backend="cpp")
    agree = (got == want).double().mean().item()
    assert agree >= 0.999, f"{isa}: {agree:.5f} of rollout tokens equal the reference"


def test_wide_instructions_only_inside_their_paths():
    """No -march=native: outside the avx512 / avx2 copies of the core, the extension holds no
    zmm / ymm instruction, so one build runs on every x86-64 (an AVX-512 build host's binary
    used to die with an illegal instruction on an AVX2 one)."""
    import platform
    import shutil

    if platform.machine() not in ("x86_64", "AMD64") or shutil.which("objdump") is None:
        pytest.skip("needs x86-64 and objdump")
    if os.environ.get("SEQGAN_FAST_NATIVE") == "1":
        pytest.skip("a SEQGAN_FAST_NATIVE=1 build is for its build machine only")
    so = _ext._C.__file__
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", so], capture_output=True,
                         text=True, check=True).stdout
    offenders, name = [], None
    for line in dis.splitlines():
        if line.endswith(">:") and "<" in line:
            name = line[line.index("<") + 1:-2]
        elif "%zmm" in line and "seqgan::avx512::" not in (name or ""):
            offenders.append(("zmm", name))
        elif "%ymm" in line and not any(f"seqgan::{p}::" in (name or "")
                                         for p in ("avx512", "avx2")):
            offenders.append(("ymm", name))
    assert not offenders, f"wide registers outside their ISA path: {sorted(set(offenders))[:5]}"


def test_cli_refuses_a_bad_isa_variable_with_one_line():
    r = subprocess.run([sys.executable, "-m", "seqgan_fast", "sample", "--run", "nowhere"],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "SEQGAN_FAST_ISA": "avx9000"})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "seqgan-fast: error: SEQGAN_FAST_ISA: unknown CPU ISA path 'avx9000': expected one of "
        "avx512, avx2, baseline, auto"]
