"""CPU-only proof that the CUDA device code compiles (DESIGN §6): ``nvcc -arch=sm_90 -c`` on
every kernels/*.cu, which instantiates each kernel for both cells (LSTM and GRU). Skipped
where nvcc is absent; no GPU needed."""
import shutil
import subprocess
from pathlib import Path

import pytest

KERNELS = sorted((Path(__file__).resolve().parent.parent / "kernels").glob("*.cu"))
NVCC = shutil.which("nvcc")

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found")


@pytest.mark.parametrize("source", KERNELS, ids=lambda p: p.name)
def test_kernel_compiles_with_nvcc(source, tmp_path):
    obj = tmp_path / (source.stem + ".o")
    proc = subprocess.run([NVCC, "-std=c++17", "-arch=sm_90", "-c", str(source), "-o", str(obj)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # both cells' kernels are in the object (templates instantiated through with_cell)
    if shutil.which("nm"):
        syms = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True).stdout
        assert "_kernel<0>(" in syms and "_kernel<1>(" in syms, \
            "expected kernels for cell 0 (LSTM) and cell 1 (GRU)"
