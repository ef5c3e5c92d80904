"""Helpers for the viewer tests: a fake predictor, faces with known weights, a test image. No Qt import here."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ran_core.regions import RegionConfig, region_boxes
from ran_core.structures import FERPLUS_CLASSES, FaceResult, RegionResult
from ran_viewer.model.analysis import Analysis
from ran_viewer.model.controller import ViewerController
from ran_viewer.model.viewer_state import ViewerState

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


@dataclass
class FakeDetection:
    box: tuple[float, float, float, float]
    score: float = 0.99
    landmarks: np.ndarray | None = None


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class FakePredictor:
    """Duck-typed stand-in for ``ran_core.predictor.Predictor``.

    It finds one face in the middle of the image. RAN's region weights follow each region's brightness (so occluding
    a region changes them) and its probabilities the face's brightness; the baseline reads the same numbers in reverse,
    so the two models disagree. With ``gate`` (a ``threading.Event``) every call waits until the test sets it, so a
    test decides how long the model is busy.
    """

    def __init__(self, arch: str = "ran", gate: threading.Event | None = None, faces: int = 1) -> None:
        self.arch = arch
        self.gate = gate
        self.faces = faces
        self.calls = 0
        self.lock = threading.Lock()
        self.seen: list[float] = []  # mean brightness of every image analysed

    def detect(self, image: np.ndarray) -> list[FakeDetection]:
        h, w = image.shape[:2]
        out = []
        for i in range(self.faces):
            x0 = w * (i + 0.2) / self.faces
            bw = 0.6 * w / self.faces
            box = (x0, 0.2 * h, x0 + bw, 0.2 * h + min(bw * 1.1, 0.75 * h))
            bx = np.array(box)
            fw, fh = bx[2] - bx[0], bx[3] - bx[1]
            lm = (
                np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]], dtype=float) * [fw, fh]
                + bx[:2]
            )
            out.append(FakeDetection(box, 0.99, lm))
        return out

    def __call__(self, image: np.ndarray) -> list[FaceResult]:
        return self.predict_faces(image, self.detect(image))

    def predict_faces(self, rgb: np.ndarray, detections: list) -> list[FaceResult]:
        with self.lock:
            self.calls += 1
            self.seen.append(float(rgb.mean()))
        if self.gate is not None:
            assert self.gate.wait(10), "the test never released the fake model"
        h, w = rgb.shape[:2]
        gray = rgb.mean(axis=2)
        out = []
        for det in detections:
            cfg = RegionConfig() if self.arch == "ran" else RegionConfig.whole_face()
            names, boxes, scheme = region_boxes(cfg, (h, w), det.box)
            means, crops = [], []
            for b in boxes:
                x1, y1 = max(0, int(b[0])), max(0, int(b[1]))
                x2, y2 = min(w, max(x1 + 1, int(b[2]))), min(h, max(y1 + 1, int(b[3])))
                patch = gray[y1:y2, x1:x2]
                means.append(float(patch.mean()))
                crops.append(cv2.resize(patch.astype(np.uint8), (24, 24), interpolation=cv2.INTER_AREA)[..., None])
            m = np.array(means)
            logits = np.linspace(-1, 1, len(FERPLUS_CLASSES)) * (m[0] / 64.0 - 1.0) * 3
            if self.arch != "ran":
                logits = logits[::-1]
            if self.arch == "ran":
                alpha = _softmax(m / 40.0)
                beta = _softmax(-np.abs(m - m.mean()) / 40.0)
            else:
                alpha = beta = np.full(len(m), np.nan)
            regions = [
                RegionResult(n, tuple(float(v) for v in b), float(a), float(bb))
                for n, b, a, bb in zip(names, boxes, alpha, beta)
            ]
            out.append(
                FaceResult(
                    box=tuple(det.box),
                    score=det.score,
                    landmarks=det.landmarks,
                    probabilities=_softmax(logits),
                    class_names=list(FERPLUS_CLASSES),
                    regions=regions,
                    region_scheme=scheme,
                    crop=crops[0],
                    region_crops=np.stack(crops),
                )
            )
        return out


def make_face(
    box: tuple[float, float, float, float],
    alphas: list[float],
    betas: list[float] | None = None,
    probabilities: list[float] | None = None,
    image_shape: tuple[int, int] = (400, 400),
) -> FaceResult:
    """A RAN face with the paper's fixed regions and the given weights (``betas`` default to equal)."""
    names, boxes, _ = region_boxes(RegionConfig(), image_shape, box)
    betas = betas if betas is not None else [1.0 / len(names)] * len(names)
    probs = np.asarray(probabilities if probabilities is not None else _softmax(np.arange(8.0)), dtype=float)
    regions = [RegionResult(n, tuple(float(v) for v in b), a, bb) for n, b, a, bb in zip(names, boxes, alphas, betas)]
    crops = np.stack([np.full((24, 24, 1), 40 * k, np.uint8) for k in range(len(names))])
    return FaceResult(
        box=tuple(float(v) for v in box),
        score=0.99,
        landmarks=np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]])
        * [box[2] - box[0], box[3] - box[1]]
        + [box[0], box[1]],
        probabilities=probs,
        class_names=list(FERPLUS_CLASSES),
        regions=regions,
        crop=crops[0],
        region_crops=crops,
    )


def face_image(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    """A synthetic RGB test image: noise background with a bright ellipse 'face' in the middle."""
    rng = np.random.default_rng(seed)
    img = rng.integers(30, 90, size=(h, w, 3), dtype=np.uint8)
    cv2.ellipse(img, (w // 2, h // 2), (w // 5, h // 3), 0, 0, 360, (200, 170, 150), -1)
    return img


def event_counter(state: Any) -> dict[str, int]:
    """How often each of ``state.events`` fired from now on (a dict that fills as they fire)."""
    counts: dict[str, int] = {}
    for name in vars(state.events):
        getattr(state.events, name).connect(lambda *a, n=name: counts.__setitem__(n, counts.get(n, 0) + 1))
    return counts


# --- the controller without workers ---------------------------------------------------------------------------------


class FakeEngine:
    """Records what the controller asks for; request ids count up like the inference worker's."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.seq = -1

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def submit_image(self, source: Any, name: str = "", path: str | None = None) -> int:
        self.calls.append(("image", name, path))
        return self._next()

    def submit_occlusion(self, image, occluders, faces, image_seq) -> int:
        self.calls.append(("occlusion", len(occluders), [f.box for f in faces], image_seq))
        return self._next()

    def set_frame_occluders(self, occluders) -> None:
        self.calls.append(("frame_occluders", len(occluders)))

    def reset_frame_stats(self) -> None:
        self.calls.append(("reset",))

    def end_frames(self) -> None:
        self.calls.append(("end_frames",))

    def set_face_mode(self, mode: str) -> None:
        self.calls.append(("face_mode", mode))

    def set_camera_tta(self, tta) -> None:
        self.calls.append(("camera_tta", tta))

    def load_models(self, ran, baseline, detector="auto", device="cpu") -> None:
        self.calls.append(("load", ran, baseline, detector))

    def kinds(self) -> list[str]:
        return [c[0] for c in self.calls]


class FakeCamera:
    def __init__(self, spec) -> None:
        self.spec, self.stopped, self.paused = spec, 0, None
        self.seeks: list[int] = []

    def stop(self) -> None:
        self.stopped += 1

    def set_paused(self, paused: bool) -> None:
        self.paused = paused

    def seek(self, frame: int) -> bool:
        self.seeks.append(frame)
        return True


def make_controller(camera: bool = True) -> tuple[ViewerController, ViewerState, FakeEngine, list[FakeCamera]]:
    state, engine, cams = ViewerState(), FakeEngine(), []

    def session(spec):
        cams.append(FakeCamera(spec))
        return cams[-1]

    return ViewerController(state, engine, session if camera else None), state, engine, cams


def analysis(kind: str, seq: int, image_seq: int, faces: list, image=None, **kw) -> Analysis:
    img = face_image() if image is None else image
    return Analysis(kind=kind, seq=seq, image_seq=image_seq, image=img, ran_faces=faces, name="x.png", **kw)


def tracked(face, track_id: int):
    face.track_id = track_id
    return face


def messages(state: ViewerState) -> list[tuple[str, str]]:
    got: list[tuple[str, str]] = []
    state.events.message.connect(lambda text, level: got.append((text, level)))
    return got
