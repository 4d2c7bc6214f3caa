import pytest
import torch

from seqgan_fast.data.paths import ENV_VAR, data_dir


@pytest.fixture(scope="module")
def pristine_run(tmp_path_factory):
    """One finished tiny run (helpers.train_tiny) per test module; tests copy it before
    touching it."""
    from helpers import train_tiny

    out = tmp_path_factory.mktemp("pristine") / "run"
    torch.set_num_threads(1)
    assert train_tiny(out) == 0
    return out


@pytest.fixture
def shared_data():
    """The shared data folder; tests that need it skip where it is absent."""
    path = data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set {ENV_VAR})")
    return path


@pytest.fixture
def oracle_npz(shared_data):
    path = shared_data / "seqgan_oracle" / "target_params.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(1234)


@pytest.fixture
def one_thread():
    """Tiny ops on a shared 2-core machine: intra-op threads only add barrier waits."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _no_tf32():
    """fp32 everywhere a test compares against the reference: cuDNN convolutions default to
    TF32 in torch (10 mantissa bits), which would put the reference discriminator 1e-3 away
    from the fp32 kernels on a GPU. Tests that want TF32 switch it on themselves."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
