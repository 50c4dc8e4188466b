"""The RNN encoder-decoder (Cho et al. 2014; Bahdanau et al. 2015; Luong et al. 2015).

Dimension key: B batch, S source length, T target length, D memory width, V target vocabulary.

    enc    = encode(src_ids (B, S), src_valid)            EncoderOutput: memory (B, S, D), initial state
    logits = decode(tgt_in (B, T), enc)                   (B, T, V), teacher forcing
    logits = forward(src_ids, tgt_in, src_valid)          (B, T, V)
    logits, alignments = forward_with_alignments(...)     alignments (B, T, S), None without attention
    state  = start(enc);  logits, state, align = decode_step(y_prev (B,), state)   incremental decoding

The same call pattern as :class:`attnlab.models.transformer.Transformer` (``encode`` / ``decode`` /
``forward`` returning logits), except that ``encode`` returns an :class:`EncoderOutput` rather than
a bare memory tensor and incremental decoding threads an explicit :class:`DecoderState` instead of
KV caches. ``save(dir)`` / ``RNNSeq2Seq.load(dir)`` write and read ``config.json`` +
``model.safetensors``; a malformed or mismatched checkpoint raises
:class:`attnlab.CheckpointError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from attnlab.classic.config import RNNSeq2SeqConfig
from attnlab.classic.decoders import DECODERS, DecoderState, StepOutput
from attnlab.classic.encoder import EncoderOutput, RNNEncoder
from attnlab.interop.errors import CheckpointError
from attnlab.interop.safetensors_io import read_safetensors, write_safetensors
from attnlab.models.common import count_parameters

if TYPE_CHECKING:
    from attnlab.classic.generate import RNNRunner

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class RNNSeq2Seq(nn.Module):
    """forward(src_ids (B, S), tgt_in (B, T), src_valid (B, S) | None) -> logits (B, T, V)."""

    def __init__(self, config: RNNSeq2SeqConfig) -> None:
        super().__init__()
        if not isinstance(config, RNNSeq2SeqConfig):
            raise TypeError(f"RNNSeq2Seq needs an RNNSeq2SeqConfig, got {type(config).__name__}")
        self.config = config
        self.encoder = RNNEncoder(config)
        self.decoder = DECODERS[config.attention](config)
        self._init_weights()

    @property
    def has_alignment(self) -> bool:
        """False for the context-vector baseline, which has no alignment to return."""
        return self.decoder.has_alignment

    def _init_weights(self) -> None:
        for p in self.parameters():  # uniform(-0.1, 0.1), as in Sutskever et al. and Luong et al.
            nn.init.uniform_(p, -0.1, 0.1)
        with torch.no_grad():
            self.encoder.embed.weight[self.config.pad_id].zero_()
            self.decoder.embed.weight[self.config.pad_id].zero_()

    def num_parameters(self) -> int:
        return count_parameters(self)

    def _src_valid(self, src_ids: Tensor, src_valid: Tensor | None) -> Tensor:
        return (src_ids != self.config.pad_id) if src_valid is None else src_valid.bool()

    def encode(self, src_ids: Tensor, src_valid: Tensor | None = None) -> EncoderOutput:
        """src_ids (B, S), right-padded; ``src_valid`` (B, S) defaults to ids != pad_id."""
        return self.encoder(src_ids, self._src_valid(src_ids, src_valid))

    def start(self, enc: EncoderOutput) -> DecoderState:
        """The decoder state before the first target token."""
        return self.decoder.init_state(enc)

    def decode_step(self, y_prev: Tensor, state: DecoderState) -> StepOutput:
        """y_prev (B,) -> (logits (B, V), next state, alignment (B, S) or None)."""
        return self.decoder.step(y_prev, state)

    def decode_with_alignments(self, tgt_in: Tensor, enc: EncoderOutput) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: tgt_in (B, T) -> (logits (B, T, V), alignments (B, T, S) or None)."""
        if tgt_in.dim() != 2 or tgt_in.shape[0] != enc.memory.shape[0]:
            raise ValueError(
                f"tgt_in must be (B, T) with B={enc.memory.shape[0]} as in the source, got {tuple(tgt_in.shape)}"
            )
        return self.decoder(tgt_in, self.start(enc))

    def decode(self, tgt_in: Tensor, memory: EncoderOutput, src_valid: Tensor | None = None) -> Tensor:
        """tgt_in (B, T) -> logits (B, T, V); ``src_valid`` is carried by ``memory`` and may be omitted."""
        return self.decode_with_alignments(tgt_in, memory)[0]

    def forward_with_alignments(
        self, src_ids: Tensor, tgt_in: Tensor, src_valid: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """(logits (B, T, V), alignments (B, T, S) or None for the baseline)."""
        return self.decode_with_alignments(tgt_in, self.encode(src_ids, src_valid))

    def forward(self, src_ids: Tensor, tgt_in: Tensor, src_valid: Tensor | None = None) -> Tensor:
        return self.forward_with_alignments(src_ids, tgt_in, src_valid)[0]

    def make_runner(
        self, src_ids: Tensor, src_valid: Tensor | None, max_new_tokens: int, *, start_id: int | None = None,
        expand: int = 1,
    ) -> RNNRunner:
        """A generation runner (``prefill`` / ``step`` / ``reorder``) over this model, for search loops."""
        from attnlab.classic.generate import RNNRunner

        return RNNRunner(self, src_ids, src_valid, max_new_tokens, start_id=start_id, expand=expand)

    # ----------------------------------------------------------------------------------------
    # checkpoints: config.json + model.safetensors (no pickle)
    # ----------------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.to_json(directory / CONFIG_NAME)
        write_safetensors(directory / WEIGHTS_NAME, self.state_dict(), metadata={"model_type": self.config.model_type})
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> RNNSeq2Seq:
        """Rebuild a model written by :meth:`save`; a bad checkpoint raises :class:`CheckpointError`."""
        directory = Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (directory / name).is_file():
                raise CheckpointError(f"{directory / name} not found; expected a directory written by RNNSeq2Seq.save")
        try:
            config = RNNSeq2SeqConfig.from_dict(json.loads((directory / CONFIG_NAME).read_text()))
        except (ValueError, TypeError) as e:  # bad JSON, another model_type, unknown or invalid fields
            raise CheckpointError(f"{directory / CONFIG_NAME} is not a valid RNNSeq2SeqConfig: {e}") from e
        model = cls(config)
        tensors = read_safetensors(directory / WEIGHTS_NAME)
        _check_state(model.state_dict(), tensors, directory / WEIGHTS_NAME)
        model.load_state_dict(tensors)
        return model.to(device)


def _check_state(expected: dict[str, Tensor], found: dict[str, Tensor], where: Path) -> None:
    """Raise CheckpointError naming every missing, unexpected or mis-shaped weight."""
    problems = [f"missing {k}" for k in sorted(set(expected) - set(found))]
    problems += [f"unexpected {k}" for k in sorted(set(found) - set(expected))]
    problems += [
        f"{k}: shape {tuple(found[k].shape)} in the file, {tuple(v.shape)} for the config"
        for k, v in expected.items() if k in found and found[k].shape != v.shape
    ]
    if problems:
        raise CheckpointError(
            f"{where} does not match the config beside it ({len(problems)} problems: {'; '.join(problems[:6])}); "
            "save and load with the same config.json"
        )
