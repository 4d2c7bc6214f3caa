"""The discriminator step the schedule repeats ~1 million times: the trainer's fused Adam
(seqgan_fast/optim.py) trains exactly as torch's default Adam up to float rounding."""
import copy

import torch

from seqgan_fast import Discriminator
from seqgan_fast.optim import fast_adam


def _train(d: Discriminator, opt, steps: int, seed: int = 0) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x = torch.randint(0, d.vocab_size, (16, d.seq_len), generator=gen)
        y = (x[:, 0] < d.vocab_size // 2).long()  # a rule the discriminator can learn
        torch.manual_seed(len(losses))  # the same dropout masks on both sides
        loss = d.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_fast_adam_follows_the_default_adam_curve():
    torch.manual_seed(3)
    d_ref = Discriminator(200, 12, emb_dim=16, filter_sizes=(1, 2, 3, 5, 12),
                          num_filters=(10, 20, 20, 10, 16))
    d_fast = copy.deepcopy(d_ref)
    opt_ref = torch.optim.Adam(d_ref.parameters(), lr=1e-3, foreach=False, fused=False)
    opt_fast = fast_adam(d_fast.parameters(), lr=1e-3)
    ref = _train(d_ref, opt_ref, 200)
    fast = _train(d_fast, opt_fast, 200)
    assert ref[-1] < ref[0] - 0.05  # it learned something: the curve is not flat
    worst = max(abs(a - b) for a, b in zip(ref, fast, strict=True))
    assert worst <= 1e-4, f"loss curves differ by up to {worst:.2e}"
    wdiff = max((a - b).abs().max().item()
                for a, b in zip(d_ref.parameters(), d_fast.parameters(), strict=True))
    assert wdiff <= 1e-4


def test_fast_adam_is_fused_where_torch_supports_it():
    d = Discriminator(50, 5, filter_sizes=(1, 2), num_filters=(3, 4))
    opt = fast_adam(d.parameters(), lr=1e-4)
    assert opt.defaults.get("fused") or opt.defaults.get("foreach")
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):
        assert opt.defaults.get("fused") is True
