"""Request bodies of the HTTP server, validated by pydantic with explicit bounds.

Dimension key: none (JSON fields).

Every model forbids unknown fields and coerces nothing (``strict``): a malformed or out-of-range
field is a 422 answer naming it. No field names a file or a model to load: the server runs the one
model it was started with, and inputs are text (or base64-encoded image bytes).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

MAX_TEXT_CHARS = 100_000  # per text input (tokenizing costs time); the body limit (1 MB) bounds the total
MAX_IMAGE_CHARS = 1_500_000  # per base64 image: only the body limit applies
MAX_INPUTS = 32  # strings per request
MAX_CHOICES = 32  # prompts x n for one completion request
MAX_NEW_TOKENS = 4096

Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
StopText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CompletionRequest(Strict):
    """OpenAI's ``POST /v1/completions`` body (the fields attnlab implements, plus ``top_k`` and
    ``repetition_penalty`` as vLLM offers them). ``temperature`` 0 means greedy decoding."""

    model: Annotated[str, StringConstraints(max_length=256)] | None = None
    prompt: Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_INPUTS)]
    max_tokens: Annotated[int, Field(ge=1, le=MAX_NEW_TOKENS)] = 16
    temperature: Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 1.0
    top_k: Annotated[int, Field(ge=0, le=1000)] = 0
    n: Annotated[int, Field(ge=1, le=8)] = 1
    stream: bool = False
    stop: StopText | Annotated[list[StopText], Field(max_length=4)] | None = None
    seed: Seed | None = None
    echo: bool = False
    repetition_penalty: Annotated[float, Field(gt=0.0, le=10.0, allow_inf_nan=False)] = 1.0
    user: Annotated[str, StringConstraints(max_length=256)] | None = None

    @model_validator(mode="after")
    def _check_combination(self) -> CompletionRequest:
        prompts = 1 if isinstance(self.prompt, str) else len(self.prompt)
        if prompts * self.n > MAX_CHOICES:
            raise ValueError(f"prompts x n = {prompts * self.n} exceeds the limit of {MAX_CHOICES} choices")
        if self.n > 1 and self.temperature == 0:
            raise ValueError("n > 1 needs temperature > 0: greedy decoding (temperature 0) gives one answer")
        return self

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @property
    def stops(self) -> list[str]:
        return [] if self.stop is None else [self.stop] if isinstance(self.stop, str) else list(self.stop)


Input = Annotated[str, StringConstraints(max_length=MAX_IMAGE_CHARS)]


class PipelineRequest(Strict):
    """``POST /v1/pipeline``: HF Inference API's shape, ``{"inputs": ..., "parameters": {...}}``.

    Text inputs are limited to ``MAX_TEXT_CHARS`` each by the route (images, base64, only by the body).
    """

    inputs: Input | Annotated[list[Input], Field(min_length=1, max_length=MAX_INPUTS)]
    parameters: dict[str, Any] = Field(default_factory=dict)


# ---- per-task parameters ---------------------------------------------------------------------


class GenerationParams(Strict):
    max_new_tokens: Annotated[int, Field(ge=1, le=MAX_NEW_TOKENS)] | None = None
    min_new_tokens: Annotated[int, Field(ge=0, le=MAX_NEW_TOKENS)] | None = None
    do_sample: bool | None = None
    temperature: Annotated[float, Field(gt=0.0, le=100.0, allow_inf_nan=False)] | None = None
    top_k: Annotated[int, Field(ge=0, le=1000)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0, le=10.0, allow_inf_nan=False)] | None = None
    no_repeat_ngram_size: Annotated[int, Field(ge=0, le=16)] | None = None
    num_beams: Annotated[int, Field(ge=1, le=8)] | None = None
    num_return_sequences: Annotated[int, Field(ge=1, le=8)] | None = None
    length_penalty: Annotated[float, Field(ge=-10.0, le=10.0, allow_inf_nan=False)] | None = None
    early_stopping: bool | Literal["never"] | None = None
    stop_strings: Annotated[list[StopText], Field(max_length=4)] | None = None
    seed: Seed | None = None


class TextGenerationParams(GenerationParams):
    return_full_text: bool | None = None


class ClassificationParams(Strict):
    top_k: Annotated[int, Field(ge=1, le=1000)] | None = 1
    function_to_apply: Literal["softmax", "sigmoid", "none"] | None = None


class ImageClassificationParams(ClassificationParams):
    top_k: Annotated[int, Field(ge=1, le=1000)] | None = 5


class FillMaskParams(Strict):
    top_k: Annotated[int, Field(ge=1, le=100)] = 5
    targets: StopText | Annotated[list[StopText], Field(min_length=1, max_length=100)] | None = None


class FeatureExtractionParams(Strict):
    pooling: Literal["mean", "cls", "max", "auto"] | None = None
    normalize: bool | None = None


TASK_PARAMS: dict[str, type[Strict]] = {
    "text-generation": TextGenerationParams,
    "text2text-generation": GenerationParams,
    "translation": GenerationParams,
    "text-classification": ClassificationParams,
    "fill-mask": FillMaskParams,
    "feature-extraction": FeatureExtractionParams,
    "image-classification": ImageClassificationParams,
}


def call_options(task: str, parameters: Any) -> dict[str, Any]:
    """The validated keyword options for the pipeline call (pydantic ``ValidationError`` when invalid)."""
    params = TASK_PARAMS[task].model_validate(parameters)
    values = params.model_dump()
    none_is_a_value = {"top_k", "pooling"}  # top_k=None: every label; pooling=None: per-token vectors
    return {k: values[k] for k in params.model_fields_set if values[k] is not None or k in none_is_a_value}
