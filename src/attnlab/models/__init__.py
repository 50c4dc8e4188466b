"""Model families. Importing this package registers every family's presets."""

from attnlab.models.config import ModelConfig, config_from_dict, from_name, preset_names
from attnlab.models.transformer import Transformer, TransformerConfig
from attnlab.models.gpt import GPT, GPTConfig
from attnlab.models.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertModel,
)

__all__ = ["ModelConfig", "Transformer", "TransformerConfig", "config_from_dict", "from_name", "preset_names"]
__all__ += [
    "BertConfig",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertModel",
    "DistilBertConfig",
    "DistilBertForMaskedLM",
    "DistilBertForSequenceClassification",
    "DistilBertModel",
    "GPT",
    "GPTConfig",
]
from attnlab.models.t5 import T5, T5Config
from attnlab.models.vit import ViTConfig, ViTForImageClassification, ViTModel

__all__ += ["T5", "T5Config", "ViTConfig", "ViTForImageClassification", "ViTModel"]
