"""``pipeline("image-classification")``: label images with a Vision Transformer.

Dimension key: B images, C channels, H, W height and width (the model's ``image_size``), K classes.

    clf = attnlab.pipeline("image-classification", model="vit-folder")
    clf(image)                   # [{"label": "cat", "score": 0.9}, ...] the top 5, best first
    clf([img1, img2], top_k=2)   # one such list per image

Images may be PIL images, local file paths, encoded bytes (PNG, JPEG, ...), uint8 (H, W[, C]) numpy
arrays, or (C, H, W) tensors with values in [0, 1]. Preprocessing is HF's ``ViTImageProcessor``:
convert to RGB, resize to the model's size (bilinear, with PIL), rescale by 1/255 and normalize with
mean = std = 0.5 per channel; a ``preprocessor_config.json`` in the model folder overrides these
(``size``, ``resample``, ``rescale_factor``, ``image_mean``, ``image_std``, ``do_*`` switches).
Images larger than ``MAX_PIXELS`` are refused before they are decoded (decompression bombs).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from attnlab.pipelines.base import SCORE_FUNCTIONS, Pipeline, check_function, check_top_k, ranked_labels

MAX_PIXELS = 50_000_000  # width * height accepted before decoding


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("image-classification needs Pillow: pip install pillow (or attnlab[serve])") from e
    return Image


def open_image(source: Any, *, max_pixels: int = MAX_PIXELS) -> Any:
    """A PIL image from a PIL image, a local path, encoded bytes, a numpy array or a (C, H, W) tensor."""
    Image = _pil()
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray, str, Path)):
        if isinstance(source, (str, Path)) and not Path(source).is_file():
            raise FileNotFoundError(f"{source}: no such image file (URLs are not fetched; download the file first)")
        try:
            image = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
            if image.width * image.height > max_pixels:  # checked on the header, before decoding
                raise ValueError(f"{image.width}x{image.height} pixels exceeds the limit of {max_pixels} pixels")
            image.load()  # decode now, so a truncated or corrupt file fails here
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise ValueError(f"cannot read the image: {e}") from None
        return image
    if isinstance(source, Tensor):
        if source.dim() != 3:
            raise ValueError(f"an image tensor must be (C, H, W), got shape {tuple(source.shape)}")
        source = source.detach().cpu().permute(1, 2, 0).numpy()  # (H, W, C)
    if isinstance(source, np.ndarray):
        return _from_array(source)
    raise TypeError(f"unsupported image type {type(source).__name__}; give a PIL image, path, bytes, array or tensor")


def _from_array(array: np.ndarray) -> Any:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError("a float image array must hold values in [0, 1] (or pass uint8 values 0..255)")
        array = np.round(array * 255).astype(np.uint8)
    return _pil().fromarray(array)


@dataclasses.dataclass
class ImagePreprocessor:
    """PIL image -> (C, H, W) float tensor, as HF's ViTImageProcessor."""

    size: tuple[int, int]  # (height, width)
    resample: int = 2  # PIL bilinear
    do_resize: bool = True
    rescale_factor: float | None = 1 / 255
    mean: tuple[float, ...] | None = (0.5, 0.5, 0.5)
    std: tuple[float, ...] | None = (0.5, 0.5, 0.5)
    channels: int = 3

    @classmethod
    def for_model(cls, model_config: Any, folder: Path | None) -> ImagePreprocessor:
        side = int(getattr(model_config, "image_size", 224))
        proc = cls(size=(side, side), channels=int(getattr(model_config, "num_channels", 3)))
        file = None if folder is None else folder / "preprocessor_config.json"
        if file is not None and file.is_file():
            proc._update(json.loads(file.read_text()))
        return proc

    def _update(self, cfg: dict[str, Any]) -> None:
        size = cfg.get("size")
        if isinstance(size, int):
            self.size = (size, size)
        elif isinstance(size, dict) and "height" in size and "width" in size:
            self.size = (int(size["height"]), int(size["width"]))
        self.resample = int(cfg.get("resample", self.resample))
        self.do_resize = bool(cfg.get("do_resize", True))
        if not cfg.get("do_rescale", True):
            self.rescale_factor = None
        elif "rescale_factor" in cfg:
            self.rescale_factor = float(cfg["rescale_factor"])
        if not cfg.get("do_normalize", True):
            self.mean = self.std = None
        else:
            self.mean = tuple(cfg.get("image_mean", self.mean))
            self.std = tuple(cfg.get("image_std", self.std))

    def __call__(self, image: Any) -> Tensor:
        image = image.convert("RGB" if self.channels == 3 else "L")
        if self.do_resize and (image.height, image.width) != self.size:
            image = image.resize((self.size[1], self.size[0]), resample=self.resample)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32).copy())  # (H, W[, C])
        x = x.unsqueeze(-1) if x.dim() == 2 else x
        x = x.permute(2, 0, 1)  # (C, H, W)
        if self.rescale_factor is not None:
            x = x * self.rescale_factor
        if self.mean is not None and self.std is not None:
            x = (x - torch.tensor(self.mean).view(-1, 1, 1)) / torch.tensor(self.std).view(-1, 1, 1)
        return x


class ImageClassificationPipeline(Pipeline):
    """Returns the ``top_k`` labels of each image, best first."""

    task = "image-classification"

    def __init__(self, model: Any, tokenizer: Any = None, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        if not isinstance(getattr(self.model.config, "id2label", None), dict):
            raise ValueError(f"image-classification needs a classifier with id2label, got {type(self.model).__name__}")
        self.preprocess = ImagePreprocessor.for_model(self.model.config, self.model_dir)

    def _is_single(self, inputs: Any) -> bool:
        return not isinstance(inputs, (list, tuple))

    def _check_item(self, item: Any, index: int) -> None:
        return None  # images are checked while they are opened

    def _check_params(self, *, top_k: int | None = 5, function_to_apply: str | None = None) -> dict[str, Any]:
        n = len(self.model.config.id2label)
        default = "sigmoid" if n == 1 or self.hf_config.get("problem_type") == "multi_label_classification" \
            else "softmax"
        return {"top_k": check_top_k(top_k, allow_none=True), "function": check_function(function_to_apply) or default}

    def _run_batch(self, items: list[Any], params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        pixels = torch.stack([self.preprocess(open_image(x)) for x in items]).to(self.device)  # (B, C, H, W)
        logits = self.model(pixels)  # (B, K)
        scores = SCORE_FUNCTIONS[params["function"]](logits.float())  # (B, K)
        id2label = {int(k): str(v) for k, v in self.model.config.id2label.items()}
        return [ranked_labels(row, id2label, params["top_k"]) for row in scores]
