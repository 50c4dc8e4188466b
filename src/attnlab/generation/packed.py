"""oneDNN-packed linear layers for the compiled CPU decode step.

Dimension key: B batch, T tokens per call (1 when decoding), I / O a linear layer's input / output
width, D model width.

Decoding one token reads every weight once and does little arithmetic with it, so on a CPU its speed
is set by how fast the matrix-vector products stream the weights from memory. oneDNN can reorder a
weight once into the blocked layout its kernels stream best; on the 2-core test machine the 49 GPT-2
projections then take 21 ms per token instead of 27-28 ms with MKL on a column-major copy and 37 ms
with ``F.linear`` on PyTorch's row-major weight (see benchmarks/RESULTS.md).

:func:`decode_twin` builds what the compiled step runs: a copy of the model's module tree that
*shares* every parameter and buffer with the model (no weight is copied) except that each
``nn.Linear`` becomes a :class:`PackedLinear` holding a packed copy of its weight, and attention
layers on the ``"sdpa"`` backend use ``"naive"``, which inductor fuses into one small kernel (for one
query row, the SDPA CPU kernel costs ~0.13 ms per layer in fixed overhead). The model itself is left
untouched. The packed weight travels to the compiled graph through a custom op, ``attnlab::packed_linear``,
that looks it up by an integer key: the opaque oneDNN tensor never enters the traced graph.
"""

from __future__ import annotations

import copy
import itertools
import weakref

import torch
from torch import Tensor, nn

_PACKED: dict[int, tuple[Tensor, Tensor | None]] = {}  # key -> (packed weight, bias)
_KEYS = itertools.count()


def packing_available(dtype: torch.dtype) -> bool:
    """Whether this PyTorch build can pack ``dtype`` linear weights with oneDNN (fp32 on x86/ARM CPUs)."""
    return (
        dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


@torch.library.custom_op("attnlab::packed_linear", mutates_args=())
def packed_linear(x: Tensor, key: int, out_features: int) -> Tensor:
    """``x @ W.T + b`` with the packed weight registered under ``key``: (..., I) -> (..., O)."""
    weight, bias = _PACKED[key]
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@packed_linear.register_fake
def _packed_linear_fake(x: Tensor, key: int, out_features: int) -> Tensor:
    return x.new_empty(*x.shape[:-1], out_features)


class PackedLinear(nn.Module):
    """Inference-only stand-in for an ``nn.Linear``: the same function, the weight packed for oneDNN.

    ``batch_rows`` is the number of rows per call the packing is tuned for (B * T). The packed copy
    lives as long as this module.
    """

    def __init__(self, linear: nn.Linear, batch_rows: int) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        if weight.device.type != "cpu" or not packing_available(weight.dtype):
            raise ValueError(f"oneDNN packing needs a float32 CPU weight, got {weight.dtype} on {weight.device}")
        bias = None if linear.bias is None else linear.bias.detach()
        self.key = next(_KEYS)
        _PACKED[self.key] = (torch.ops.mkldnn._reorder_linear_weight(weight, batch_rows), bias)
        weakref.finalize(self, _PACKED.pop, self.key, None)

    def forward(self, x: Tensor) -> Tensor:  # (..., I) -> (..., O)
        return packed_linear(x, self.key, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, key={self.key}"


def decode_twin(model: nn.Module, batch_rows: int) -> nn.Module:
    """A copy of ``model`` for decoding: parameters and buffers shared, linears packed, naive attention.

    Only the module objects are new; ``model`` keeps its own ``nn.Linear`` layers and backends.
    """
    from attnlab.layers.attention import MultiHeadAttention

    shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    twin = copy.deepcopy(model, memo=shared)
    for module in list(twin.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, PackedLinear(child, batch_rows))
        if isinstance(module, MultiHeadAttention) and module.attn_variant is None and module.backend == "sdpa":
            module.backend = "naive"
    return twin.eval()
