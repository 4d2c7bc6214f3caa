"""Checkpoints (seqgan_fast/run/checkpoint.py): non-finite tensors refused, digests recorded
and checked, LATEST confined to the checkpoints folder."""
from __future__ import annotations

import json

import pytest
import torch

from seqgan_fast.run import checkpoint as ckpt

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


def test_save_refuses_non_finite_tensors_and_keeps_the_previous(tmp_path):
    good = {"g": {"w": torch.ones(2)}}
    ckpt.save_checkpoint(tmp_path, 1, good, {"step": 1})
    with pytest.raises(ckpt.NonFiniteCheckpointError, match="'w'"):
        ckpt.save_checkpoint(tmp_path, 2, {"g": {"w": torch.tensor([1.0, float("inf")])}},
                             {"step": 2})
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest.name == "000001"
    tensors, state = ckpt.load_checkpoint(latest)
    assert state["step"] == 1 and torch.equal(tensors["g"]["w"], torch.ones(2))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["000001", "LATEST"]


def test_digests_are_recorded_and_checked(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, 1, {"a": {"w": torch.arange(6.0)},
                                              "b": {"v": torch.zeros(2)}}, {})
    state = json.loads((path / "state.json").read_text())
    assert set(state["digests"]) == {"a", "b"}
    for group, digest in state["digests"].items():
        assert digest == ckpt.file_digest(path / f"{group}.safetensors")
    ckpt.load_checkpoint(path)
    data = bytearray((path / "b.safetensors").read_bytes())
    data[-1] ^= 1
    (path / "b.safetensors").write_bytes(bytes(data))
    ckpt.load_checkpoint(path, groups=("a",))  # only what is read is checked
    with pytest.raises(ckpt.CheckpointError, match="b.safetensors: corrupted"):
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize("name", ["../../x", "/abs/000001", "000001\n000002", "", "..",
                                  "000001/../000001"])
def test_latest_must_name_a_folder_inside_checkpoints(tmp_path, name):
    ckpt.save_checkpoint(tmp_path, 1, {"a": {"w": torch.ones(1)}}, {})
    (tmp_path / "checkpoints" / "LATEST").write_text(name)
    with pytest.raises(ckpt.CheckpointError, match="not a checkpoint folder"):
        ckpt.latest_checkpoint(tmp_path)


def test_latest_is_never_echoed_nor_followed_as_a_link(tmp_path):
    """LATEST symlinked to another file (here a stand-in for /etc/passwd) is refused without
    printing a byte of that file; a plain LATEST holding other text is not echoed either."""
    ckpt.save_checkpoint(tmp_path, 1, {"a": {"w": torch.ones(1)}}, {})
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:secret-line-one\ndaemon:x:1:1:secret-line-two\n")
    latest = tmp_path / "checkpoints" / "LATEST"
    latest.unlink()
    latest.symlink_to(secret)
    with pytest.raises(ckpt.CheckpointError, match="symbolic link") as exc:
        ckpt.latest_checkpoint(tmp_path)
    assert "secret" not in str(exc.value) and "x:0:0" not in str(exc.value)
    latest.unlink()
    latest.write_text(secret.read_text())
    with pytest.raises(ckpt.CheckpointError, match="not a checkpoint folder") as exc:
        ckpt.latest_checkpoint(tmp_path)
    assert "secret" not in str(exc.value) and "x:0:0" not in str(exc.value)


def test_large_finite_values_are_named_as_such(tmp_path):
    """1e30 is finite: the refusal says what it checks (NaN, inf or |x| >= 2**64)."""
    with pytest.raises(ckpt.NonFiniteCheckpointError, match=r"NaN, inf or values of "
                       r"magnitude >= 2\*\*64"):
        ckpt.save_checkpoint(tmp_path, 1, {"g": {"w": torch.tensor([1e30])}}, {})


def test_deeply_nested_state_is_one_line_naming_the_file(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, 1, {"a": {"w": torch.ones(1)}}, {})
    (path / "state.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ckpt.CheckpointError, match="state.json: unreadable checkpoint state "
                       r"\(nested too deeply"):
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_full_disk_is_one_error_naming_the_folder_and_keeps_the_previous(
        tmp_path, monkeypatch, fail_at):
    """safetensors reports ENOSPC as its own SafetensorError (not an OSError): the save
    becomes one CheckpointError naming the folder, no temporary folder is left and the
    previous checkpoint stays the readable LATEST."""
    from safetensors import SafetensorError

    ckpt.save_checkpoint(tmp_path, 1, {"a": {"w": torch.ones(2)}, "b": {"w": torch.ones(3)}},
                         {"step": 1})
    real, calls = ckpt.save_file, []

    def full(tensors, filename, *a, **k):
        calls.append(filename)
        if len(calls) == fail_at:
            raise SafetensorError("Error while serializing: I/O error: No space left on "
                                  "device (os error 28)")
        return real(tensors, filename, *a, **k)

    monkeypatch.setattr(ckpt, "save_file", full)
    root = tmp_path / "checkpoints"
    with pytest.raises(ckpt.CheckpointError) as exc:
        ckpt.save_checkpoint(tmp_path, 2, {"a": {"w": torch.zeros(2)},
                                           "b": {"w": torch.zeros(3)}}, {"step": 2})
    msg = str(exc.value)
    assert f"cannot write a checkpoint in {root}" in msg and "No space left" in msg
    assert "previous checkpoint is kept" in msg and "\n" not in msg
    assert sorted(p.name for p in root.iterdir()) == ["000001", "LATEST"]
    tensors, state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    assert state["step"] == 1 and torch.equal(tensors["a"]["w"], torch.ones(2))


def test_an_os_error_while_saving_is_a_checkpoint_error(tmp_path, monkeypatch):
    def full(path, text):
        raise OSError(28, "No space left on device", str(path))

    ckpt.save_checkpoint(tmp_path, 1, {"a": {"w": torch.ones(1)}}, {})
    monkeypatch.setattr(ckpt, "atomic_write_text", full)
    with pytest.raises(ckpt.CheckpointError, match="No space left on device; the previous"):
        ckpt.save_checkpoint(tmp_path, 2, {"a": {"w": torch.ones(1)}}, {})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["000001", "LATEST"]
