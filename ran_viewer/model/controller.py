"""The viewer's application logic, without Qt: what to analyse next, which results still apply, the camera session.

:class:`ViewerController` sits between the :class:`~ran_viewer.model.viewer_state.ViewerState` (what is shown) and
an analysis engine (the inference worker in the app, a plain object in tests). User actions become requests to the
engine; results come back through the ``on_*`` methods and are written into the state only if they still apply:

- **Request ids.** Every still-image request gets an id from the engine; a result (or error) of an older image is
  dropped, and so is an occlusion result older than one already shown (``seq <= applied``).
- **Occlusion re-runs.** A change of the occluders re-reads the SAME faces on the edited image (boxes stay put);
  clearing them restores the known clean reading without running the models again. While the camera runs, the
  occluders are handed to the engine and burned into every frame.
- **The camera session.** Starting, pausing and stopping, frames applied only while the camera runs, statistics.

The controller never imports Qt or the workers: the engine is anything with the :class:`AnalysisEngine` methods, and
the camera thread is made by the ``camera_session`` callable it is given (the window passes one that starts a
``CameraWorker``). Tests drive it with plain pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ran_viewer.model.analysis import Analysis, ModelsInfo
from ran_viewer.model.events import Event
from ran_viewer.model.occluders import MID_GREY, Occluder, mean_color
from ran_viewer.model.viewer_state import CAMERA_TTA_CHOICES, ViewerState, expand_paths


class AnalysisEngine(Protocol):
    """What the controller asks of the inference worker (thread-safe calls that return at once)."""

    def submit_image(self, source: Any, name: str = "", path: str | None = None) -> int: ...

    def submit_occlusion(
        self, image: np.ndarray, occluders: list[Occluder], faces: list[Any], image_seq: int
    ) -> int: ...

    def set_frame_occluders(self, occluders: list[Occluder]) -> None: ...

    def reset_frame_stats(self) -> None: ...

    def end_frames(self) -> None: ...

    def set_face_mode(self, mode: str) -> None: ...

    def set_camera_tta(self, tta: str | None) -> None: ...

    def load_models(self, ran: Any, baseline: Any, detector: str = "auto", device: str = "cpu") -> None: ...


class CameraSession(Protocol):
    """A running camera thread, as the controller sees it."""

    def stop(self) -> None:
        """Stop the thread and wait for it (idempotent)."""

    def set_paused(self, paused: bool) -> None: ...

    def seek(self, frame: int) -> bool:
        """Ask a video file for ``frame`` (thread-safe); ``False`` when the source cannot seek."""


class ControllerEvents:
    """What the window shows beyond the state. Each fires after the change."""

    def __init__(self) -> None:
        self.image_result = Event("image_result")  # (analysis) a new still image's faces are shown
        self.timing = Event("timing")  # (seconds) of the analysis just shown
        self.models_pending = Event("models_pending")  # (bool) models are being loaded
        self.problem = Event("problem")  # (title, text) worth a dialog: the app keeps running
        self.camera_session = Event("camera_session")  # () a camera session started or ended


def camera_name(spec: int | str) -> str:
    """``camera 0`` for a camera index, the file name for a video."""
    return f"camera {spec}" if isinstance(spec, int) or str(spec).isdigit() else Path(str(spec)).name


class ViewerController:
    """Requests, stale-result filtering, occlusion re-runs and the camera session of one viewer.

    Args:
        state: the state to show results in.
        engine: runs the analyses (:class:`AnalysisEngine`).
        camera_session: ``spec -> CameraSession`` starts a camera thread for a camera index or video path, feeding
            its frames to the engine; ``None`` when this viewer has no camera.
    """

    def __init__(
        self,
        state: ViewerState,
        engine: AnalysisEngine,
        camera_session: Callable[[int | str], CameraSession] | None = None,
    ) -> None:
        self.state = state
        self.engine = engine
        self.events = ControllerEvents()
        self._camera_session_factory = camera_session
        self.camera: CameraSession | None = None
        self.image_seq = -1  # the id of the still-image request whose results are wanted
        self.applied_seq = -1  # the newest request whose result is shown
        self._occlusion_seq = -1  # the newest occlusion re-read asked for (-1: none since the clean reading)
        self.models: tuple[Any, Any, str] | None = None
        self.models_pending = False
        self.detector_name = ""
        # what "cover regions by weight" fills with: RAN's normalisation mean as RGB, like ran_core's deletion curves
        self.cover_color: tuple[int, int, int] = MID_GREY
        state.events.sources.connect(self._on_sources)
        state.events.occluders.connect(self._on_occluders)

    # --- opening images --------------------------------------------------------------------------------------------

    def open_paths(self, paths: list[str | Path]) -> int:
        """Browse these files and folders; returns how many images were found (problems become messages)."""
        images, problems = expand_paths(paths)
        for p in problems:
            self.state.notify(p, "warning")
        if not images:
            if not problems:
                self.state.notify("Nothing to open.", "warning")
            return 0
        self.stop_camera()
        self.state.set_sources(images, 0)  # its event loads the first image
        return len(images)

    def open_array(self, rgb: np.ndarray, name: str) -> None:
        """Analyse an in-memory image (clipboard, dropped image data)."""
        self.stop_camera()
        self.image_seq = self.engine.submit_image(rgb, name)
        self.state.notify(f"Analysing {name}…")

    def next_image(self) -> None:
        """Show the next image of the list."""
        if not self.state.next_source() and self.state.sources:
            self.state.notify("Last image.")

    def previous_image(self) -> None:
        """Show the previous image of the list."""
        if not self.state.previous_source() and self.state.sources:
            self.state.notify("First image.")

    def _on_sources(self) -> None:
        self.load_current()

    def load_current(self) -> None:
        """Analyse the current source of the list."""
        path = self.state.current_source
        if path is None:
            return
        self.stop_camera()
        name = Path(path).name
        self.image_seq = self.engine.submit_image(path, name, path)
        n, i = len(self.state.sources), self.state.source_index
        self.state.notify(f"Analysing {name}" + (f" ({i + 1}/{n})" if n > 1 else "") + "…")

    def reanalyse_current(self) -> None:
        """Read the shown still image again (new models, another face mode); nothing while the camera runs."""
        state = self.state
        if state.image is not None and not state.camera.running:
            if state.image_path:
                self.load_current()
            else:
                self.image_seq = self.engine.submit_image(state.image, state.image_name)

    # --- models ----------------------------------------------------------------------------------------------------

    def load_models(self, ran: Any, baseline: Any, detector: str = "auto") -> None:
        """Load models on the engine; the current image is read again when they are ready."""
        self.models = (ran, baseline, detector)
        self._set_models_pending(True)
        self.engine.load_models(ran, baseline, detector)

    def on_models_loaded(self, info: ModelsInfo) -> None:
        """The engine loaded (some of) the models: names, errors, and the current image read again."""
        self.detector_name = info.detector
        self.cover_color = mean_color(info.ran_mean)
        self._set_models_pending(False)
        self.state.set_model_names(info.ran_name, info.baseline_name)
        for err in info.errors:
            self.state.notify(err, "error")
        if info.errors:
            self.events.problem.emit(
                "Models",
                "\n\n".join(info.errors)
                + "\n\nThe viewer keeps running; load a model with Models ▸ Load RAN model… / Load baseline model….",
            )
        self.reanalyse_current()

    def _set_models_pending(self, pending: bool) -> None:
        self.models_pending = pending
        self.events.models_pending.emit(pending)

    def set_camera_tta(self, tta: str | None) -> None:
        """Test-time augmentation of camera frames (``None``: each model's saved one); applies from the next frame."""
        if tta not in CAMERA_TTA_CHOICES:
            raise ValueError(f"camera TTA must be one of {', '.join(map(str, CAMERA_TTA_CHOICES))}, got {tta!r}")
        self.engine.set_camera_tta(tta)
        if tta != self.state.camera.tta:
            self.state.camera.tta = tta
            self.state.events.camera.emit()

    def set_whole_faces(self, whole: bool) -> None:
        """Read still images as single cropped faces (True) or detect faces in them (False); re-reads the image."""
        self.engine.set_face_mode("whole" if whole else "detect")
        self.reanalyse_current()

    # --- results ---------------------------------------------------------------------------------------------------

    def on_image_loaded(self, seq: int, rgb: np.ndarray, name: str, path: str | None) -> None:
        """The engine decoded a still image (its faces follow): show it if it is still the wanted one."""
        if seq != self.image_seq:
            return  # the user moved on
        self.state.set_image(rgb, name, path or None)

    def on_result(self, a: Analysis) -> bool:
        """Apply an analysis if it still applies; returns whether it was shown."""
        state = self.state
        if a.kind == "frame":
            if not state.camera.running:
                return False  # a frame analysed after the camera stopped
            self.applied_seq = max(self.applied_seq, a.seq)
            clean = a.clean_image if a.clean_image is not None else a.image
            analysed = a.image if a.occluded else None
            state.set_frame(
                clean, a.ran_faces, a.baseline_faces, name=state.camera.name, analysed=analysed, time_s=a.frame_time
            )
        else:
            if a.image_seq != self.image_seq or a.seq <= self.applied_seq:
                return False  # a stale result: another image or a newer edit is already shown
            if a.kind == "occlusion" and a.occluded and not state.occluders:
                return False  # occluders were cleared meanwhile: the clean result is coming
            self.applied_seq = a.seq  # before the state's events, so their listeners see reading_is_current
            state.set_predictions(a.ran_faces, a.baseline_faces)
        self.events.timing.emit(a.seconds)
        if a.kind == "image":
            self._report_faces(a)
            self.events.image_result.emit(a)
        return True

    def _report_faces(self, a: Analysis) -> None:
        faces = a.ran_faces or a.baseline_faces
        name = a.name or "image"
        if not a.models_loaded:
            self.state.notify(f"{name}: no model loaded — load one from the Models menu.", "warning")
        elif not faces:
            self.state.notify(f"{name}: no face found.", "warning")
        else:
            n = len(faces)
            disagree = len(self.state.disagreements())
            msg = f"{name}: {n} face{'s' if n > 1 else ''}"
            if disagree:
                msg += f", RAN and the baseline disagree on {disagree}"
            self.state.notify(msg + f" ({a.seconds * 1000:.0f} ms).")

    def on_error(self, seq: int, message: str) -> None:
        """A request failed: say so; a failed current image is cleared, not left half-shown."""
        if seq == self.image_seq:
            self.state.clear_image()
        self.state.notify(message, "error")

    # --- occlusion -------------------------------------------------------------------------------------------------

    @property
    def reading_is_current(self) -> bool:
        """Whether the predictions shown are the models' reading of the occluders shown: no re-read of a newer edit
        is still on its way (while the user drags, the results of earlier positions arrive first)."""
        return self.applied_seq >= self._occlusion_seq

    def _on_occluders(self) -> None:
        state = self.state
        if state.camera.running:
            self.engine.set_frame_occluders(state.occluders)
            return
        if state.image is None:
            return
        faces = state.clean_ran_faces or state.clean_baseline_faces
        if not faces and not state.occluders and (state.ran_faces or state.baseline_faces):
            # A camera frame last read with occluders has no clean reading yet: read the same faces on the clean frame.
            self._occlusion_seq = self.engine.submit_occlusion(
                state.image, [], state.ran_faces or state.baseline_faces, self.image_seq
            )
            return
        if not faces:
            if state.occluders and state.analysed:
                state.notify(
                    "No face to re-read: the occluders are drawn, but the models found no face here.", "warning"
                )
            return
        if state.occluders:
            self._occlusion_seq = self.engine.submit_occlusion(state.image, state.occluders, faces, self.image_seq)
        else:  # back to the clean image: its results are known, no need to run the models again
            self._occlusion_seq = -1
            state.set_predictions(state.clean_ran_faces, state.clean_baseline_faces)

    # --- camera ----------------------------------------------------------------------------------------------------

    def start_camera(self, source: int | str | None = None) -> None:
        """Start live analysis from a camera index or a video file (default: the state's camera source)."""
        if self._camera_session_factory is None:
            self.state.notify("This viewer has no camera.", "warning")
            return
        self.stop_camera()
        spec = self.state.camera.source if source is None else source
        name = camera_name(spec)
        self.state.set_camera(
            source=spec,
            name=name,
            running=True,
            paused=False,
            capture_fps=0.0,
            analysed_fps=0.0,
            dropped=0,
            source_fps=0.0,
            frame_count=0,
            seekable=False,
        )
        self.state.clear_occluders()
        self.engine.reset_frame_stats()
        self.engine.set_frame_occluders([])
        self.camera = self._camera_session_factory(spec)
        self.events.camera_session.emit()
        self.state.notify(f"Starting {name}…")

    def stop_camera(self) -> None:
        """Stop live analysis (stops and waits for the camera thread); the last frame stays shown."""
        if self.camera is None and not self.state.camera.running:
            return
        camera, self.camera = self.camera, None
        if camera is not None:
            camera.stop()
        self.engine.end_frames()  # the frame stream's detection thread is not needed until the next session
        if self.state.camera.running:
            self.state.set_camera(running=False, paused=False)
        self.events.camera_session.emit()

    def toggle_camera(self) -> None:
        """Start or stop the camera."""
        if self.state.camera.running:
            self.stop_camera()
        else:
            self.start_camera()

    def toggle_pause(self) -> bool:
        """Pause or resume the camera; returns whether it is paused now (False when no camera runs)."""
        if not self.state.camera.running or self.camera is None:
            return False
        paused = not self.state.camera.paused
        self.camera.set_paused(paused)
        self.state.set_camera(paused=paused)
        self.state.notify("Camera paused (Space resumes)." if paused else "Camera resumed.")
        return paused

    def on_camera_opened(self, name: str) -> None:
        self.state.notify(f"{name}: live. Space pauses, Ctrl+Shift+S saves a snapshot.")

    def on_camera_source(self, fps: float, frame_count: int, seekable: bool) -> None:
        """The camera thread says what its source is: a video file's frame rate and length, and whether it seeks."""
        self.state.set_camera(source_fps=float(fps), frame_count=int(frame_count), seekable=bool(seekable))

    def seek_camera(self, time_s: float) -> bool:
        """Jump the playing (or paused) video file to the frame at ``time_s`` seconds; a live camera cannot (says so).
        Returns whether a seek was asked for."""
        cam = self.state.camera
        if self.camera is None or not cam.running:
            return False
        if not cam.seekable or cam.source_fps <= 0:
            self.state.notify(f"{cam.name} is live: it cannot go back in time.")
            return False
        frame = max(0, round(float(time_s) * cam.source_fps))
        if cam.frame_count:
            frame = min(frame, cam.frame_count - 1)
        if not self.camera.seek(frame):
            return False
        self.state.notify(f"{cam.name}: to frame {frame} ({frame / cam.source_fps:.2f} s).")
        return True

    def on_camera_error(self, message: str) -> None:
        self.stop_camera()
        self.state.notify(message, "error")
        self.events.problem.emit("Camera", message + "\n\nThe viewer keeps running; you can still open images.")

    def on_camera_ended(self) -> None:
        self.stop_camera()
        self.state.notify("The video ended.")

    def on_camera_stats(self, fps: float) -> None:
        self.state.set_camera(capture_fps=fps)

    def on_inference_stats(self, fps: float, dropped: int) -> None:
        self.state.set_camera(analysed_fps=fps, dropped=dropped)
