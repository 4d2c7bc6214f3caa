import pytest
import torch

from seqgan_fast.ops.philox import philox4x32, split_seed, tile_uniforms, to_uniform

# DESIGN §4 known answers: seed, counter, words, (u0, u1)
KNOWN = [
    (0, (0, 0, 0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8),
     (0.798092902, 0.238959596)),
    (42, (0, 0, 0, 0), (0x9CEAF053, 0x77F5493B, 0x12BF50AD, 0x5742B3D7),
     (0.774080157, 0.937172949)),
    (42, (3, 7, 11, 0), (0x1DB06504, 0xECB98830, 0xC7B07025, 0x345FDB63),
     (0.231945619, 0.150587991)),
    (12345678901, (19, 5, 1023, 1), (0x0E448539, 0xF5862701, 0x7F756149, 0x165D9C9A),
     (0.111466072, 0.0818434879)),
]


@pytest.mark.parametrize("seed,counter,words,uniforms", KNOWN)
def test_known_answers(seed, counter, words, uniforms):
    out = philox4x32(seed, *(torch.tensor(c) for c in counter))
    assert tuple(int(w) for w in out) == words
    u = [float(to_uniform(w)) for w in out[:2]]
    assert u == pytest.approx(uniforms, rel=1e-7)


def test_vectorised_matches_scalar():
    rows = torch.tensor([0, 5, 2**31 + 7, 2**32 - 1])
    u0, u1 = tile_uniforms(42, 3, 7, rows, 0)
    assert u0.shape == (4, 3)
    w0, w1, _, _ = philox4x32(42, *(torch.tensor(v) for v in (2, 7, 5, 0)))
    assert float(u0[1, 2]) == float(to_uniform(w0)) and float(u1[1, 2]) == float(to_uniform(w1))


def test_uniform_range_and_mean():
    w0, w1, w2, w3 = philox4x32(7, torch.arange(100000), 0, 0, 0)
    u = torch.cat([to_uniform(w) for w in (w0, w1, w2, w3)])
    assert float(u.min()) >= 0.0 and float(u.max()) <= 1.0
    assert abs(float(u.mean()) - 0.5) < 0.003  # 400k draws: sd of the mean ~ 0.00046


def test_int32_reinterpretation():
    # 0xFFFFFFFF is -1 as int32 -> -(-1) - 1 = 0 -> u = 0 exactly
    assert float(to_uniform(torch.tensor(0xFFFFFFFF))) == 0.0
    assert float(to_uniform(torch.tensor(0))) == 0.0
    assert float(to_uniform(torch.tensor(0x80000000))) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5])
def test_bad_seed(seed):
    with pytest.raises((ValueError, TypeError), match="seed"):
        split_seed(seed)
