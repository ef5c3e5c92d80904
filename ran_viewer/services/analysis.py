"""Running RAN and the baseline on images, edited images and camera frames. No Qt here; the inference worker calls it.

Both models read the SAME faces: RAN's predictor detects them once, and the baseline re-reads those detections with
``predict_faces``, so "baseline vs RAN" compares the models and not two detector runs. After an occlusion edit both
re-read the original detections, so the face boxes stay put while the pixels under them change."""

from __future__ import annotations

from typing import Any

import numpy as np

from ran_core.structures import FaceResult
from ran_viewer.model.analysis import ModelsInfo, PredictorLike, model_display_name


def detections_from_faces(faces: list[FaceResult]) -> list[Any]:
    """The detections behind ``faces`` (box, score, landmarks), to re-read the same faces on an edited image."""
    try:
        from ran_core.faces import Detection
    except ImportError:  # pragma: no cover - ran_core.faces ships with ran_core
        Detection = None
    out = []
    for f in faces:
        if Detection is not None:
            out.append(Detection(f.box, f.score, f.landmarks))
        else:
            out.append(type("Detection", (), {"box": f.box, "score": f.score, "landmarks": f.landmarks})())
    return out


class Analyzer:
    """RAN and baseline predictors behind one call per request kind.

    Args:
        ran: the RAN predictor (detects faces), or ``None``.
        baseline: the baseline predictor (re-reads RAN's detections), or ``None``.
        detect_every: on camera frames, run the detector every N frames and follow the faces in between when the
            leading predictor is a :class:`ran_core.predictor.Predictor` (through :class:`ran_core.stream.
            StreamPredictor`); any other predictor runs in full on every frame.
    """

    def __init__(
        self, ran: PredictorLike | None = None, baseline: PredictorLike | None = None, detect_every: int = 10
    ) -> None:
        self.ran = ran
        self.baseline = baseline
        self.detect_every = max(1, int(detect_every))
        # The camera's detector: None uses the predictors'; "camera" the fastest that keeps recall (BlazeFace).
        self.camera_detector: str | None = None
        # The camera's model runtime: None (PyTorch) or "onnx" (ONNX Runtime on one thread: the live path of the
        # bundled RAN ran at 130 fps, p95 9.5 ms, against 94 fps, p95 12.6 ms with PyTorch, 2-core CPU).
        self.camera_backend: str | None = None
        # The camera's test-time augmentation: None keeps each model's saved one (the bundled pair: flip, 2 views a
        # face); "flip_shift" (10) costs 5x and on Valid lifts the bundled baseline, not the RAN; "none" (1) is
        # faster. Stills keep theirs.
        self.camera_tta: str | None = None
        self._camera_baseline: Any = None
        self._stream_lead: Any = None
        self._last_frame_faces: list[FaceResult] = []
        self._stream: Any = None
        try:
            from ran_core.faces import IoUTracker

            self._tracker: Any = IoUTracker()
        except ImportError:  # pragma: no cover - ran_core.faces ships with ran_core
            self._tracker = None

    @property
    def loaded(self) -> bool:
        """Whether any model is available."""
        return self.ran is not None or self.baseline is not None

    @classmethod
    def load(
        cls, ran: Any = "ran-ferplus", baseline: Any = "baseline-ferplus", detector: str = "auto", device: str = "cpu"
    ) -> tuple[Analyzer, ModelsInfo]:
        """Build predictors for the two models; a model that fails is left out and its error reported, never raised."""
        info = ModelsInfo()
        try:
            from ran_core.predictor import Predictor
        except ImportError as exc:
            info.errors.append(f"The face predictor is not available in this installation ({exc}).")
            return cls(), info
        ran_pred = base_pred = None
        shared_detector: Any = detector
        if ran:
            try:
                ran_pred = Predictor(ran, detector=detector, device=device)
                info.ran_name = model_display_name(ran)
                info.ran_mean = tuple(ran_pred.config.mean)
                shared_detector = ran_pred.detector  # one detector for both models (FAN/MTCNN load once)
            except Exception as exc:  # noqa: BLE001 - any failure is a message, the viewer keeps running
                info.errors.append(f"RAN model {model_display_name(ran)!r} could not be loaded: {exc}")
        if baseline:
            try:
                # The baseline re-reads RAN's faces; it detects only when RAN is not loaded.
                base_pred = Predictor(baseline, detector=shared_detector, device=device)
                info.baseline_name = model_display_name(baseline)
            except Exception as exc:  # noqa: BLE001
                info.errors.append(f"Baseline model {model_display_name(baseline)!r} could not be loaded: {exc}")
        lead = ran_pred or base_pred
        det = getattr(lead, "detector", None)
        info.detector = str(getattr(det, "name", "") or "")
        analyzer = cls(ran_pred, base_pred)
        if detector == "auto":  # the user left the choice to us: live frames get the fast detector
            analyzer.camera_detector = "camera"
        import importlib.util

        if all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnxscript", "onnx")):
            analyzer.camera_backend = "onnx"
        return analyzer, info

    def set_face_mode(self, mode: str) -> None:
        """``detect`` faces in still images, or read each image as one ``whole`` already-cropped face."""
        for pred in (self.ran, self.baseline):
            if getattr(pred, "faces", None) in ("detect", "whole"):  # a ran_core Predictor (stand-ins may differ)
                pred.faces = mode

    def set_camera_tta(self, tta: str | None) -> None:
        """Test-time augmentation for camera frames (``None``: each model's saved one); the next frame uses it."""
        from ran_core.config import check_tta

        check_tta(tta, "camera TTA")
        if tta != self.camera_tta:
            self.camera_tta = tta
            self.close_stream()

    def analyze(self, rgb: np.ndarray) -> tuple[list[FaceResult], list[FaceResult]]:
        """Detect faces and read them with both models."""
        if self.ran is not None:
            ran_faces = self.ran(rgb)
            return ran_faces, self._baseline_on(rgb, ran_faces)
        if self.baseline is not None:
            return [], self.baseline(rgb)
        return [], []

    def reanalyze(self, rgb: np.ndarray, faces: list[FaceResult]) -> tuple[list[FaceResult], list[FaceResult]]:
        """Read the same faces again on an edited image (the boxes and landmarks stay fixed)."""
        if not faces:
            return [], []
        dets = detections_from_faces(faces)
        ran_faces = self.ran.predict_faces(rgb, dets) if self.ran is not None else []
        base_faces = self.baseline.predict_faces(rgb, dets) if self.baseline is not None else []
        return ran_faces, base_faces

    def analyze_frame(self, rgb: np.ndarray, index: int) -> tuple[list[FaceResult], list[FaceResult]]:
        """One camera frame; faces keep their ``track_id`` from frame to frame.

        With a real Predictor the detector runs every ``detect_every`` frames and optical flow follows the faces in
        between (:class:`ran_core.stream.StreamPredictor`); the baseline re-reads the same faces. Other predictors
        run in full on every frame, and an IoU tracker carries the ids over.
        """
        lead = self.ran or self.baseline
        if lead is None:
            return [], []
        stream = self._stream_for(lead)
        if stream is not None:
            faces = stream(rgb)
            if self.ran is not None:
                return faces, self._baseline_on(rgb, faces, camera=True)
            return [], faces
        ran_faces, base_faces = self.analyze(rgb)
        lead_faces = ran_faces or base_faces
        if self._tracker is not None and lead_faces and all(f.track_id is None for f in lead_faces):
            ids = self._tracker.update([f.box for f in lead_faces])
            for f, tid in zip(lead_faces, ids):
                f.track_id = tid
            if ran_faces:
                for b, r in zip(base_faces, ran_faces):  # the baseline read RAN's detections, in order
                    b.track_id = r.track_id
        self._last_frame_faces = lead_faces
        return ran_faces, base_faces

    def _stream_for(self, lead: Any) -> Any:
        if self._stream is not None and self._stream_lead is lead:
            return self._stream
        self.close_stream()
        try:
            from ran_core.predictor import Predictor
            from ran_core.stream import StreamPredictor
        except ImportError:  # pragma: no cover - both ship with ran_core
            return None
        if isinstance(lead, Predictor):
            pred = lead
            if self.camera_backend == "onnx" and lead.backend == "torch":
                try:
                    pred = Predictor(lead.model, detector=lead.detector, backend="onnx", tta=lead.tta, onnx_threads=1)
                except Exception:  # noqa: BLE001 - no ONNX Runtime after all: PyTorch it is
                    pred = lead
            if self.camera_tta is not None:
                pred = pred.with_tta(self.camera_tta)
            try:
                self._stream = StreamPredictor(pred, detect_every=self.detect_every, detector=self.camera_detector)
            except Exception:  # noqa: BLE001 - the camera detector could not start: use the stills' detector
                self._stream = StreamPredictor(pred, detect_every=self.detect_every)
            self._stream_lead = lead
        return self._stream

    def close_stream(self) -> None:
        """End the camera session's stream: stops its background detection thread (it is made again on the next
        frame). Call it from the thread that analyses frames, when the camera stops or this analyzer is replaced."""
        stream, self._stream, self._stream_lead = self._stream, None, None
        self._camera_baseline = None
        close = getattr(stream, "close", None)
        if callable(close):
            close()

    def reset_tracking(self) -> None:
        """Forget the faces of earlier frames (a new camera session)."""
        self._last_frame_faces = []
        if self._tracker is not None:
            self._tracker.reset()
        if self._stream is not None:
            self._stream.reset()

    def _camera_baseline_predictor(self) -> Any:
        """The baseline for camera frames: with the camera's TTA when one is set (made once a stream)."""
        if self.camera_tta is None or not hasattr(self.baseline, "with_tta"):
            return self.baseline
        if self._camera_baseline is None:
            self._camera_baseline = self.baseline.with_tta(self.camera_tta)
        return self._camera_baseline

    def _baseline_on(self, rgb: np.ndarray, ran_faces: list[FaceResult], camera: bool = False) -> list[FaceResult]:
        if self.baseline is None or not ran_faces:
            return []
        baseline = self._camera_baseline_predictor() if camera else self.baseline
        base = baseline.predict_faces(rgb, detections_from_faces(ran_faces))
        for b, r in zip(base, ran_faces):
            b.track_id = r.track_id
        return base
