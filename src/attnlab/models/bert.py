"""BERT (Devlin et al. 2019) and DistilBERT (Sanh et al. 2019): bidirectional Transformer encoders.

Dimension key: B batch, T sequence length, D model width, H heads, V vocabulary, L layers,
C classes (num_labels).

    x      = dropout(LayerNorm(word(ids) + position(pos) + token_type(types)))     (B, T, D)
    x      = layer_l(x) for l in 0 .. L-1      post-norm EncoderLayer, GELU MLP, padding mask on keys
    pooled = tanh(W_p x[:, 0])                  the [CLS] vector                      (B, D)

Heads:
    BertForMaskedLM                 LayerNorm(gelu(W x)) @ E^T + b, E the word embeddings   (B, T, V)
    BertForSequenceClassification   W_c dropout(pooled)                                     (B, C)

DistilBERT is the same encoder with what differs stated by its classes: no token-type embeddings
and no pooler (``DistilBertConfig`` sets ``type_vocab_size=0, pooler=False``; 6 layers), and its
sequence classifier reads ``relu(W_pre x[:, 0])`` instead of the tanh pooler.

Masks: ``attention_mask`` (B, T) marks real tokens; padded keys are hidden from every query
(padded queries still compute, as in HF, and are ignored by poolers such as :func:`mean_pool`).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.core.masks import padding_mask
from attnlab.interop.mixin import PretrainedMixin
from attnlab.layers.blocks import BlockConfig, EncoderLayer
from attnlab.layers.embeddings import TokenEmbedding
from attnlab.layers.feedforward import get_activation
from attnlab.models.common import count_parameters, init_normal_, normalize_labels
from attnlab.models.config import ModelConfig, register_config, register_preset
from attnlab.positional.scheme import POSITION_KINDS, PositionScheme


@register_config
@dataclasses.dataclass
class BertConfig(ModelConfig):
    """BERT hyper-parameters; defaults are bert-base-uncased (110M)."""

    model_type = "bert"

    vocab_size: int = 30522
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    d_ff: int = 3072
    max_len: int = 512  # max_position_embeddings
    type_vocab_size: int = 2  # 0: no token-type embeddings (DistilBERT)
    positional: str = "learned"
    dropout: float = 0.1
    attn_dropout: float | None = None  # None: dropout
    activation: str = "gelu"
    norm_eps: float = 1e-12
    pooler: bool = True  # the tanh [CLS] pooler of the bare model
    tie_embeddings: bool = True  # masked-LM decoder shares the word embeddings
    init_std: float = 0.02
    pad_id: int | None = 0
    num_labels: int = 2
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    classifier_dropout: float | None = None  # None: dropout
    backend: str = "sdpa"

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.positional not in POSITION_KINDS or self.positional == "t5":
            raise ValueError(
                f"unknown positional {self.positional!r}; choose one of learned, sinusoidal, rope, alibi, none"
            )
        if self.pad_id is not None and not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id={self.pad_id} lies outside the vocabulary [0, {self.vocab_size})")
        self.num_labels, self.id2label, self.label2id = normalize_labels(self.num_labels, self.id2label, self.label2id)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def block_config(self) -> BlockConfig:
        return BlockConfig(
            d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff, dropout=self.dropout,
            attn_dropout=self.attn_dropout, activation=self.activation, norm_eps=self.norm_eps,
            norm_first=False, backend=self.backend,
            ffn_dropout=0.0,  # HF has no dropout inside the MLP, only on its output
        )


@register_config
@dataclasses.dataclass
class DistilBertConfig(BertConfig):
    """DistilBERT: 6 layers, no token types, no pooler; classifier dropout 0.2 (seq_classif_dropout)."""

    model_type = "distilbert"

    n_layers: int = 6
    type_vocab_size: int = 0
    pooler: bool = False
    classifier_dropout: float | None = 0.2


register_preset("bert-base", BertConfig)
register_preset(
    "bert-tiny", BertConfig, vocab_size=128, n_layers=2, n_heads=4, d_model=32, d_ff=64, max_len=64, dropout=0.0
)
register_preset("distilbert-base", DistilBertConfig)
register_preset(
    "distilbert-tiny", DistilBertConfig, vocab_size=128, n_layers=2, n_heads=4, d_model=32, d_ff=64, max_len=64,
    dropout=0.0, classifier_dropout=0.0,
)


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Average of the real tokens' vectors: hidden (B, T, D), attention_mask (B, T) -> (B, D)."""
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, D)


class BertEmbeddings(nn.Module):
    """ids (B, T) -> (B, T, D): word + position + token-type embeddings, LayerNorm, dropout."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word = TokenEmbedding(c.vocab_size, c.d_model, padding_idx=c.pad_id)
        self.pos = PositionScheme(
            c.positional, d_model=c.d_model, n_heads=c.n_heads, head_dim=c.head_dim, max_len=c.max_len, causal=False
        )
        self.token_type = nn.Embedding(c.type_vocab_size, c.d_model) if c.type_vocab_size > 0 else None
        self.norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, ids: Tensor, token_type_ids: Tensor | None, positions: Tensor) -> Tensor:
        x = self.word(ids)  # (B, T, D)
        absolute = self.pos.absolute(positions)
        if absolute is not None:
            x = x + absolute.to(x.dtype)
        if self.token_type is not None:
            x = x + (self.token_type.weight[0] if token_type_ids is None else self.token_type(token_type_ids))
        elif token_type_ids is not None:
            raise ValueError("this model has no token-type embeddings (type_vocab_size=0); drop token_type_ids")
        return self.dropout(self.norm(x))


class BertModel(PretrainedMixin, nn.Module):
    """forward(ids (B, T), attention_mask (B, T), token_type_ids (B, T)) -> hidden (B, T, D)."""

    config_class: type[BertConfig] = BertConfig

    def __init__(self, config: BertConfig, *, add_pooler: bool | None = None) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ValueError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = c = config
        self.embeddings = BertEmbeddings(c)
        self.blocks = nn.ModuleList(EncoderLayer(c.block_config()) for _ in range(c.n_layers))
        self.pooler = nn.Linear(c.d_model, c.d_model) if (c.pooler if add_pooler is None else add_pooler) else None
        init_normal_(self, c.init_std)

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        return count_parameters(self, trainable_only=trainable_only)

    def _run(
        self, ids: Tensor, attention_mask: Tensor | None, token_type_ids: Tensor | None,
        position_ids: Tensor | None, hidden: list[Tensor] | None,
    ) -> Tensor:
        if ids.dim() != 2:
            raise ValueError(f"ids must be (B, T) token ids, got shape {tuple(ids.shape)}")
        for name, t in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if t is not None and t.shape != ids.shape:
                raise ValueError(f"{name} must match ids' shape {tuple(ids.shape)}, got {tuple(t.shape)}")
        pos = torch.arange(ids.shape[1], device=ids.device)  # (T,)
        positions = pos if position_ids is None else position_ids
        x = self.embeddings(ids, token_type_ids, positions)  # (B, T, D)
        mask = None if attention_mask is None else padding_mask(attention_mask.bool())  # (B, 1, 1, T)
        bias, rope = self.embeddings.pos.attn_bias(pos, pos), self.embeddings.pos.rotary(positions)
        if hidden is not None:
            hidden.append(x)
        for block in self.blocks:
            x = block(x, mask=mask, bias=bias, rope=rope)  # (B, T, D)
            if hidden is not None:
                hidden.append(x)
        return x

    def forward(
        self, ids: Tensor, *, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """ids (B, T) -> last hidden states (B, T, D). attention_mask: (B, T), True/1 on real tokens."""
        return self._run(ids, attention_mask, token_type_ids, position_ids, None)

    def forward_with_hidden(
        self, ids: Tensor, *, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """(last hidden (B, T, D), L + 1 hidden states: the embedding output, then every layer's output)."""
        hidden: list[Tensor] = []
        return self._run(ids, attention_mask, token_type_ids, position_ids, hidden), hidden

    def pool(self, hidden: Tensor) -> Tensor:
        """The tanh [CLS] pooler: hidden (B, T, D) -> (B, D)."""
        if self.pooler is None:
            raise ValueError(f"{type(self).__name__} was built without a pooler (config.pooler=False)")
        return torch.tanh(self.pooler(hidden[:, 0]))  # (B, D)


class DistilBertModel(BertModel):
    """BERT's encoder under a :class:`DistilBertConfig`: no token-type embeddings, no pooler."""

    config_class = DistilBertConfig


class MaskedLMHead(nn.Module):
    """hidden (B, T, D) -> logits (B, T, V): dense, activation, LayerNorm, decoder (+ bias)."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.d_model, c.d_model)
        self.act = get_activation(c.activation)
        self.norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.decoder = nn.Linear(c.d_model, c.vocab_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.norm(self.act(self.dense(x))))  # (B, T, V)


class BertForMaskedLM(PretrainedMixin, nn.Module):
    """forward(ids (B, T), ...) -> logits (B, T, V) over the vocabulary at every position."""

    base_class: type[BertModel] = BertModel

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = self.base_class(config, add_pooler=False)
        self.mlm_head = MaskedLMHead(config)
        init_normal_(self.mlm_head, config.init_std)
        if config.tie_embeddings:
            self.mlm_head.decoder.weight = self.bert.embeddings.word.weight

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        return count_parameters(self, trainable_only=trainable_only)

    def forward(
        self, ids: Tensor, *, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        hidden = self.bert(ids, attention_mask=attention_mask, token_type_ids=token_type_ids)  # (B, T, D)
        return self.mlm_head(hidden)  # (B, T, V)

    def forward_with_hidden(
        self, ids: Tensor, *, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        last, hidden = self.bert.forward_with_hidden(ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return self.mlm_head(last), hidden


class DistilBertForMaskedLM(BertForMaskedLM):
    """The same masked-LM head (HF names it vocab_transform / vocab_layer_norm / vocab_projector)."""

    base_class = DistilBertModel


class BertForSequenceClassification(PretrainedMixin, nn.Module):
    """forward(ids (B, T), ...) -> logits (B, C) from the pooled [CLS] vector."""

    base_class: type[BertModel] = BertModel
    uses_pooler = True

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = c = config
        self.bert = self.base_class(c, add_pooler=self.uses_pooler)
        self.dropout = nn.Dropout(c.dropout if c.classifier_dropout is None else c.classifier_dropout)
        self.classifier = nn.Linear(c.d_model, c.num_labels)
        init_normal_(self.classifier, c.init_std)

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        return count_parameters(self, trainable_only=trainable_only)

    def sentence_vector(self, hidden: Tensor) -> Tensor:
        """hidden (B, T, D) -> (B, D): BERT's tanh pooler over [CLS]."""
        return self.bert.pool(hidden)

    def forward(
        self, ids: Tensor, *, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        hidden = self.bert(ids, attention_mask=attention_mask, token_type_ids=token_type_ids)  # (B, T, D)
        return self.classifier(self.dropout(self.sentence_vector(hidden)))  # (B, C)

    def forward_with_hidden(
        self, ids: Tensor, *, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        last, hidden = self.bert.forward_with_hidden(ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return self.classifier(self.dropout(self.sentence_vector(last))), hidden


class DistilBertForSequenceClassification(BertForSequenceClassification):
    """Differs from BERT's classifier: no tanh pooler; [CLS] goes through ``pre_classifier`` + ReLU."""

    base_class = DistilBertModel
    uses_pooler = False

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.pre_classifier = nn.Linear(config.d_model, config.d_model)
        init_normal_(self.pre_classifier, config.init_std)

    def sentence_vector(self, hidden: Tensor) -> Tensor:
        return F.relu(self.pre_classifier(hidden[:, 0]))  # (B, D)
