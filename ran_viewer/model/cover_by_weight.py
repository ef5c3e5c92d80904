"""Cover one face's regions by weight, step by step: the region deletion curve of ``ran-core eval --deletion`` on the
face you are looking at.

``ran_core.engine.deletion`` covers every face's regions in decreasing order of RAN's α·β share (region 0, the
whole face, never: it would cover everything) and records the accuracy after each step. :class:`CoverByWeight` does
the same for the selected face of the shown still image, one step at a time: each step puts a
:class:`~ran_viewer.model.occluders.RectOccluder` over the next region's box, filled with what ``ran_core``'s
deletion fills with (RAN's normalisation mean: mid-grey for the bundled models), so the controller re-reads the SAME
faces on the edited image and both models' new predictions come back. Stepping back removes the last
patch. No Qt here: the buttons live in :mod:`ran_viewer.widgets.cover_steps`, tests drive this with plain pytest.
"""

from __future__ import annotations

import math

import numpy as np

from ran_core.structures import FaceResult
from ran_viewer.model.controller import ViewerController
from ran_viewer.model.events import Event
from ran_viewer.model.occluders import RectOccluder
from ran_viewer.model.viewer_state import clean_match
from ran_viewer.model.weights import region_values

# ran_core's deletion fills covered pixels with the model's normalisation mean: the controller's cover_color.
COVER_FILL = "mean"


class CoverByWeightEvents:
    """Events of :class:`CoverByWeight`."""

    def __init__(self) -> None:
        self.changed = Event("changed")  # () started, stepped, a reading arrived, or stopped


class CoverByWeight:
    """Steps through covering the selected face's regions in decreasing order of RAN's α·β share.

    Args:
        controller: the viewer's controller; its state shows the image, and it re-reads the faces when the
            occluders change (:attr:`ViewerController.reading_is_current` says when the shown predictions are those
            of the shown patches).

    Attributes:
        active: stepping is on.
        face_index: the face being covered.
        order: region indices in the order they are covered (most-weighted first, region 0 left out).
        names: their names; ``shares`` their α·β shares on the uncovered face.
        step: how many regions are covered now (0 = none).
        readings: step -> ``(RAN face, baseline face)`` read with that many regions covered (filled as they come).
    """

    def __init__(self, controller: ViewerController) -> None:
        self.controller = controller
        self.state = controller.state
        self.events = CoverByWeightEvents()
        self.active = False
        self.face_index: int | None = None
        self.order: list[int] = []
        self.names: list[str] = []
        self.shares: list[float] = []
        self.boxes: list[tuple[float, float, float, float]] = []
        self.step = 0
        self.readings: dict[int, tuple[FaceResult | None, FaceResult | None]] = {}
        ev = self.state.events
        ev.image.connect(self._on_image)
        ev.occluders.connect(self._on_occluders)
        ev.predictions.connect(self._on_predictions)
        ev.selection.connect(self._on_selection)

    # --- starting and stopping -------------------------------------------------------------------------------------

    def unavailable(self) -> str | None:
        """Why covering cannot start now (a sentence for the status bar), or ``None`` when it can."""
        state = self.state
        if state.camera.running:
            return "Covering regions by weight works on a still image: stop the camera first."
        if state.image is None or not state.faces:
            return "Covering regions by weight needs a face: open an image with a face first."
        face = self._clean_face()
        if face is None or not state.ran_faces:
            return "Covering regions by weight needs RAN's region weights: load a RAN model."
        shares = region_values(face, "alpha*beta")
        if len(shares) < 2 or not np.all(np.isfinite(shares)):
            return "This face has no region weights to order the regions by."
        return None

    def start(self) -> bool:
        """Start on the selected face (the first when none is): patches cleared, regions ordered by weight.
        Returns ``False`` (and says why in the status bar) when it cannot start."""
        why = self.unavailable()
        if why is not None:
            self.state.notify(why, "warning")
            return False
        state = self.state
        if state.selected_face is None:
            state.select(0)
        face = self._clean_face()
        assert face is not None  # unavailable() checked it
        shares = region_values(face, "alpha*beta")
        order = [int(k) + 1 for k in np.argsort(-shares[1:], kind="stable")]
        self.face_index = state.selected_face
        self.order = order
        self.names = [face.regions[k].name for k in order]
        self.shares = [float(shares[k]) for k in order]
        self.boxes = [tuple(float(v) for v in face.regions[k].box) for k in order]
        self.step = 0
        self.readings = {}
        self.active = True
        state.clear_occluders()  # starts from the uncovered face (its reading is known: restored at once)
        self._record()
        self._announce()
        return True

    def stop(self, clear: bool = True, reason: str = "") -> None:
        """Stop stepping; ``clear`` removes the patches (the uncovered reading comes back)."""
        if not self.active:
            return
        self.active = False
        if clear:
            self.state.clear_occluders()
        if reason:
            self.state.notify(reason)
        self.events.changed.emit()

    # --- stepping --------------------------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        """How many regions can be covered (all but the whole face)."""
        return len(self.order)

    @property
    def can_forward(self) -> bool:
        return self.active and self.step < self.total

    @property
    def can_back(self) -> bool:
        return self.active and self.step > 0

    def forward(self) -> bool:
        """Cover the next region; ``False`` when all are covered (or stepping is off)."""
        if not self.can_forward:
            return False
        self.step += 1
        k = self.step - 1
        self.state.add_occluder(self._patch(self.boxes[k]))
        self.state.select(self.face_index, self.order[k])  # the region just covered, highlighted
        self._record()
        self._announce()
        return True

    def back(self) -> bool:
        """Uncover the last covered region; ``False`` when none is covered (or stepping is off)."""
        if not self.can_back:
            return False
        self.step -= 1
        self.state.undo_occluder()
        self.state.select(self.face_index, self.order[self.step - 1] if self.step else None)
        self._record()
        self._announce()
        return True

    def go_to(self, step: int) -> None:
        """Cover exactly the first ``step`` regions of the order (clamped)."""
        step = max(0, min(int(step), self.total))
        while self.active and self.step < step:
            self.forward()
        while self.active and self.step > step:
            self.back()

    @property
    def covered(self) -> list[str]:
        """Names of the regions covered now, in covering order."""
        return self.names[: self.step]

    def occluders(self, step: int | None = None) -> list[RectOccluder]:
        """The patches of ``step`` (default: the current one), as :meth:`forward` puts them on the image."""
        step = self.step if step is None else step
        return [self._patch(b) for b in self.boxes[:step]]

    def _patch(self, box: tuple[float, float, float, float]) -> RectOccluder:
        x1, y1, x2, y2 = box
        return RectOccluder(fill=COVER_FILL, color=self.controller.cover_color, x1=x1, y1=y1, x2=x2, y2=y2)

    # --- what the status bar says ----------------------------------------------------------------------------------

    def status_text(self) -> str:
        """``covered 2 of 5 regions: top_left, center_down — RAN now says happiness 62% …`` for the shown step."""
        if not self.active:
            return ""
        n = self.total
        if self.step == 0:
            head = f"covered 0 of {n} regions of face #{(self.face_index or 0) + 1}"
        else:
            head = f"covered {self.step} of {n} region{'s' if n != 1 else ''}: {', '.join(self.covered)}"
        reading = self.readings.get(self.step)
        if reading is None:
            tail = "reading the covered face…"
        else:
            tail = self._describe(reading)
        text = f"{head} — {tail}"
        if self.step < n:
            text += f" · next: {self.names[self.step]} (α·β {self.shares[self.step]:.2f})"
        return text

    def _describe(self, reading: tuple[FaceResult | None, FaceResult | None]) -> str:
        ran, base = reading
        clean = self.readings.get(0, (None, None))
        parts = []
        for label, face, before in (("RAN", ran, clean[0]), ("baseline", base, clean[1])):
            if face is None:
                continue
            verb = "" if parts else (" says" if self.step == 0 else " now says")
            text = f"{label}{verb} {_top(face)}"
            if self.step and before is not None:
                text += f" (was {_top(before)})"
            parts.append(text)
        return ", ".join(parts) if parts else "no reading of this face"

    def _announce(self) -> None:
        self.state.notify(self.status_text())
        self.events.changed.emit()

    # --- following the state ---------------------------------------------------------------------------------------

    def _clean_face(self) -> FaceResult | None:
        """The selected RAN face as read without patches (the order comes from it)."""
        state = self.state
        i = state.selected_face if state.selected_face is not None else 0
        if i >= len(state.ran_faces):
            return None
        face = state.ran_faces[i]
        if state.occluders:
            face = clean_match(state.clean_ran_faces, face)
        return face

    def _record(self) -> None:
        """Keep the reading of the current step once the controller says the shown predictions are its own."""
        state = self.state
        if not self.controller.reading_is_current or state.occluders != self.occluders():
            return
        i = self.face_index
        if i is None or i >= len(state.faces):
            return
        ran = state.ran_faces[i] if i < len(state.ran_faces) else None
        self.readings[self.step] = (ran, state.baseline_for(i))

    def _on_predictions(self) -> None:
        if self.active and self.step not in self.readings:
            self._record()
            if self.step in self.readings:
                self._announce()

    def _on_occluders(self) -> None:
        if self.active and self.state.occluders != self.occluders():
            self.stop(clear=False, reason="Covering by weight stopped: the patches were edited.")

    def _on_image(self) -> None:
        if self.active:
            self.stop(clear=False)

    def _on_selection(self) -> None:
        if self.active and self.state.selected_face != self.face_index:
            self.stop(reason="Covering by weight stopped: another face was selected.")


def _top(face: FaceResult) -> str:
    """``happiness 62%``: the predicted class and its probability."""
    p = float(np.max(face.probabilities))
    return f"{face.label} {p:.0%}" if math.isfinite(p) else face.label
