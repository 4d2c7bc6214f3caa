"""Builds seqgan_fast._C: CPU kernels always; CUDA kernels when the toolchain has CUDA.

CUDA is decided by the toolchain, never by a visible GPU: torch built with CUDA and nvcc
found (CUDA_HOME), or forced with SEQGAN_FAST_CUDA=1; SEQGAN_FAST_CUDA=0 turns it off.
CPU: every ISA path (avx512, avx2, baseline) is built and chosen at run time; SEQGAN_FAST_NATIVE=1
adds -march=native (this machine only).
Arch list: TORCH_CUDA_ARCH_LIST, default "8.0;9.0".
Install with: pip install --no-build-isolation -e .
"""
import glob
import os

from setuptools import setup

try:
    import torch
    from torch.utils import cpp_extension
except ImportError as exc:  # torch is deliberately not a build requirement (DESIGN §6)
    raise SystemExit(
        "seqgan_fast needs torch installed before it is built: "
        "pip install torch==2.13.0 (CPU) then pip install --no-build-isolation -e ."
    ) from exc

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCH_LIST = "8.0;9.0"


def want_cuda() -> bool:
    flag = os.environ.get("SEQGAN_FAST_CUDA", "")
    if flag == "0":
        return False
    if flag == "1":
        return True
    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


def rel(pattern: str) -> list:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def extension():
    sources = rel("csrc/*.cpp") + rel("csrc/cpu/*.cpp")
    # No -std: torch.utils.cpp_extension passes the standard its headers need (C++20 from
    # torch 2.14 on, whose ATen.h refuses C++17; a forced -std=c++17 broke that build).
    cxx = ["-O3", "-fopenmp"]
    # No -march=native by default: the CPU core is compiled once per ISA path (avx512, avx2,
    # baseline: csrc/cpu/kernels_*.cpp) and chosen by CPUID at run time, so one build runs on
    # every x86-64. SEQGAN_FAST_NATIVE=1 tunes the whole build for this machine instead; the
    # result may then not run on another CPU (the "baseline" path included).
    if os.environ.get("SEQGAN_FAST_NATIVE", "0") == "1":
        cxx.append("-march=native")
    define_macros = []
    extra = {"cxx": cxx}
    if want_cuda():
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_ARCH_LIST)
        sources += rel("csrc/cuda/*.cu") + rel("kernels/*.cu")
        define_macros.append(("WITH_CUDA", None))
        extra["nvcc"] = ["-O3", "-lineinfo"]
        cls = cpp_extension.CUDAExtension
    else:
        cls = cpp_extension.CppExtension
    return cls(
        "seqgan_fast._C",
        sources,
        include_dirs=[os.path.join(ROOT, "csrc"), os.path.join(ROOT, "kernels")],
        define_macros=define_macros,
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
