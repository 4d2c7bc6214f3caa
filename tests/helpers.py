"""Assertion helpers shared by the tests."""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy.stats import chisquare

from seqgan_fast import Generator, TrainConfig
from seqgan_fast.cli.commands import main
from seqgan_fast.run import checkpoint as ckpt

# A tiny training run: every phase of the schedule in a second or two (CLI --set values).
TINY_TRAIN = ["vocab_size=61", "seq_len=7", "g_emb_dim=8", "g_hidden_dim=16", "num_train=120",
              "num_eval=90", "mle_epochs=2", "eval_every=2", "d_pretrain_rounds=1",
              "d_num_negatives=64", "d_epochs=1", "d_emb_dim=8", "d_filter_sizes=2,3",
              "d_num_filters=8,8", "adv_batches=1", "num_rollouts=2", "batch_size=32"]


CELLS = ("lstm", "gru")


def small_generator(vocab=300, emb=8, hidden=16, seq_len=7, seed=0, scale=1.0,
                    cell="lstm") -> Generator:
    """A generator with larger-than-init weights, so its softmaxes are far from uniform.
    A GRU also gets non-zero hidden-side biases (b_hn sits inside r * (...))."""
    torch.manual_seed(seed)
    g = Generator(vocab, emb, hidden, seq_len, cell=cell)
    if cell == "gru":
        with torch.no_grad():
            g.gru.bias_hh_l0.normal_(0.0, 0.1)
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(scale)
    return g


def assert_tokens_agree(actual: torch.Tensor, expected: torch.Tensor, min_agree=0.999):
    """Same shape, and the same token on at least ``min_agree`` of positions (float ties)."""
    assert actual.shape == expected.shape, \
        f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert actual.dtype == expected.dtype
    same = (actual == expected).double().mean().item()
    if same < min_agree:
        where = torch.nonzero(actual != expected)[:10].tolist()
        raise AssertionError(
            f"tokens agree on {same:.5f} < {min_agree}; first mismatches at {where}")


def chi_square_pvalue(tokens: torch.Tensor, probs: torch.Tensor, min_expected=5.0) -> float:
    """Chi-square goodness of fit of token counts against probs; rare bins are pooled."""
    n = tokens.numel()
    counts = torch.bincount(tokens.flatten().cpu(), minlength=probs.numel()).double().numpy()
    expected = (probs.double().cpu() * n).numpy()
    big = expected >= min_expected
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    exp *= obs.sum() / exp.sum()
    return float(chisquare(obs, exp).pvalue)


def outputs_per_isa_and_threads(fn, threads=(1, 2, 3)) -> dict:
    """fn() on every CPU ISA path this machine runs, at each torch thread count:
    {isa: [output at threads[0], ...]} (the thread count is restored afterwards)."""
    from seqgan_fast import ops

    old = torch.get_num_threads()
    out: dict = {}
    try:
        for isa in ops.cpu_isa_paths():
            for n in threads:
                torch.set_num_threads(n)
                with ops.force_cpu_isa(isa):
                    out.setdefault(isa, []).append(fn())
    finally:
        torch.set_num_threads(old)
    return out


# -- a run folder on disk (the CLI's error cases, the run lock, the guard) ---------------------
REPO = Path(__file__).resolve().parents[1]


def train_tiny(out: Path, *extra: str) -> int:
    """``seqgan-fast train`` of the TINY_TRAIN schedule into ``out`` (reference, one thread)."""
    return main(["train", "--out", str(out), "--backend", "reference", "--threads", "1", "-q",
                 "--set", *TINY_TRAIN, *extra])


def tiny(**changes) -> TrainConfig:
    """The quick preset shrunk to a toy oracle (odd sizes on purpose)."""
    base = dict(vocab_size=61, seq_len=7, g_emb_dim=8, g_hidden_dim=16, num_train=200,
                num_eval=150, mle_epochs=3, eval_every=2, d_pretrain_rounds=1,
                d_num_negatives=100, d_epochs=1, d_emb_dim=8, d_filter_sizes=(2, 3),
                d_num_filters=(8, 8), adv_batches=3, adv_d_rounds=1, num_rollouts=3,
                batch_size=32, backend="reference")
    return TrainConfig.preset("quick", **{**base, **changes})


def typed_setting(key: str, raw: str):
    """A ``--set key=raw`` value as TrainConfig holds it."""
    current = getattr(TrainConfig(), key)
    if isinstance(current, tuple):
        return tuple(int(v) for v in raw.split(","))
    return type(current)(raw)


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def copy_run(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst)
    return dst


def latest_checkpoint_dir(run: Path) -> Path:
    return run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text().strip()


def edit_state(run: Path, change: Callable[[dict], object]) -> None:
    """Rewrite the latest checkpoint's state.json through ``change`` (which may return a
    replacement list)."""
    path = latest_checkpoint_dir(run) / "state.json"
    state = json.loads(path.read_text())
    new = change(state)
    path.write_text(json.dumps(new if isinstance(new, list) else state))


def rewrite_group(run: Path, group: str, change: Callable[[dict], None],
                  update_digest: bool) -> None:
    """Rewrite one tensor file of the latest checkpoint (and its digest, when asked)."""
    file = latest_checkpoint_dir(run) / f"{group}.safetensors"
    tensors = load_file(str(file))
    change(tensors)
    save_file(tensors, str(file))
    if update_digest:
        edit_state(run, lambda s: s["digests"].__setitem__(group, ckpt.file_digest(file)))


def flip_bytes(run: Path) -> None:
    file = latest_checkpoint_dir(run) / "generator.safetensors"
    data = bytearray(file.read_bytes())
    for i in range(len(data) - 64, len(data)):  # inside the tensor data, past the header
        data[i] ^= 0xFF
    file.write_bytes(bytes(data))


def nan_fill(tensors: dict) -> None:
    for t in tensors.values():
        t.fill_(float("nan"))


def wrong_optimizer_shape(tensors: dict) -> None:
    key = next(k for k in sorted(tensors) if k.endswith("exp_avg"))
    tensors[key] = torch.zeros(3, 5)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but the lock) and its bytes."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name != ".lock"}


def triton_interpreter_problem() -> str | None:
    """Why the Triton interpreter cannot run this package's kernels here, or None.

    Probed, not inferred from versions: Triton 3.6's interpreter turns a loop bound that is a
    kernel argument into a 1-element array, which NumPy 2.4 refuses to convert to an int
    (3.6 with NumPy 2.2 and 3.8 with NumPy 2.4 both run every kernel). Call only with
    TRITON_INTERPRET=1 set before triton was imported."""
    import triton
    import triton.language as tl

    @triton.jit
    def _loop_bound_probe(out_ptr, n):
        acc = 0
        for i in range(0, n):
            acc += i
        tl.store(out_ptr, acc)

    out = torch.zeros(1, dtype=torch.int32)
    try:
        _loop_bound_probe[(1,)](out, 4)
    except Exception as exc:  # noqa: BLE001 - any failure means the interpreter is unusable
        return (f"Triton {triton.__version__}'s interpreter fails on a loop over a kernel "
                f"argument with NumPy {np.__version__} ({type(exc).__name__}); "
                "Triton 3.6 needs NumPy < 2.4 in the interpreter")
    return None if int(out[0]) == 6 else "Triton interpreter probe returned a wrong sum"
