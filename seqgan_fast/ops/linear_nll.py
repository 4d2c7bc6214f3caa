"""The generator's output layer + log-softmax + NLL as one CPU kernel (issue 11).

``F.cross_entropy(layer(h), y)`` over a teacher-forced batch of the paper's generator
(1,280 rows, V = 5,000) writes 25.6 MB of logits and passes over them and their gradient
about six times; ``seqgan_fast::linear_nll`` (csrc/common/lnll.h) keeps each chunk of rows'
logits in the cores' caches and computes the NLL of every row and, when asked, the gradients
of sum_r w_r nll_r in the same pass. An MLE step of the paper's generator takes 14.1-15.1 ms
instead of 21.7-22.3 ms (``python benchmarks/micro.py g_profile``, two runs).

The autograd function returns the weighted loss; its gradients are computed in the forward
(the row weights are known then) and scaled by the incoming gradient in the backward (exact
when it is 1, as for ``loss.backward()``). The values agree with torch's to float rounding;
they are the same bits at every thread count and on the AVX-512 and AVX2 paths.
CPU float32 with the extension only (``fused_available``).
"""
from __future__ import annotations

import torch

from .._ext import has_kernel


def fused_available(h: torch.Tensor) -> bool:
    """Whether the fused kernel runs on tensors like ``h`` (CPU float32, extension built)."""
    return h.device.type == "cpu" and h.dtype == torch.float32 \
        and has_kernel("linear_nll", "CPU")


def _op(h, weight, bias, target, row_weight=None):
    return torch.ops.seqgan_fast.linear_nll(h.contiguous(), weight.contiguous(),
                                            bias.contiguous(), target.contiguous(), row_weight)


class _WeightedNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, target, row_weight):
        nll, gh, gw, gb = _op(h, weight, bias, target, row_weight)
        ctx.save_for_backward(gh, gw, gb)
        return (nll * row_weight).sum()

    @staticmethod
    def backward(ctx, g):
        gh, gw, gb = ctx.saved_tensors
        return gh * g, gw * g, gb * g, None, None


def weighted_nll(h: torch.Tensor, layer: torch.nn.Linear, target: torch.Tensor,
                 row_weight: torch.Tensor) -> torch.Tensor:
    """sum_r row_weight[r] * -log softmax(layer(h[r]))[target[r]] for h (N, H), target (N,)
    int64, row_weight (N,) (not differentiated): a scalar, differentiable in h and the layer.
    """
    w = row_weight.detach().to(torch.float32).contiguous()
    if torch.is_grad_enabled() and (h.requires_grad or layer.weight.requires_grad
                                    or layer.bias.requires_grad):
        return _WeightedNLL.apply(h, layer.weight, layer.bias, target, w)
    return (nll_rows(h, layer, target) * w).sum()


def nll_rows(h: torch.Tensor, layer: torch.nn.Linear, target: torch.Tensor) -> torch.Tensor:
    """-log softmax(layer(h[r]))[target[r]] per row: (N,) float, not differentiable."""
    return _op(h.detach(), layer.weight.detach(), layer.bias.detach(), target)[0]
