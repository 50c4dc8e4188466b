"""``pipeline("text-classification")`` (alias ``"sentiment-analysis"``): label texts with a sequence classifier.

Dimension key: B texts, T padded tokens, C classes.

    clf = attnlab.pipeline("sentiment-analysis", model="runs/sst2")
    clf("a gripping film")                   # [{"label": "positive", "score": 0.97}]
    clf(["good", "bad"])                     # [{"label": ...}, {"label": ...}]   one dict per text
    clf("good", top_k=None)                  # every label, best first
    clf(["good", "bad"], top_k=2)            # [[{...}, {...}], [{...}, {...}]]

Label names come from the model config's ``id2label``. Scores are the softmax over classes, or a
sigmoid when the model has one output or its config says ``problem_type:
"multi_label_classification"`` (override with ``function_to_apply="softmax" | "sigmoid" | "none"``),
as HF transformers does. Texts are encoded with the tokenizer's special tokens ([CLS] ... [SEP]) and
cut to the model's context.
"""

from __future__ import annotations

from typing import Any

from attnlab.pipelines.base import SCORE_FUNCTIONS, Pipeline, check_function, check_top_k, ranked_labels


class TextClassificationPipeline(Pipeline):
    """Returns ``[{"label", "score"}]`` for a text (``top_k`` dicts when ``top_k`` is not 1)."""

    task = "text-classification"

    def __init__(self, model: Any, tokenizer: Any = None, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        if not isinstance(getattr(self.model.config, "id2label", None), dict):
            raise ValueError(
                f"text-classification needs a sequence classifier whose config has id2label, got "
                f"{type(self.model).__name__}; train one with `attnlab train classify`"
            )

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in self.model.config.id2label.items()}

    def default_function(self) -> str:
        multi = self.hf_config.get("problem_type") == "multi_label_classification"
        return "sigmoid" if multi or len(self.id2label) == 1 else "softmax"

    def _check_params(self, *, top_k: int | None = 1, function_to_apply: str | None = None,
                      max_length: int | None = None) -> dict[str, Any]:
        return {
            "top_k": check_top_k(top_k, allow_none=True),
            "function": check_function(function_to_apply) or self.default_function(),
            "max_length": self._text_limit(max_length),
        }

    def _run_batch(self, items: list[str], params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        ids, valid, _ = self._encode_padded(items, max_length=params["max_length"])  # (B, T)
        logits = self.model(ids, attention_mask=valid)  # (B, C)
        scores = SCORE_FUNCTIONS[params["function"]](logits.float())  # (B, C)
        return [ranked_labels(row, self.id2label, params["top_k"]) for row in scores]

    def _format(self, results: list[Any], single: bool, params: dict[str, Any]) -> Any:
        if params["top_k"] == 1:  # HF: one dict per text, in a list even for one text
            return [ranked[0] for ranked in results]
        return results[0] if single else results
