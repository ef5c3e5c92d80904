"""The viewer's state: plain Python with change events and no Qt import (napari ``components`` / glue ``state``).

Widgets take a :class:`ViewerState` in ``__init__`` and connect to ``state.events.<name>``; tests drive the state
directly. Mutate the state from the GUI thread only: workers hand their results to the GUI through Qt signals and the
GUI's slots write them here (through :class:`~ran_viewer.model.controller.ViewerController`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ran_core.faces.detectors import box_iou as _box_iou
from ran_core.imageio import IMAGE_EXTENSIONS
from ran_core.structures import FaceResult
from ran_viewer.model.events import Event
from ran_viewer.model.occluders import FILLS, TOOLS, Occluder, apply_occluders
from ran_viewer.model.weights import WEIGHT_MODES, region_values, weight_levels


class ViewerEvents:
    """The events of a :class:`ViewerState`. Each fires after the change, with the arguments given below."""

    def __init__(self) -> None:
        self.image = Event("image")  # () new pixels; ``predictions`` follows (faces, occluders, selection reset)
        self.predictions = Event("predictions")  # () new RAN/baseline faces
        self.selection = Event("selection")  # () selected face or region changed
        self.weight_mode = Event("weight_mode")  # (mode)
        self.occluders = Event("occluders")  # () occluder list changed; display_image changed
        self.occlusion_tool = Event("occlusion_tool")  # () tool, fill or brush radius changed
        self.sources = Event("sources")  # () source list or index changed
        self.display = Event("display")  # () landmarks / compare toggles
        self.models = Event("models")  # () model names changed
        self.camera = Event("camera")  # () camera running/paused/stats changed
        self.busy = Event("busy")  # (bool)
        self.message = Event("message")  # (text, level) for the status bar; level in info|warning|error


# Camera TTA choices as the Camera menu names them: more views read a face better and cost frames per second.
CAMERA_TTA_CHOICES: dict[str | None, str] = {
    None: "As saved with the models",
    "flip_shift": "Flip + shifts (10 views)",
    "flip": "Flip (2 views)",
    "none": "None (1 view, fastest)",
}


@dataclass
class CameraSettings:
    """Camera choice and live statistics.

    Attributes:
        source: camera index (``0`` is the default webcam) or a video file path.
        name: shown in titles and messages (``camera 0``, the video's file name).
        running: capture is running.
        paused: capture is running but paused.
        detect_every: run the face detector every N frames and track in between (when the predictor can track).
        capture_fps: frames per second read from the camera.
        analysed_fps: frames per second analysed by the models.
        dropped: frames dropped because a newer one arrived before the models were free.
        source_fps: a video file's own frame rate (0 for a live camera): frame ``round(t * source_fps)`` is at ``t``.
        frame_count: a video file's length in frames (0 when unknown or live).
        seekable: the source can jump to another frame (a video file; a live camera cannot).
        tta: test-time augmentation of camera frames, one of :data:`CAMERA_TTA_CHOICES`'s keys (``None``: each
            model's saved one; stills always use the saved one).
    """

    source: int | str = 0
    name: str = "camera"
    running: bool = False
    paused: bool = False
    detect_every: int = 10
    capture_fps: float = 0.0
    analysed_fps: float = 0.0
    dropped: int = 0
    source_fps: float = 0.0
    frame_count: int = 0
    seekable: bool = False
    tta: str | None = None


class ViewerState:
    """Everything the viewer shows: image, faces and predictions, selection, weight mode, occluders, sources, camera.

    Attributes:
        image: the current image (H, W, 3 uint8 RGB) without occluders, or ``None``.
        image_name: a short name for titles (file name, ``clipboard``, ``camera``).
        ran_faces: RAN's faces on the displayed image (with regions and attention weights).
        baseline_faces: the baseline's faces (same detections as RAN when both models run).
        clean_ran_faces, clean_baseline_faces: the latest results without occluders, to compare against.
        ran_model_name, baseline_model_name: shown in titles; empty when that model is not loaded.
        frame_time: the shown camera frame's time in seconds (in the video file, or since the camera opened);
            ``None`` for still images.
    """

    def __init__(self) -> None:
        self.events = ViewerEvents()
        self.image: np.ndarray | None = None
        self.image_name: str = ""
        self.image_path: str | None = None
        self.frame_time: float | None = None
        self.ran_faces: list[FaceResult] = []
        self.baseline_faces: list[FaceResult] = []
        self.clean_ran_faces: list[FaceResult] = []
        self.clean_baseline_faces: list[FaceResult] = []
        self.analysed: bool = False
        self.selected_face: int | None = None
        self.selected_region: int | None = None
        self._weight_mode = "alpha*beta"
        self.occluders: list[Occluder] = []
        self._display_image: np.ndarray | None = None
        self._occlusion_tool = "none"
        self._occluder_fill = "black"
        self._brush_radius = 12
        self.sources: list[str] = []
        self.source_index: int = -1
        self._show_landmarks = False
        self._compare = True
        self.ran_model_name = ""
        self.baseline_model_name = ""
        self.camera = CameraSettings()

    # --- messages -------------------------------------------------------------------------------------------------

    def notify(self, text: str, level: str = "info") -> None:
        """Send a status message to whoever listens (the status bar)."""
        self.events.message.emit(text, level)

    # --- image and predictions -------------------------------------------------------------------------------------

    def set_image(self, image: np.ndarray, name: str = "", path: str | None = None) -> None:
        """Show a new image: clears faces, occluders and selection."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        self.image = image
        self.image_name = name
        self.image_path = path
        self.frame_time = None
        self.ran_faces, self.baseline_faces = [], []
        self.clean_ran_faces, self.clean_baseline_faces = [], []
        self.analysed = False
        self.occluders = []
        self._display_image = None
        self.selected_face = self.selected_region = None
        self.events.image.emit()
        self.events.predictions.emit()  # the faces were cleared

    def set_frame(
        self,
        frame: np.ndarray,
        ran_faces: list[FaceResult],
        baseline_faces: list[FaceResult],
        name: str = "camera",
        analysed: np.ndarray | None = None,
        time_s: float | None = None,
    ) -> None:
        """Show one analysed camera frame: image and predictions at once, keeping occluders, and keeping the selected
        face selected while its ``track_id`` is still in view.

        Args:
            frame: the camera frame WITHOUT occluders (``image``'s contract), so clearing them later shows it clean.
            ran_faces, baseline_faces: the models' reading of ``analysed``.
            name: shown as the image name.
            analysed: the frame the models read, occluders burned in by the worker (None: ``frame`` itself). When
                it had occluders, the frame's clean reading is unknown, so no stale one is kept to restore.
            time_s: when the frame was taken (:attr:`frame_time`).
        """
        selected = self.selected_face_result
        track = None if selected is None else selected.track_id
        self.image = frame
        self.image_name = name
        self.image_path = None
        self.frame_time = time_s
        self._display_image = frame if analysed is None else analysed
        if analysed is not None and analysed is not frame:
            self.clean_ran_faces, self.clean_baseline_faces = [], []
        self.events.image.emit()
        if track is not None:
            lead = ran_faces or baseline_faces
            match = next((i for i, f in enumerate(lead) if f.track_id == track), None)
            if match is not None:
                self.selected_face = match
        self.set_predictions(ran_faces, baseline_faces)

    def clear_image(self) -> None:
        """Show nothing."""
        self.image = None
        self.image_name = ""
        self.image_path = None
        self.frame_time = None
        self.ran_faces, self.baseline_faces = [], []
        self.clean_ran_faces, self.clean_baseline_faces = [], []
        self.analysed = False
        self.occluders = []
        self._display_image = None
        self.selected_face = self.selected_region = None
        self.events.image.emit()
        self.events.predictions.emit()  # the faces were cleared

    def set_predictions(self, ran_faces: list[FaceResult], baseline_faces: list[FaceResult]) -> None:
        """New model results for the displayed image; keeps the selection when it is still valid."""
        self.ran_faces = list(ran_faces)
        self.baseline_faces = list(baseline_faces)
        if not self.occluders:
            self.clean_ran_faces, self.clean_baseline_faces = self.ran_faces, self.baseline_faces
        self.analysed = True
        n = len(self.faces)
        if n == 0:
            self.selected_face = self.selected_region = None
        elif self.selected_face is None or self.selected_face >= n:
            self.selected_face = 0
            self.selected_region = None
        if self.selected_region is not None:
            face = self.selected_face_result
            if face is None or self.selected_region >= len(face.regions):
                self.selected_region = None
        self.events.predictions.emit()

    @property
    def faces(self) -> list[FaceResult]:
        """The faces that drive selection and the face boxes: RAN's, or the baseline's when RAN is not loaded."""
        return self.ran_faces if self.ran_faces else self.baseline_faces

    @property
    def selected_face_result(self) -> FaceResult | None:
        """The selected face, or ``None``."""
        if self.selected_face is None or self.selected_face >= len(self.faces):
            return None
        return self.faces[self.selected_face]

    def baseline_for(self, index: int) -> FaceResult | None:
        """The baseline's reading of RAN's face ``index`` (same detections: same index; else best IoU > 0.5)."""
        if not self.ran_faces:
            return self.baseline_faces[index] if index < len(self.baseline_faces) else None
        if index >= len(self.ran_faces):
            return None
        return match_face(self.ran_faces[index], self.baseline_faces, hint=index)

    def disagreements(self) -> list[int]:
        """Indices of the faces where RAN and the baseline predict different expressions."""
        out = []
        for i, face in enumerate(self.ran_faces):
            other = self.baseline_for(i)
            if other is not None and other.label != face.label:
                out.append(i)
        return out

    def face_near(self, x: float, y: float) -> FaceResult | None:
        """The face whose box contains ``(x, y)`` (the smallest one), else the face with the nearest centre."""
        faces = self.faces
        if not faces:
            return None
        inside = [f for f in faces if f.box[0] <= x <= f.box[2] and f.box[1] <= y <= f.box[3]]
        if inside:
            return min(inside, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        return min(faces, key=lambda f: math.hypot((f.box[0] + f.box[2]) / 2 - x, (f.box[1] + f.box[3]) / 2 - y))

    # --- selection -------------------------------------------------------------------------------------------------

    def select(self, face: int | None, region: int | None = None) -> None:
        """Select a face (and one of its regions); out-of-range indices select nothing."""
        if face is not None and not 0 <= face < len(self.faces):
            face, region = None, None
        if region is not None:
            f = self.faces[face] if face is not None else None
            if f is None or not 0 <= region < len(f.regions):
                region = None
        if (face, region) == (self.selected_face, self.selected_region):
            return
        self.selected_face, self.selected_region = face, region
        self.events.selection.emit()

    def select_region(self, region: int | None) -> None:
        """Select a region of the selected face."""
        self.select(self.selected_face, region)

    # --- region weights --------------------------------------------------------------------------------------------

    @property
    def weight_mode(self) -> str:
        """Which weight colours the region boxes: ``alpha``, ``beta`` or ``alpha*beta`` (normalised share)."""
        return self._weight_mode

    @weight_mode.setter
    def weight_mode(self, mode: str) -> None:
        if mode not in WEIGHT_MODES:
            raise ValueError(f"unknown weight mode {mode!r}; choose one of {', '.join(WEIGHT_MODES)}")
        if mode != self._weight_mode:
            self._weight_mode = mode
            self.events.weight_mode.emit(mode)

    def region_values(self, face: FaceResult) -> np.ndarray:
        """``(K,)`` the weight of each region of ``face`` in the current mode (NaN for the baseline)."""
        return region_values(face, self._weight_mode)

    def weight_levels(self) -> tuple[float, float]:
        """``(low, high)`` of the colour scale: the range of the current weights over every RAN face.

        A per-image range (like an image's auto-levels) because softmax weights over K regions sit close to 1/K; a
        fixed 0..1 scale would paint every box the same colour. It is never narrower than a quarter of the mean weight
        (see :func:`weight_levels`). The colour bar shows the numbers.
        """
        values = [self.region_values(f) for f in self.ran_faces if f.regions]
        return weight_levels(np.concatenate(values) if values else np.array([]))

    # --- occlusion -------------------------------------------------------------------------------------------------

    @property
    def display_image(self) -> np.ndarray | None:
        """The image with the occluders burned in: what is shown and what the models analyse."""
        if self.image is None:
            return None
        if self._display_image is None:
            self._display_image = apply_occluders(self.image, self.occluders)
        return self._display_image

    def add_occluder(self, occluder: Occluder) -> None:
        """Burn one more occluder into the image."""
        self.occluders.append(occluder)
        self._occluders_changed()

    def replace_last_occluder(self, occluder: Occluder) -> None:
        """Replace the most recent occluder (a drag in progress), or add it when there is none."""
        if self.occluders:
            self.occluders[-1] = occluder
        else:
            self.occluders.append(occluder)
        self._occluders_changed()

    def undo_occluder(self) -> None:
        """Remove the most recent occluder."""
        if self.occluders:
            self.occluders.pop()
            self._occluders_changed()

    def clear_occluders(self) -> None:
        """Remove every occluder."""
        if self.occluders:
            self.occluders = []
            self._occluders_changed()

    def _occluders_changed(self) -> None:
        self._display_image = None
        self.events.occluders.emit()

    @property
    def occlusion_tool(self) -> str:
        """The active tool: ``none`` (select and pan), ``patch``, ``eyes``, ``mouth`` or ``brush``."""
        return self._occlusion_tool

    @occlusion_tool.setter
    def occlusion_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown occlusion tool {tool!r}; choose one of {', '.join(TOOLS)}")
        if tool != self._occlusion_tool:
            self._occlusion_tool = tool
            self.events.occlusion_tool.emit()

    @property
    def occluder_fill(self) -> str:
        """How new occluders are filled (``black``, ``gray``, ``noise``, ``blur``)."""
        return self._occluder_fill

    @occluder_fill.setter
    def occluder_fill(self, fill: str) -> None:
        """How new occluders are filled (``black``, ``gray``, ``noise``, ``blur``)."""
        if fill not in FILLS:
            raise ValueError(f"unknown fill {fill!r}; choose one of {', '.join(FILLS)}")
        if fill != self._occluder_fill:
            self._occluder_fill = fill
            self.events.occlusion_tool.emit()

    @property
    def brush_radius(self) -> int:
        """Brush radius in image pixels (1-200)."""
        return self._brush_radius

    @brush_radius.setter
    def brush_radius(self, radius: int) -> None:
        """Brush radius in image pixels (1-200)."""
        radius = int(max(1, min(200, radius)))
        if radius != self._brush_radius:
            self._brush_radius = radius
            self.events.occlusion_tool.emit()

    # --- sources ---------------------------------------------------------------------------------------------------

    def set_sources(self, paths: list[str | Path], index: int = 0) -> None:
        """Replace the list of images to browse and go to ``index``."""
        self.sources = [str(p) for p in paths]
        self.source_index = min(max(index, 0), len(self.sources) - 1) if self.sources else -1
        self.events.sources.emit()

    def go_to(self, index: int) -> bool:
        """Go to source ``index`` (clamped); returns whether the index changed."""
        if not self.sources:
            return False
        index = min(max(index, 0), len(self.sources) - 1)
        if index == self.source_index:
            return False
        self.source_index = index
        self.events.sources.emit()
        return True

    def next_source(self) -> bool:
        """Go to the next source; False at the end."""
        return self.go_to(self.source_index + 1)

    def previous_source(self) -> bool:
        """Go to the previous source; False at the start."""
        return self.go_to(self.source_index - 1)

    @property
    def current_source(self) -> str | None:
        """The path of the current source, or ``None``."""
        if 0 <= self.source_index < len(self.sources):
            return self.sources[self.source_index]
        return None

    # --- display toggles and models --------------------------------------------------------------------------------

    @property
    def show_landmarks(self) -> bool:
        """Draw the facial landmarks."""
        return self._show_landmarks

    @show_landmarks.setter
    def show_landmarks(self, value: bool) -> None:
        """Draw the facial landmarks."""
        if bool(value) != self._show_landmarks:
            self._show_landmarks = bool(value)
            self.events.display.emit()

    @property
    def compare(self) -> bool:
        """Show the baseline side by side with RAN."""
        return self._compare

    @compare.setter
    def compare(self, value: bool) -> None:
        if bool(value) != self._compare:
            self._compare = bool(value)
            self.events.display.emit()

    def set_model_names(self, ran: str, baseline: str) -> None:
        """Names of the loaded models, for titles (empty: not loaded)."""
        self.ran_model_name, self.baseline_model_name = ran, baseline
        self.events.models.emit()

    # --- camera ----------------------------------------------------------------------------------------------------

    def set_camera(self, **changes: Any) -> None:
        """Update :attr:`camera` fields (``running=True``, ``capture_fps=29.7`` ...) and emit once."""
        for key, value in changes.items():
            if not hasattr(self.camera, key):
                raise AttributeError(f"CameraSettings has no field {key!r}")
            setattr(self.camera, key, value)
        if changes:
            self.events.camera.emit()


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two XYXY boxes (:func:`ran_core.faces.detectors.box_iou` for one pair)."""
    return float(_box_iou(a, b)[0, 0])


def match_face(face: FaceResult, candidates: list[FaceResult], hint: int | None = None) -> FaceResult | None:
    """The candidate with the same box (``hint`` index first), else the best IoU above 0.5."""
    if hint is not None and hint < len(candidates) and box_iou(face.box, candidates[hint].box) > 0.5:
        return candidates[hint]
    best, best_iou = None, 0.5
    for c in candidates:
        iou = box_iou(face.box, c.box)
        if iou > best_iou:
            best, best_iou = c, iou
    return best


def clean_match(clean: list[FaceResult], face: FaceResult | None) -> FaceResult | None:
    """``face``'s reading on the clean image (before occluders): the clean face with the same box."""
    if face is None or not clean:
        return None
    return match_face(face, clean)


def expand_paths(paths: list[str | Path]) -> tuple[list[str], list[str]]:
    """Files and folders -> ``(image files, problems)``: folders give their images sorted by name; missing paths and
    folders without images are reported, files are kept whatever their extension (opening one says what is wrong)."""
    images: list[str] = []
    problems: list[str] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(
                (c for c in p.iterdir() if c.is_file() and c.suffix.lower() in IMAGE_EXTENSIONS),
                key=lambda c: c.name.lower(),
            )
            if not found:
                problems.append(f"{p}: no images in this folder")
            images.extend(str(c) for c in found)
        elif p.exists():
            images.append(str(p))
        else:
            problems.append(f"{p}: file not found")
    return images, problems
