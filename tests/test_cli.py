"""The seqgan-fast command line: train / sample / bench, and one-line errors on bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from helpers import TINY_TRAIN as TINY

from seqgan_fast.cli.commands import main

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny run through the CLI, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("cli") / "run"
    torch.set_num_threads(1)
    rc = main(["train", "--out", str(out), "--backend", "reference", "-q", "--set", *TINY])
    assert rc == 0
    return out


def test_train_in_process(trained_run, capsys):
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text()
               .splitlines()]
    assert [(r["phase"], r["epoch"]) for r in records] == [("mle", 0), ("mle", 2), ("adv", 1)]
    cfg = json.loads((trained_run / "config.json").read_text())
    assert cfg["preset_name"] == "quick" and cfg["vocab_size"] == 61
    assert cfg["d_num_filters"] == [8, 8]
    summary = json.loads((trained_run / "summary.json").read_text())
    assert {"nll_oracle", "nll_oracle_init", "nll_oracle_mle", "nll_oracle_adv"} <= set(summary)
    for name in ("curves.png", "checkpoints/LATEST"):
        assert (trained_run / name).is_file()


def test_one_version_string_everywhere(trained_run, capsys):
    """The package metadata's version (pyproject reads seqgan_fast/_version.py) is what
    __version__, seqgan-fast --version, summary.json and the bench JSON's machine say."""
    import importlib.metadata

    import seqgan_fast
    from seqgan_fast.benchmarks.timing import machine_info

    version = importlib.metadata.version("seqgan_fast")
    assert seqgan_fast.__version__ == version
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"seqgan-fast {version}"
    assert json.loads((trained_run / "summary.json").read_text())["version"] == version
    assert machine_info("cpu")["seqgan_fast"] == version


def test_train_prints_a_short_summary(tmp_path, capsys):
    rc = main(["train", "--out", str(tmp_path / "r"), "--backend", "reference", "--seed", "5",
               "-q", "--set", *TINY, "adv_batches=0", "d_pretrain_rounds=0"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[0].startswith("done in ") and str(tmp_path / "r") in out[0]
    assert out[1].strip().startswith("nll_oracle:") and "(init) -> " in out[1]
    assert json.loads((tmp_path / "r" / "config.json").read_text())["seed"] == 5


def test_train_as_a_module_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "seqgan_fast", "train", "--out", str(tmp_path / "run"),
         "--backend", "reference", "--threads", "1", "-q", "--set", *TINY],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "nll_oracle" in proc.stdout
    assert (tmp_path / "run" / "summary.json").is_file()


def test_sample_prints_n_lines(trained_run, capsys):
    assert main(["sample", "--run", str(trained_run), "-n", "7", "--seed", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7
    tokens = [[int(t) for t in line.split()] for line in lines]
    assert all(len(row) == 7 and all(0 <= t < 61 for t in row) for row in tokens)
    assert main(["sample", "--run", str(trained_run), "-n", "7", "--seed", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == lines  # seeded
    assert main(["sample", "--run", str(trained_run), "-n", "3", "--temperature", "0.5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_resume_through_the_cli(trained_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    assert main(["train", "--out", str(run), "--resume", "-q", "--set", "adv_batches=2"]) == 0
    records = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in records][-2:] == [1, 2]


def _bad(tmp_path: Path) -> list[list[str]]:
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    return [
        ["train", "--preset", "nope"],
        ["train", "--set", "nosuchkey=1"],
        ["train", "--set", "mle_epochs=abc"],
        ["train", "--set", "mle_epochs"],
        ["train", "--set", "batch_size=0"],
        ["train", "--data", str(tmp_path / "missing.txt")],
        ["train", "--data", str(tmp_path / "missing.xyz")],
        ["train", "--set", f"oracle_params={tmp_path / 'missing.npz'}"],
        ["train", "--resume", "--out", str(empty)],
        ["train", "--task", "bogus"],
        ["train", "--task", "text"],
        ["train", "--device", "tpu"],
        ["train", "--backend", "opencl"],
        ["train", "--seed", "x"],
        ["train", "--frobnicate"],
        ["sample", "--run", str(empty)],
        ["sample", "--run", str(tmp_path / "nowhere")],
        ["sample"],
        ["dance"],
        [],
    ]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output folder would be ./runs/...
    for argv in _bad(tmp_path):
        rc = main(argv)
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert rc == 2, argv
        assert len(lines) == 1 and lines[0].startswith("seqgan-fast: error: "), (argv, lines)
        assert "Traceback" not in captured.err and captured.out == "", argv
    assert not (tmp_path / "runs").exists()  # nothing was written


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_unavailable_is_one_line(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0]
    assert not (tmp_path / "r").exists()


def test_bad_input_never_touches_an_existing_run(trained_run, capsys):
    before = {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file()}
    for argv in (["train", "--out", str(trained_run)],  # a run is there: needs --resume
                 ["train", "--out", str(trained_run), "--overwrite", "--set", "mle_epochs=-1"],
                 ["train", "--out", str(trained_run), "--resume", "--set", "g_hidden_dim=9"],
                 ["train", "--out", str(trained_run), "--resume", "--preset", "paper"]):
        assert main(argv) == 2, argv
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file()} == before


def test_bench_forwards_argv(monkeypatch):
    seen = []
    fake = types.ModuleType("seqgan_fast.benchmarks.harness")
    fake.main = lambda argv: seen.append(argv) or 3
    pkg = types.ModuleType("seqgan_fast.benchmarks")
    pkg.harness = fake
    monkeypatch.setitem(sys.modules, "seqgan_fast.benchmarks", pkg)
    monkeypatch.setitem(sys.modules, "seqgan_fast.benchmarks.harness", fake)
    assert main(["bench", "--op", "rollout", "--config", "paper"]) == 3
    assert seen == [["--op", "rollout", "--config", "paper"]]


def test_bench_without_harness_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "seqgan_fast.benchmarks", None)  # import fails
    monkeypatch.setitem(sys.modules, "seqgan_fast.benchmarks.harness", None)  # even if loaded
    assert main(["bench"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seqgan-fast: error: ")


def test_defaults_and_task_inference(tmp_path):
    from seqgan_fast.cli.commands import _train_config, build_parser

    def resolve(*argv):
        return _train_config(build_parser().parse_args(["train", *argv]))

    cfg, out = resolve()
    assert (cfg.preset_name, cfg.task, cfg.data, out) == ("quick", "oracle", "oracle",
                                                      Path("runs/quick"))
    assert resolve("--preset", "paper")[1] == Path("runs/paper")
    for name, task in (("a.txt", "text"), ("b.inter", "recsys"), ("c.CSV", "recsys")):
        (tmp_path / name).write_text("x\n")
        cfg, _ = resolve("--data", str(tmp_path / name))
        assert cfg.task == task and cfg.data == str(tmp_path / name)
    cfg, _ = resolve("--data", str(tmp_path / "a.txt"), "--task", "recsys",
                     "--set", "seed=9", "--seed", "4")
    assert cfg.task == "recsys" and cfg.seed == 9  # --set is applied last


@pytest.mark.parametrize("cell,encoder", [("gru", "tied"), ("lstm", "separate"),
                                          ("gru", "separate")])
def test_cell_and_encoder_train_checkpoint_and_sample(tmp_path, capsys, cell, encoder):
    out = tmp_path / "run"
    rc = main(["train", "--out", str(out), "--backend", "cpp", "-q", "--set", *TINY,
               f"g_cell={cell}", f"g_encoder={encoder}"])
    assert rc == 0
    state = json.loads((out / "checkpoints" / (out / "checkpoints" / "LATEST").read_text()
                        .strip() / "state.json").read_text())
    assert state["model"]["g_cell"] == cell and state["model"]["g_encoder"] == encoder
    assert (state["model"]["g_history"] > 0) == (encoder == "separate")
    capsys.readouterr()
    assert main(["sample", "--run", str(out), "-n", "4", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(len(line.split()) == 7 for line in lines)


def test_old_checkpoints_without_cell_load_as_lstm_tied(trained_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    ckpt = run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text().strip()
    state = json.loads((ckpt / "state.json").read_text())
    for key in ("g_cell", "g_encoder", "g_history"):
        state["model"].pop(key)
        state["config"].pop(key)
    (ckpt / "state.json").write_text(json.dumps(state))
    capsys.readouterr()
    assert main(["sample", "--run", str(run), "-n", "3", "--seed", "3"]) == 0
    old = capsys.readouterr().out
    assert main(["sample", "--run", str(trained_run), "-n", "3", "--seed", "3"]) == 0
    assert capsys.readouterr().out == old
    assert main(["train", "--out", str(run), "--resume", "-q", "--set", "adv_batches=2"]) == 0


def _text_file(path: Path) -> Path:
    gen = torch.Generator().manual_seed(0)
    words = [f"w{i}" for i in range(40)]
    lines = [" ".join(words[int(j)] for j in torch.randint(0, 40, (8,), generator=gen))
             for _ in range(200)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _inter_file(path: Path) -> Path:
    gen = torch.Generator().manual_seed(1)
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(60):
        for t in range(12):
            rows.append(f"u{u}\ti{int(torch.randint(0, 30, (1,), generator=gen))}\t{t}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("task", ["text", "recsys"])
def test_data_tasks_train_with_a_gru_and_a_separate_encoder(tmp_path, task):
    data = _text_file(tmp_path / "d.txt") if task == "text" else _inter_file(tmp_path / "d.inter")
    tiny = [s for s in TINY if not s.startswith(("vocab_size", "seq_len", "num_"))]
    out = tmp_path / "run"
    rc = main(["train", "--data", str(data), "--out", str(out), "--backend", "cpp", "-q",
               "--set", *tiny, "max_len=8", "g_cell=gru", "g_encoder=separate", "g_history=3",
               "mask_history=false"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert ("bleu2" in summary) if task == "text" else ("hr@10" in summary)
    assert main(["sample", "--run", str(out), "-n", "2"]) == 0
