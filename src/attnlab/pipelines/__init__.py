"""Task pipelines with HF transformers' call shapes: ``attnlab.pipeline(task, model=DIR)``.

Dimension key: B inputs per batch, T tokens, D model width, V vocabulary.

    from attnlab import pipeline                # instead of: from transformers import pipeline
    clf = pipeline("sentiment-analysis", model="runs/sst2")
    clf(["a gripping film", "a dull mess"])     # [{"label": "positive", "score": 0.98}, ...]

Tasks: "text-generation", "translation" (and "translation_xx_to_yy"), "text2text-generation",
"text-classification" / "sentiment-analysis", "fill-mask", "feature-extraction",
"image-classification". Each accepts one input or a list, batches internally and returns plain
lists of dicts. Models are read from local folders only; see ``docs/pipelines.md``.
"""

from attnlab.pipelines.base import Pipeline
from attnlab.pipelines.factory import PIPELINES, pipeline
from attnlab.pipelines.feature_extraction import FeatureExtractionPipeline
from attnlab.pipelines.fill_mask import FillMaskPipeline
from attnlab.pipelines.generative import Completion, GenerationCancelled, GenerativePipeline, TextChunk
from attnlab.pipelines.image_classification import ImageClassificationPipeline, ImagePreprocessor, open_image
from attnlab.pipelines.loading import MissingModelError, infer_task
from attnlab.pipelines.text2text import Text2TextGenerationPipeline, TranslationPipeline
from attnlab.pipelines.text_classification import TextClassificationPipeline
from attnlab.pipelines.text_generation import TextGenerationPipeline

__all__ = [
    "PIPELINES",
    "Completion",
    "FeatureExtractionPipeline",
    "FillMaskPipeline",
    "GenerationCancelled",
    "GenerativePipeline",
    "ImageClassificationPipeline",
    "ImagePreprocessor",
    "MissingModelError",
    "Pipeline",
    "Text2TextGenerationPipeline",
    "TextChunk",
    "TextClassificationPipeline",
    "TextGenerationPipeline",
    "TranslationPipeline",
    "infer_task",
    "open_image",
    "pipeline",
]
