"""Model families. Importing this package registers every family's presets."""

from attnlab.models.config import ModelConfig, config_from_dict, from_name, preset_names
from attnlab.models.transformer import Transformer, TransformerConfig

__all__ = ["ModelConfig", "Transformer", "TransformerConfig", "config_from_dict", "from_name", "preset_names"]
