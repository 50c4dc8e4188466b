"""Vision Transformer (Dosovitskiy et al. 2021): images as sequences of patches.

Dimension key: B batch, C channels, H, W image height and width, P patch size, N = (H/P)(W/P)
patches, T = N + 1 tokens (the [CLS] token first), D model width, L layers, K classes (num_labels).

    x      = [cls; Conv2d_P,stride P(pixels) flattened] + pos          (B, T, D)
    x      = layer_l(x) for l in 0 .. L-1     pre-norm EncoderLayer, exact GELU MLP, no mask
    hidden = LayerNorm(x)                                                (B, T, D)
    logits = W_c hidden[:, 0]                  ViTForImageClassification (B, K)

The bare :class:`ViTModel` also carries HF's tanh pooler over [CLS] (``config.pooler``, on by
default as in HF's ``ViTModel``); :class:`ViTForImageClassification` builds its ViTModel without
one and classifies the normalized [CLS] vector directly, as HF does. LayerNorm eps is 1e-12.

Position embeddings are learned for the training resolution's (image_size / P)^2 grid. Other image
sizes need ``interpolate_pos_encoding=True``: the patch grid of the table is resized bicubically
(the [CLS] position is kept), exactly as HF's ``interpolate_pos_encoding``.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.interop.mixin import PretrainedMixin
from attnlab.layers.blocks import BlockConfig, EncoderLayer
from attnlab.layers.feedforward import ACTIVATIONS
from attnlab.models.common import count_parameters, normalize_labels
from attnlab.models.config import ModelConfig, register_config, register_preset
from attnlab.positional.learned import LearnedPositionalEmbedding


@register_config
@dataclasses.dataclass
class ViTConfig(ModelConfig):
    """ViT hyper-parameters; defaults are ViT-B/16 at 224 px with a 1000-class head (86.6M)."""

    model_type = "vit"

    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 3072
    dropout: float = 0.0  # hidden_dropout_prob
    attn_dropout: float | None = None  # attention_probs_dropout_prob; None: dropout
    activation: str = "gelu"  # exact GELU, HF's "gelu"
    norm_eps: float = 1e-12
    pooler: bool = True  # the tanh [CLS] pooler of the bare ViTModel
    pooler_size: int | None = None  # None: d_model
    init_std: float = 0.02
    num_labels: int = 1000
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    backend: str = "sdpa"

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "num_channels", "d_model", "n_layers", "n_heads", "d_ff", "num_labels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.patch_size > self.image_size:
            raise ValueError(f"patch_size ({self.patch_size}) exceeds image_size ({self.image_size})")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if self.pooler_size is None:
            self.pooler_size = self.d_model
        self._fill_labels()

    def _fill_labels(self) -> None:
        self.num_labels, self.id2label, self.label2id = normalize_labels(self.num_labels, self.id2label, self.label2id)

    @property
    def grid_size(self) -> int:
        """Patches per side at the training resolution."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    def block_config(self) -> BlockConfig:
        return BlockConfig(
            d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff, dropout=self.dropout,
            attn_dropout=self.attn_dropout, activation=self.activation, norm="layernorm", norm_eps=self.norm_eps,
            norm_first=True, bias=True, backend=self.backend,
            ffn_dropout=0.0,  # HF has no dropout inside the MLP, only on its output
        )


register_preset("vit-base", ViTConfig)
register_preset("vit-large", ViTConfig, d_model=1024, n_layers=24, n_heads=16, d_ff=4096)
register_preset(
    "vit-tiny", ViTConfig, image_size=32, patch_size=8, d_model=32, n_layers=2, n_heads=4, d_ff=64, num_labels=10
)


class ViTEmbeddings(nn.Module):
    """pixels (B, C, H, W) -> tokens (B, 1 + N, D): [CLS], then the patches, plus positions."""

    def __init__(self, c: ViTConfig) -> None:
        super().__init__()
        self.config = c
        self.patch = nn.Conv2d(c.num_channels, c.d_model, kernel_size=c.patch_size, stride=c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, c.d_model))
        self.pos = LearnedPositionalEmbedding(c.num_patches + 1, c.d_model)
        self.dropout = nn.Dropout(c.dropout)

    def position_table(self, grid_h: int, grid_w: int) -> Tensor:
        """(1 + grid_h * grid_w, D): the learned table, resized bicubically for another patch grid."""
        table, g = self.pos.weight, self.config.grid_size
        if (grid_h, grid_w) == (g, g):
            return table
        cls_pos, patch_pos = table[:1], table[1:]
        patch_pos = patch_pos.reshape(1, g, g, -1).permute(0, 3, 1, 2)  # (1, D, g, g)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(grid_h * grid_w, -1)  # (N, D)
        return torch.cat([cls_pos, patch_pos], dim=0)  # (1 + N, D)

    def _check(self, pixel_values: Tensor, interpolate_pos_encoding: bool) -> None:
        c = self.config
        if pixel_values.dim() != 4 or pixel_values.shape[1] != c.num_channels:
            raise ValueError(
                f"pixel_values must be (B, {c.num_channels}, H, W), got {tuple(pixel_values.shape)}"
            )
        H, W = pixel_values.shape[-2:]
        if not interpolate_pos_encoding and (H, W) != (c.image_size, c.image_size):
            raise ValueError(
                f"image size {H}x{W} differs from the model's {c.image_size}x{c.image_size}; resize the images "
                "or pass interpolate_pos_encoding=True to resize the position table"
            )
        if H < c.patch_size or W < c.patch_size:
            raise ValueError(f"image size {H}x{W} is smaller than one {c.patch_size}x{c.patch_size} patch")

    def forward(self, pixel_values: Tensor, *, interpolate_pos_encoding: bool = False) -> Tensor:
        self._check(pixel_values, interpolate_pos_encoding)
        patches = self.patch(pixel_values.to(self.patch.weight.dtype))  # (B, D, H/P, W/P)
        grid_h, grid_w = patches.shape[-2:]
        x = patches.flatten(2).transpose(1, 2)  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], 1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1)  # (B, 1 + N, D)
        return self.dropout(x + self.position_table(grid_h, grid_w))


class ViTModel(PretrainedMixin, nn.Module):
    """forward(pixel_values (B, C, H, W)) -> normalized hidden states (B, 1 + N, D)."""

    def __init__(self, config: ViTConfig, *, add_pooler: bool | None = None) -> None:
        super().__init__()
        if not isinstance(config, ViTConfig):
            raise ValueError(f"{type(self).__name__} needs a ViTConfig, got {type(config).__name__}")
        self.config = c = config
        self.embeddings = ViTEmbeddings(c)
        block = c.block_config()
        self.blocks = nn.ModuleList(EncoderLayer(block) for _ in range(c.n_layers))
        self.final_norm = block.norm_layer()
        use_pooler = c.pooler if add_pooler is None else add_pooler
        self.pooler = nn.Linear(c.d_model, c.pooler_size) if use_pooler else None
        init_vit_(self, c.init_std)

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        return count_parameters(self, trainable_only=trainable_only)

    def _run(self, pixel_values: Tensor, interpolate_pos_encoding: bool, hidden: list[Tensor] | None) -> Tensor:
        x = self.embeddings(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)  # (B, T, D)
        if hidden is not None:
            hidden.append(x)
        for block in self.blocks:
            x = block(x)  # (B, T, D); every patch sees every other: no mask
            if hidden is not None:
                hidden.append(x)
        return self.final_norm(x)

    def forward(self, pixel_values: Tensor, *, interpolate_pos_encoding: bool = False) -> Tensor:
        """pixel_values (B, C, H, W) -> hidden (B, 1 + N, D), after the final LayerNorm."""
        return self._run(pixel_values, interpolate_pos_encoding, None)

    def forward_with_hidden(
        self, pixel_values: Tensor, *, interpolate_pos_encoding: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        """(normalized last hidden, L + 1 hidden states: the embeddings, then every block's output)."""
        hidden: list[Tensor] = []
        return self._run(pixel_values, interpolate_pos_encoding, hidden), hidden

    def pool(self, hidden: Tensor) -> Tensor:
        """HF's pooler: tanh(W hidden[:, 0]), (B, T, D) -> (B, pooler_size)."""
        if self.pooler is None:
            raise ValueError("this ViTModel was built without a pooler (config.pooler=False)")
        return torch.tanh(self.pooler(hidden[:, 0]))  # (B, pooler_size)


class ViTForImageClassification(PretrainedMixin, nn.Module):
    """forward(pixel_values (B, C, H, W)) -> logits (B, K) from the normalized [CLS] vector."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.vit = ViTModel(config, add_pooler=False)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        init_vit_(self.classifier, config.init_std)

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        return count_parameters(self, trainable_only=trainable_only)

    def forward(self, pixel_values: Tensor, *, interpolate_pos_encoding: bool = False) -> Tensor:
        hidden = self.vit(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)  # (B, T, D)
        return self.classifier(hidden[:, 0])  # (B, K)

    def forward_with_hidden(
        self, pixel_values: Tensor, *, interpolate_pos_encoding: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        """(logits (B, K), L + 1 hidden states as in :meth:`ViTModel.forward_with_hidden`)."""
        last, hidden = self.vit.forward_with_hidden(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)
        return self.classifier(last[:, 0]), hidden


@torch.no_grad()
def init_vit_(module: nn.Module, std: float) -> None:
    """HF ViT init: truncated normal(0, std) for projections, [CLS] and positions; zero biases; unit norms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, ViTEmbeddings):
            nn.init.trunc_normal_(m.cls_token, std=std)
            nn.init.trunc_normal_(m.pos.weight, std=std)
