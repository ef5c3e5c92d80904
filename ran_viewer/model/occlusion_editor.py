"""Turns press/move/release gestures of the occlusion tools into occluders on a
:class:`~ran_viewer.model.viewer_state.ViewerState`. No Qt here: the image view forwards its mouse events."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ran_viewer.model.occluders import BrushStroke, Occluder, Point, RectOccluder, eye_bar, mouth_mask

if TYPE_CHECKING:
    from ran_viewer.model.viewer_state import ViewerState


class OcclusionEditor:
    """Turns press / move / release in image coordinates into occluders on the state, for the active tool.

    ``patch`` drags a rectangle; ``eyes`` and ``mouth`` place a shape on the clicked face (or the nearest one) and
    then follow the drag; ``brush`` paints. Each change replaces the last occluder, so inference sees every step.
    """

    def __init__(self, state: ViewerState) -> None:
        self.state = state
        self._anchor: Point | None = None
        self._start_shape: Occluder | None = None

    @property
    def active(self) -> bool:
        """Whether a gesture is in progress."""
        return self._anchor is not None

    def press(self, x: float, y: float) -> bool:
        """Start a gesture; returns ``False`` when the current tool does not edit (``none``) or nothing was placed."""
        tool, fill = self.state.occlusion_tool, self.state.occluder_fill
        shape: Occluder | None = None
        if tool == "patch":
            shape = RectOccluder(fill=fill, x1=x, y1=y, x2=x, y2=y)
        elif tool == "brush":
            shape = BrushStroke(fill=fill, points=((x, y),), radius=float(self.state.brush_radius))
        elif tool in ("eyes", "mouth"):
            face = self.state.face_near(x, y)
            if face is None:
                self.state.notify("Place the bar or the mask on a face: no face has been found in this image yet.")
                return False
            make = eye_bar if tool == "eyes" else mouth_mask
            shape = make(face.box, face.landmarks, fill=fill)
        if shape is None:
            return False
        self._anchor = (x, y)
        self._start_shape = shape
        self.state.add_occluder(shape)
        return True

    def move(self, x: float, y: float) -> None:
        """Continue the gesture."""
        if self._anchor is None or self._start_shape is None:
            return
        ax, ay = self._anchor
        shape = self._start_shape
        if isinstance(shape, RectOccluder):
            new: Occluder = replace(shape, x2=x, y2=y)
        elif isinstance(shape, BrushStroke):
            current = self.state.occluders[-1] if self.state.occluders else shape
            new = current.extended(x, y) if isinstance(current, BrushStroke) else shape
            if new is current:
                return
        else:
            new = shape.moved(x - ax, y - ay)
        self.state.replace_last_occluder(new)

    def release(self, x: float, y: float) -> None:
        """Finish the gesture (a patch dragged to nothing is removed)."""
        if self._anchor is None:
            return
        self.move(x, y)
        last = self.state.occluders[-1] if self.state.occluders else None
        if isinstance(last, RectOccluder):
            x1, y1, x2, y2 = last.bounds()
            if x2 - x1 < 2 or y2 - y1 < 2:
                self.state.undo_occluder()
        self._anchor = None
        self._start_shape = None
