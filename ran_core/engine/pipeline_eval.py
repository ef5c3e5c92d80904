"""Evaluate the whole photo path on a labelled dataset: each face is put into a larger picture, then detected,
aligned, cut into regions and classified by the :class:`~ran_core.predictor.Predictor`, as a user's photo would be.

``ran-core eval`` measures a model on faces framed the way the dataset frames them. A photo takes another road
(detector box and landmarks, similarity alignment onto the FERPlus template), and if that road frames faces
differently the model sees something it was not trained on. Comparing the two accuracies on the same faces shows it:
a framing mismatch costs points here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ran_core.data.base import DatasetSplit
from ran_core.engine.metrics import SetMetrics, confusion_matrix
from ran_core.faces.tracking import box_iou
from ran_core.imageio import ImageReadError, read_image


@dataclass
class PipelineResult:
    """Accuracy of one model through the photo path.

    Attributes:
        n: faces tried.
        found: faces the detector found (IoU >= 0.3 with where the face was placed).
        overall: metrics over all faces, a missed face counting as wrong.
        on_found: metrics over the found faces only.
        indices: sample index of every face tried, and ``preds`` the class predicted (-1 where missed).
    """

    n: int
    found: int
    overall: SetMetrics
    on_found: SetMetrics
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    preds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def to_json(self) -> dict:
        return {
            "n": self.n,
            "found": self.found,
            "accuracy": self.overall.accuracy,
            "mean_class_accuracy": self.overall.mean_class_accuracy,
            "accuracy_on_found": self.on_found.accuracy,
            "mean_class_accuracy_on_found": self.on_found.mean_class_accuracy,
        }


def place_in_canvas(
    face: np.ndarray, upscale: int, canvas: int, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Upscale a face crop to ``upscale`` px and paste it at a random place of a ``canvas`` px RGB picture whose
    background is smooth grey noise. Returns the picture and where the face went."""
    if canvas < upscale:
        raise ValueError(f"the canvas ({canvas} px) must be at least as large as the upscaled face ({upscale} px)")
    rgb = face if face.ndim == 3 else np.repeat(face[..., None], 3, axis=2)
    big = cv2.resize(rgb, (upscale, upscale), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(120, 40, (canvas // 16 + 1, canvas // 16 + 1)).clip(0, 255).astype(np.float32)
    background = cv2.resize(noise, (canvas, canvas), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
    out = np.repeat(background[..., None], 3, axis=2)
    x0, y0 = (int(v) for v in rng.integers(0, canvas - upscale + 1, size=2))
    out[y0 : y0 + upscale, x0 : x0 + upscale] = big
    return out, (float(x0), float(y0), float(x0 + upscale), float(y0 + upscale))


def evaluate_through_predictor(
    predictors: Sequence,
    split: DatasetSplit,
    upscale: int = 192,
    canvas: int = 320,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[PipelineResult]:
    """Run every face of ``split`` through the photo path of each predictor (detection is done once, by the first).

    Args:
        predictors: :class:`~ran_core.predictor.Predictor` objects; all use the first one's detections.
        split: the labelled faces (each image is one face, framed as the dataset frames it).
        upscale: side the face is resized to before it is pasted (FERPlus faces are 48 px: too small to detect).
        canvas: side of the picture the face is pasted into.
        seed: where faces go and the background noise.
        progress: called with ``(done, total)``.

    Unreadable images are left out (as ``eval`` leaves them out).
    """
    rng = np.random.default_rng(seed)
    c = len(split.class_names)
    indices, targets, preds = [], [], [[] for _ in predictors]
    for i, sample in enumerate(split.samples):
        try:
            face = read_image(sample.path)
        except ImageReadError:
            continue
        if sample.face_box is not None:
            x1, y1, x2, y2 = (int(round(v)) for v in sample.face_box)
            face = face[max(y1, 0) : y2, max(x1, 0) : x2] if (x2 - x1) > 4 and (y2 - y1) > 4 else face
        picture, placed = place_in_canvas(face, upscale, canvas, rng)
        detections = predictors[0].detect(picture)
        best = None
        if detections:
            iou = box_iou(np.array([placed]), np.array([d.box for d in detections]))[0]
            j = int(iou.argmax())
            best = detections[j] if iou[j] >= 0.3 else None
        indices.append(i)
        targets.append(sample.label)
        for k, predictor in enumerate(predictors):
            if best is None:
                preds[k].append(-1)
                continue
            (result,) = predictor.predict_faces(picture, [best])
            preds[k].append(int(np.argmax(result.probabilities)))
        if progress is not None:
            progress(i + 1, len(split.samples))
    t = np.array(targets, dtype=np.int64)
    out = []
    for k in range(len(predictors)):
        p = np.array(preds[k], dtype=np.int64)
        found = p >= 0
        # a missed face counts as wrong: give it a class other than the true one for the confusion matrix
        wrong = np.where(found, p, (t + 1) % c)
        out.append(
            PipelineResult(
                n=len(t),
                found=int(found.sum()),
                overall=SetMetrics.from_confusion(confusion_matrix(t, wrong, c)),
                on_found=SetMetrics.from_confusion(confusion_matrix(t[found], p[found], c)),
                indices=np.array(indices, dtype=np.int64),
                preds=p,
            )
        )
    return out
