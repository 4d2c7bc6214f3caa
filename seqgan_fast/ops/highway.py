"""The discriminator's highway layer for training on CPU, on the unpacked GEMM (issue 11).

y = t * relu(W_h x + b_h) + (1 - t) * x, t = sigmoid(W_t x + b_t), as ``models.Highway``.
A training step multiplies the minibatch (64 rows) by each 1,720 x 1,720 weight three times
(forward, input gradient, weight gradient). A BLAS packs the weight into its panel layout on
every call, a fixed cost that at 64 rows is a third of the product
(``python benchmarks/micro.py highway``); ``seqgan_fast::gemm_nn`` (csrc/common/gemm_nn.h)
reads both operands where they lie. The layouts are chosen so that the weight is always the
streamed operand: the forward runs transposed, Z^T = W . X^T (F x B), and the gradients are
G . W and G^T . X. The elementwise parts stay torch ops, in the transposed layout.

Same function as the module; its gradients agree with autograd's to float rounding (every
product sums over k in order with one FMA per term, so the same bits at every thread count).
CPU with the extension only (``fused_available``); elsewhere the module's nn.Linear runs.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .._ext import has_kernel


def fused_available(device: torch.device | str) -> bool:
    """Whether the unpacked highway GEMMs run on ``device`` (CPU with the extension built)."""
    return torch.device(device).type == "cpu" and has_kernel("gemm_nn", "CPU")


def _mm(a: torch.Tensor, b: torch.Tensor, row_bias: torch.Tensor | None = None
        ) -> torch.Tensor:
    return torch.ops.seqgan_fast.gemm_nn(a, b, row_bias)


class _Highway(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, wh: torch.Tensor, bh: torch.Tensor, wt: torch.Tensor,
                bt: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        xt = x.t().contiguous()  # (F, B)
        r = _mm(wh, xt, bh).clamp_min_(0.0)
        t = torch.sigmoid_(_mm(wt, xt, bt))
        y = t * r + (1 - t) * xt
        ctx.save_for_backward(x, xt, r, t, wh, wt)
        return y.t().contiguous()  # row-major, as nn.Linear's: dropout draws the same mask

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        x, xt, r, t, wh, wt = ctx.saved_tensors
        gyt = gy.t().contiguous()  # (F, B)
        gzh = gyt * t * (r > 0)  # dL/d(W_h x + b_h), transposed
        gzt = gyt * (r - xt) * (t * (1 - t))  # dL/d(W_t x + b_t), transposed
        gx = _mm(gzh.t().contiguous(), wh)
        torch.ops.seqgan_fast.gemm_nn_acc_(gx, gzt.t().contiguous(), wt)
        gx += (gyt * (1 - t)).t()
        return gx, _mm(gzh, x), gzh.sum(1), _mm(gzt, x), gzt.sum(1)


class InferenceWeights(NamedTuple):
    """A highway layer's weights for :func:`highway_logits`: transposed copies, (F, F) each."""

    hidden_t: torch.Tensor
    hidden_b: torch.Tensor
    gate_t: torch.Tensor
    gate_b: torch.Tensor


def inference_weights(layer) -> InferenceWeights:
    """Transposed copies of a ``models.Highway``'s weights (made once per scoring call)."""
    def t(w: torch.Tensor) -> torch.Tensor:
        return w.detach().t().contiguous()

    return InferenceWeights(t(layer.hidden.weight), layer.hidden.bias.detach().contiguous(),
                            t(layer.gate.weight), layer.gate.bias.detach().contiguous())


def highway_logits(x: torch.Tensor, w: InferenceWeights, output) -> torch.Tensor:
    """``output(highway(x))`` without autograd for scoring's rows x (M, F), ``output`` the
    discriminator's nn.Linear(F, C): one kernel (csrc/common/highway_head.h) that runs the two
    products X . W^T (the bias as their initial value, the weight the streamed operand) on
    gemm_nn's tiles a row chunk at a time, with ReLU, the gate, the output layer behind
    them, so no (M, F) tensor is made. The products' rate: ``python benchmarks/micro.py
    highway`` (on a 2-core AMD AVX-512 instance MKL ran the 4,096 x 860 x 860 products of
    preset ``quick``'s scoring at 122 GFLOP/s against 197, and the paper's 1,720 equally
    fast; on a 2-core Xeon, with B packed from 1,024 rows, 177 against 186 and 201 against
    181)."""
    return torch.ops.seqgan_fast.highway_logits(
        x.contiguous(), w.hidden_t, w.hidden_b, w.gate_t, w.gate_b,
        output.weight.detach().contiguous(), output.bias.detach().contiguous())


def highway(x: torch.Tensor, layer) -> torch.Tensor:
    """``layer(x)`` for a ``models.Highway`` on CPU float32 features x (B, F), with the
    unpacked-GEMM forward and backward."""
    return _Highway.apply(x, layer.hidden.weight, layer.hidden.bias, layer.gate.weight,
                          layer.gate.bias)
