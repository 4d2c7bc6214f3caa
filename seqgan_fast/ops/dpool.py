"""The discriminator's convolution + ReLU + max-pool for training, with the sparse backward
(issue 11).

Max-pooling over time passes each (row, filter)'s gradient to one window, its argmax, so the
convolution backward needs one k*E axpy per (row, filter) for the weights and one for the
embedded input, not the dense backward's (T - k + 1) windows per row: at the paper's 1,720
filters and T = 20, 0.20 GFLOP per minibatch of 64 instead of 1.94 (the dense input and
weight gradients). That backward is the fused CPU kernel ``seqgan_fast::conv_pool_backward``
(csrc/common/dpool.h, per ISA path, the bias gradients with it). The forward is
``seqgan_fast::conv_pool_forward`` (csrc/common/dconv.h): every width's convolution as
unpacked GEMMs over the window positions, ReLU and max-pool with the first argmax folded in
as the windows leave the microkernel, no conv output tensor (5.89 ms against 11.01 for
oneDNN's convolutions + torch's max and cats at the paper size, 2 threads,
``python benchmarks/micro.py d_conv``). Both give the same bits at every thread count.

Same function as ``relu(conv(e)).amax(2)`` (relu(max_p y) = max_p relu(y)) to float rounding:
the window sums run in (offset, channel) order with one FMA per term, oneDNN's in its own.
The gradients agree with autograd's to float rounding, except on exact ties between two
windows' maxima, where autograd's amax splits the gradient between them and this passes it to
the first (measure zero for float data; a row whose maximum is <= 0 gets no gradient either
way).

CPU only: on CUDA the module's cuDNN convolutions stay (no measurement of a sparse GPU form
has been made).
"""
from __future__ import annotations

import torch

from .._ext import has_kernel

POOL_MODES = ("auto", "fused", "module")


def fused_available(device: torch.device | str) -> bool:
    """Whether the fused pooling backward runs on ``device`` (CPU with the extension built)."""
    return torch.device(device).type == "cpu" and has_kernel("conv_pool_backward", "CPU")


def resolve_pool(pool: str, device: torch.device | str) -> str:
    """``auto`` -> ``fused`` where available, else ``module``; ``fused`` where it is not
    available is an error naming why."""
    if pool not in POOL_MODES:
        raise ValueError(f"pool must be one of {', '.join(POOL_MODES)}, got {pool!r}")
    if pool == "module":
        return pool
    if fused_available(device):
        return "fused"
    if pool == "fused":
        raise ValueError(f"pool='fused' needs the compiled extension and a CPU discriminator "
                         f"(device {torch.device(device)}); use pool='module'")
    return "module"


class _ConvPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, e: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        weights, biases = params[0::2], params[1::2]
        e = e.contiguous()
        v, i = torch.ops.seqgan_fast.conv_pool_forward(
            e, [w.contiguous() for w in weights], [b.contiguous() for b in biases])
        ctx.save_for_backward(e, i, v > 0, *weights)
        return v

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        e, idx, positive, *weights = ctx.saved_tensors
        g = (grad * positive).contiguous()
        grads = torch.ops.seqgan_fast.conv_pool_backward(
            e.contiguous(), g, idx, [w.contiguous() for w in weights])
        G = len(weights)
        out = [grads[0]]
        for gw, gb in zip(grads[1 : 1 + G], grads[1 + G :], strict=True):
            out += [gw, gb]
        return tuple(out)


def conv_pool(e: torch.Tensor, convs) -> torch.Tensor:
    """relu(conv(e)).amax over time for each Conv1d in ``convs``, concatenated: e (B, T, E)
    float32 embedded rows on CPU -> (B, sum of filters), with the fused sparse backward."""
    params = [t for conv in convs for t in (conv.weight, conv.bias)]
    return _ConvPool.apply(e, *params)
