"""SeqGAN's discriminator: a CNN text classifier (Kim, 2014) with a highway layer."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import highway as fused_highway
from ..ops.dpool import conv_pool

log = logging.getLogger(__name__)


def glorot_uniform_(t: torch.Tensor) -> torch.Tensor:
    """In place U(-a, a), a = sqrt(6 / (fan_in + fan_out)), with TensorFlow's fans: a vector
    of n has fan_in = fan_out = n. This is ``tf.get_variable``'s default initialiser, so it
    is what the reference code's highway layer gets for its matrices and its biases."""
    if t.dim() == 1:
        fan_in = fan_out = t.shape[0]
    else:
        fan_out, fan_in = t.shape[0], t[0].numel()
    bound = (6.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        return t.uniform_(-bound, bound)


class Highway(nn.Module):
    """y = t * relu(W_h x + b_h) + (1 - t) * x with t = sigmoid(W_t x + b_t) (Srivastava et
    al.); x, y: (B, size).

    All four tensors are Glorot-uniform initialised (the reference code's ``linear``, created
    by ``tf.get_variable`` without an initialiser); ``transform_bias`` is added to the
    initial ``b_t``. The reference discriminator passes 0 (its highway default is -2).
    """

    def __init__(self, size: int, transform_bias: float = 0.0) -> None:
        super().__init__()
        self.hidden = nn.Linear(size, size)
        self.gate = nn.Linear(size, size)
        for p in (*self.hidden.parameters(), *self.gate.parameters()):
            glorot_uniform_(p)
        with torch.no_grad():
            self.gate.bias.add_(transform_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.gate(x))
        return t * F.relu(self.hidden(x)) + (1 - t) * x


PAPER_FILTER_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
PAPER_NUM_FILTERS = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)


class Discriminator(nn.Module):
    """CNN text classifier (Kim, 2014) with a highway layer, as SeqGAN's discriminator.

    Class 1 is "real". Filters wider than ``seq_len`` are dropped (logged). Initialised as
    the reference code: embedding U(-1, 1); convolutions and output layer truncated normal
    (std 0.1, at most 2 std) with bias 0.1; highway Glorot uniform, gate offset 0.
    ``l2_loss()`` is the paper code's L2 term on the output layer (weight ``l2_reg``).
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int = 20,
        emb_dim: int = 64,
        filter_sizes: Sequence[int] = PAPER_FILTER_SIZES,
        num_filters: Sequence[int] = PAPER_NUM_FILTERS,
        dropout_keep: float = 0.75,
        l2_reg: float = 0.2,
    ) -> None:
        super().__init__()
        if len(filter_sizes) != len(num_filters):
            raise ValueError("filter_sizes and num_filters must have the same length")
        if not 0 < dropout_keep <= 1:
            raise ValueError(f"dropout_keep must be in (0, 1], got {dropout_keep}")
        kept = [(k, n) for k, n in zip(filter_sizes, num_filters, strict=True) if k <= seq_len]
        if len(kept) < len(filter_sizes):
            log.info("discriminator: dropped filters wider than seq_len=%d", seq_len)
        if not kept:
            raise ValueError(f"no filter fits seq_len={seq_len}")
        self.vocab_size, self.seq_len, self.l2_reg = vocab_size, seq_len, l2_reg
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        nn.init.uniform_(self.embedding.weight, -1.0, 1.0)
        self.convs = nn.ModuleList(nn.Conv1d(emb_dim, n, k) for k, n in kept)
        for conv in self.convs:
            nn.init.trunc_normal_(conv.weight, std=0.1, a=-0.2, b=0.2)
            nn.init.constant_(conv.bias, 0.1)
        total = sum(n for _, n in kept)
        self.highway = Highway(total)
        self.dropout = nn.Dropout(1.0 - dropout_keep)
        self.output = nn.Linear(total, 2)
        # As the reference code: truncated normal (re-drawn beyond 2 std), bias 0.1.
        nn.init.trunc_normal_(self.output.weight, std=0.1, a=-0.2, b=0.2)
        nn.init.constant_(self.output.bias, 0.1)

    def forward(self, x: torch.Tensor, batch_rows: tuple[int, int] | None = None,
                pool: str = "module") -> torch.Tensor:
        """x (B, seq_len) int64 -> class logits (B, 2); class 1 = real.

        ``pool="fused"``: the trainer's CPU step, the same values: the convolution + ReLU +
        max-pool as seqgan_fast/ops/dpool.py (a sparse backward) and the highway layer on
        the unpacked GEMM of seqgan_fast/ops/highway.py; ``"module"``: plain torch ops.

        ``batch_rows=(lo, total)``: x is rows lo..lo+B-1 of a batch of ``total`` rows split
        across processes; in training the dropout mask is drawn for all ``total`` rows (the
        draw a single process makes for the whole batch, on CPU bit for bit) and these rows'
        part is used, so every rank's mask is its slice of the single-process one.
        """
        if pool == "fused":
            return self.head(conv_pool(self.embedding(x), self.convs), batch_rows, fused=True)
        if pool != "module":
            raise ValueError(f"pool must be 'module' or 'fused', got {pool!r}")
        e = self.embedding(x).transpose(1, 2)  # (B, E, T)
        pooled = torch.cat([F.relu(conv(e)).amax(dim=2) for conv in self.convs], dim=1)
        return self.head(pooled, batch_rows)

    def head(self, pooled: torch.Tensor, batch_rows: tuple[int, int] | None = None,
             fused: bool = False) -> torch.Tensor:
        """Max-pooled features (B, F) -> logits (B, 2): highway, dropout, output layer
        (``batch_rows``: as ``forward``; ``fused``: the highway on the unpacked GEMM where it
        runs, seqgan_fast/ops/highway.py)."""
        h = self._highway(pooled, fused)
        if batch_rows is None or not self.training or self.dropout.p == 0:
            return self.output(self.dropout(h))
        lo, total = batch_rows
        keep = 1.0 - self.dropout.p
        noise = torch.empty((total, h.shape[1]), dtype=h.dtype, device=h.device)
        noise.bernoulli_(keep).div_(keep)  # as F.dropout: empty_like(h).bernoulli_(keep) / keep
        return self.output(h * noise[lo : lo + h.shape[0]])

    def _highway(self, pooled: torch.Tensor, fused: bool) -> torch.Tensor:
        if fused and pooled.dtype == torch.float32:
            if fused_highway.fused_available(pooled.device):
                return fused_highway.highway(pooled, self.highway)
        return self.highway(pooled)

    def l2_loss(self) -> torch.Tensor:
        return self.l2_reg * 0.5 * (self.output.weight.square().sum()
                                    + self.output.bias.square().sum())

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.forward(x), labels) + self.l2_loss()

    @torch.no_grad()
    def prob_real(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """P(real) for x (M, seq_len), in eval mode, scored in chunks: (M,) float."""
        was_training = self.training
        self.eval()
        try:
            out = [torch.softmax(self.forward(x[i : i + batch_size]), dim=1)[:, 1]
                   for i in range(0, x.shape[0], batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out) if out else x.new_zeros(0, dtype=torch.float32)
