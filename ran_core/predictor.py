"""The Predictor: image in, faces with expressions and region attention out.

Like detectron2's ``DefaultPredictor`` it owns the whole pipeline, so callers hand it an image and get results:
read (any path, PIL image or RGB array) -> detect faces -> align each face to the training framing -> cut the regions
the model's config asks for -> normalise exactly as the model was trained -> one batched forward pass under
``torch.inference_mode`` -> :class:`~ran_core.structures.FaceResult` objects with every box in the ORIGINAL image.

Example::

    predictor = Predictor("ran-ferplus", detector="auto")
    for face in predictor("photo.jpg"):
        print(face.label, face.confidence, [(r.name, r.weight) for r in face.regions])
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ran_core.config import ModelConfig, check_tta
from ran_core.faces.alignment import AlignedFace, align_face
from ran_core.faces.detectors import DEFAULT_MAX_SIDE, Detection, FaceDetector, create_detector
from ran_core.faces.pose import estimate_pose
from ran_core.imageio import ImageReadError, read_image, to_gray
from ran_core.models.inference import infer
from ran_core.regions import crop_regions, normalize_crops, region_boxes
from ran_core.saved_model import load_model
from ran_core.structures import FaceResult, RegionResult


@dataclass
class Timings:
    """Wall-clock seconds spent by the last call, per stage.

    Attributes:
        detection: face detection (including the detector's downscaling).
        alignment: alignment, region boxes, region crops and normalisation.
        model: the forward pass (and copying its outputs back).
        faces: faces processed.
    """

    detection: float = 0.0
    alignment: float = 0.0
    model: float = 0.0
    faces: int = 0

    @property
    def total(self) -> float:
        return self.detection + self.alignment + self.model


@dataclass
class _PreparedFace:
    image_index: int
    detection: Detection
    aligned: AlignedFace
    names: list[str]
    scheme: str
    boxes: np.ndarray  # (K, 4) region boxes in the aligned crop
    image_size: tuple[int, int] | None = None  # (H, W) of the source image


FACE_MODES: tuple[str, ...] = ("detect", "whole")


@dataclass
class InputError:
    """In place of an image's faces in ``predict_batch(..., errors="report")``: why that input gave none.

    Attributes:
        index: position of the input in the batch.
        message: what was wrong with it, in plain words.
    """

    index: int
    message: str


BACKENDS: tuple[str, ...] = ("torch", "onnx")


class Predictor:
    """Detect faces and classify their expressions with a saved RAN (or baseline) model.

    Args:
        model: a saved model (bundled name, directory, ``config.json`` or ``model.safetensors``) or a model built by
            :func:`ran_core.create_model` (it is put in eval mode on ``device``).
        detector: ``auto``, ``fan``, ``mtcnn``, ``haar`` or any object with ``name`` and ``detect(rgb)``.
        device: torch device for the model and CNN detectors.
        max_detect_side: longest side of the copy detection runs on, when ``detector`` is a name.
        tta: test-time augmentation, one of :data:`ran_core.config.TTA_MODES`; ``None`` uses the model config's (see
            :func:`ran_core.models.infer`).
        backend: ``torch``, or ``onnx`` to run the model with ONNX Runtime (a ``.onnx`` file from ``ran-core export``,
            or a saved model exported once into the cache; needs onnxruntime). A ``.onnx`` path implies ``onnx``.
        onnx_threads: ONNX Runtime's intra-op threads (0: its default, all cores). One face a frame is best served
            by 1: on the 2-core CPU the camera path ran at 130 fps (p95 9.5 ms) with 1 thread and 57-79 fps (p95
            36 ms) with the default, against 94 fps (p95 12.6 ms) for PyTorch.
        faces: ``detect`` finds faces in each image; ``whole`` treats each image as one already-cropped face (a
            dataset image, a crop from another tool): aligned by its landmarks when the detector finds them in the
            upscaled, padded image, else the whole image is the face, framed as datasets frame their crops.
    """

    def __init__(
        self,
        model: str | Path | nn.Module = "ran-ferplus",
        detector: str | FaceDetector = "auto",
        device: str | torch.device = "cpu",
        max_detect_side: int | None = DEFAULT_MAX_SIDE,
        tta: str | None = None,
        faces: str = "detect",
        backend: str = "torch",
        onnx_threads: int = 0,
    ) -> None:
        check_tta(tta)
        if faces not in FACE_MODES:
            raise ValueError(f"faces must be one of {FACE_MODES}, got {faces!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.tta = tta
        self.faces = faces
        self.device = torch.device(device)
        if not isinstance(model, nn.Module) and str(model).endswith(".onnx"):
            backend = "onnx"
        self.backend = backend
        if backend == "onnx":
            from ran_core.export import OnnxModel, export_onnx, onnx_for

            if isinstance(model, nn.Module):
                import tempfile

                self._onnx_dir = tempfile.TemporaryDirectory(prefix="ran_core_onnx_")
                path = export_onnx(model.eval(), Path(self._onnx_dir.name) / "model.onnx")
            else:
                path = onnx_for(model)
            self.model = OnnxModel(path, threads=onnx_threads)
        elif isinstance(model, nn.Module):
            if not isinstance(getattr(model, "config", None), ModelConfig):
                raise TypeError("the model must carry its ModelConfig as .config (build it with create_model)")
            self.model = model.to(self.device).eval()
        else:
            self.model = load_model(model, device=self.device)
        self.config: ModelConfig = self.model.config
        if isinstance(detector, str):
            detector = create_detector(detector, device=str(self.device), max_side=max_detect_side)
        self.detector: FaceDetector = detector
        self.timings = Timings()

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    def with_tta(self, tta: str | None) -> Predictor:
        """This predictor with another test-time augmentation (``None``: the model's saved one): the same model,
        detector, backend and face mode, nothing loaded again. A live camera can trade views for speed this way."""
        check_tta(tta)
        other = copy.copy(self)
        other.tta = tta
        other.timings = Timings()
        return other

    def __call__(self, image: Any) -> list[FaceResult]:
        """Faces in one image (a path, bytes, PIL image or ``(H, W[, C])`` RGB array); ``[]`` if there are none.

        Raises:
            ran_core.imageio.ImageReadError: the image cannot be read.
        """
        return self.predict_batch([image])[0]

    def detect(self, image: Any) -> list[Detection]:
        """Only the detection step, in the image's pixel coordinates (one whole-image face with ``faces="whole"``)."""
        rgb = read_image(image)
        return [self._whole_face(rgb)] if self.faces == "whole" else self.detector.detect(rgb)

    def _whole_face(self, rgb: np.ndarray) -> Detection:
        from ran_core.data.landmarks import detect_landmarks

        h, w = rgb.shape[:2]
        points = detect_landmarks(rgb, self.detector) if min(h, w) >= 8 else None
        return Detection((0.0, 0.0, float(w), float(h)), 1.0, points)

    def predict_batch(self, images: Sequence[Any], errors: str = "raise") -> list[Any]:
        """Faces of several images, all of them classified in one forward pass. One list per image.

        Args:
            images: paths, bytes, PIL images or arrays.
            errors: ``raise``: the first unreadable image raises :class:`~ran_core.imageio.ImageReadError`;
                ``report``: an image that cannot be read or analysed gets an :class:`InputError` in its place and
                the others are still classified.
        """
        if errors not in ("raise", "report"):
            raise ValueError(f"errors must be raise or report, got {errors!r}")
        if errors == "raise":
            rgbs = [read_image(im) for im in images]
            return self._detect_and_predict(rgbs)
        out: list[Any] = [None] * len(images)
        good: list[tuple[int, np.ndarray]] = []
        for i, im in enumerate(images):
            try:
                good.append((i, read_image(im)))
            except ImageReadError as exc:
                out[i] = InputError(i, str(exc))
        try:
            results = self._detect_and_predict([rgb for _, rgb in good])
        except Exception:  # one bad image must not cost the others: retry them one by one
            results = []
            for i, rgb in good:
                try:
                    results.append(self._detect_and_predict([rgb])[0])
                except Exception as exc:  # noqa: BLE001 - reported as that input's error
                    results.append(InputError(i, f"could not be analysed ({type(exc).__name__}: {exc})"))
        for (i, _), res in zip(good, results):
            out[i] = res
        return out

    def _detect_and_predict(self, rgbs: list[np.ndarray]) -> list[list[FaceResult]]:
        t0 = time.perf_counter()
        if self.faces == "whole":
            detections = [[self._whole_face(rgb)] for rgb in rgbs]
        else:
            detections = [self.detector.detect(rgb) for rgb in rgbs]
        detection_s = time.perf_counter() - t0
        results = self._predict(rgbs, detections)
        self.timings.detection = detection_s
        return results

    def predict_faces(self, image: Any, detections: Sequence[Detection]) -> list[FaceResult]:
        """Classify faces the caller already found (a camera loop, or an edited image with the same boxes)."""
        results = self._predict([read_image(image)], [list(detections)])[0]
        self.timings.detection = 0.0
        return results

    def _predict(self, rgbs: list[np.ndarray], detections: list[list[Detection]]) -> list[list[FaceResult]]:
        cfg = self.config
        t0 = time.perf_counter()
        detections = [[Detection.from_any(d) for d in dets] for dets in detections]
        prepared = [self._prepare(i, rgb, det) for i, (rgb, dets) in enumerate(zip(rgbs, detections)) for det in dets]
        results: list[list[FaceResult]] = [[] for _ in rgbs]
        self.timings = Timings(faces=len(prepared))
        if not prepared:
            self.timings.alignment = time.perf_counter() - t0
            return results
        # Faces can differ in region count only when some fall back from landmark to fixed regions: one pass each.
        groups: dict[int, list[int]] = {}
        for j, p in enumerate(prepared):
            groups.setdefault(len(p.names), []).append(j)
        out_by_face: dict[int, tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]] = {}
        align_s, model_s = time.perf_counter() - t0, 0.0
        for idx in groups.values():
            t1 = time.perf_counter()
            crops = np.stack([self._model_image(prepared[j].aligned.crop) for j in idx])  # (N, S, S, C) uint8
            images = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float()
            boxes = torch.from_numpy(np.stack([prepared[j].boxes for j in idx])).float().to(self.device)
            regions = crop_regions(images, boxes, cfg.input_size)  # (N, K, C, S, S) in [0, 255]
            x = normalize_crops(regions / 255.0, cfg.mean, cfg.std)
            t2 = time.perf_counter()
            with torch.inference_mode():
                out = infer(self.model, x, self.tta)
                probs = torch.softmax(out.logits, dim=1).cpu().numpy()
                alpha = None if out.alpha is None else out.alpha.float().cpu().numpy()
                beta = None if out.beta is None else out.beta.float().cpu().numpy()
            t3 = time.perf_counter()
            region_crops = regions.round().clamp(0, 255).to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()
            for n, j in enumerate(idx):
                out_by_face[j] = (
                    probs[n],
                    None if alpha is None else alpha[n],
                    None if beta is None else beta[n],
                    region_crops[n],
                )
            align_s += (t2 - t1) + (time.perf_counter() - t3)
            model_s += t3 - t2
        t4 = time.perf_counter()
        for j, p in enumerate(prepared):
            results[p.image_index].append(self._face_result(p, *out_by_face[j]))
        self.timings.alignment = align_s + (time.perf_counter() - t4)
        self.timings.model = model_s
        return results

    def _prepare(self, image_index: int, rgb: np.ndarray, det: Detection) -> _PreparedFace:
        cfg = self.config
        h, w = rgb.shape[:2]
        whole = self.faces == "whole" and det.five_points is None and det.box == (0.0, 0.0, float(w), float(h))
        # A whole-image face without landmarks is a dataset-style crop: framed as it is, without a detector margin.
        margin = 0.0 if whole else cfg.face_margin
        aligned = align_face(rgb, det.box, det.five_points, size=cfg.input_size, margin=margin)
        # The aligned crop plays the part of a whole training image: the face box is the full crop, as in FERPlus.
        names, boxes, scheme = region_boxes(
            cfg.regions, (cfg.input_size, cfg.input_size), face_box=None, landmarks=aligned.landmarks
        )
        return _PreparedFace(image_index, det, aligned, names, scheme, boxes, (h, w))

    def _model_image(self, crop: np.ndarray) -> np.ndarray:
        """``(S, S, 3)`` RGB crop -> ``(S, S, C)`` uint8 in the model's colour mode."""
        return to_gray(crop)[..., None] if self.config.color_mode == "gray" else crop

    def _face_result(
        self,
        p: _PreparedFace,
        probs: np.ndarray,
        alpha: np.ndarray | None,
        beta: np.ndarray | None,
        region_crops: np.ndarray,
    ) -> FaceResult:
        src_boxes = p.aligned.boxes_to_source(p.boxes)
        k = len(p.names)
        regions = [
            RegionResult(
                name=p.names[i],
                box=tuple(float(v) for v in src_boxes[i]),
                alpha=float("nan") if alpha is None else float(alpha[i]),
                beta=float("nan") if beta is None else float(beta[i]),
            )
            for i in range(k if alpha is not None else 1)
        ]
        scheme = p.scheme if alpha is not None else "fixed"
        return FaceResult(
            box=p.detection.box,
            score=p.detection.score,
            landmarks=p.detection.landmarks,
            probabilities=probs.astype(np.float64),
            class_names=self.class_names,
            regions=regions,
            region_scheme=scheme,
            crop=self._model_image(p.aligned.crop),
            region_crops=region_crops if alpha is not None else region_crops[:1],
            pose=estimate_pose(p.detection.landmarks, p.image_size),
        )


def measure_latency(predictor: Predictor, images: Sequence[Any], repeats: int = 5, warmup: int = 1) -> Timings:
    """Mean seconds per face of each stage over ``repeats`` passes through ``images`` (one image per call).

    Images are read once beforehand, so file decoding is not counted. Every image should hold at least one face.
    """
    rgbs = [read_image(im) for im in images]
    for rgb in rgbs[:warmup]:
        predictor(rgb)
    total = Timings()
    for _ in range(repeats):
        for rgb in rgbs:
            predictor(rgb)
            t = predictor.timings
            total.detection += t.detection
            total.alignment += t.alignment
            total.model += t.model
            total.faces += t.faces
    n = max(total.faces, 1)
    return Timings(total.detection / n, total.alignment / n, total.model / n, total.faces)
