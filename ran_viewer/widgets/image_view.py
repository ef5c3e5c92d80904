"""The image view: the photo, face boxes, region boxes coloured by their attention weight, a colour bar, landmarks.

One :class:`QtImageView` shows one model's reading of the image (``role="ran"`` or ``"baseline"``). It watches a
:class:`~ran_viewer.model.viewer_state.ViewerState`; clicking selects a face and the region under the pointer; while
an occlusion tool is active, left-drags edit occluders through an
:class:`~ran_viewer.model.occlusion_editor.OcclusionEditor`."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPen
from PySide6.QtWidgets import QGraphicsLineItem, QGraphicsRectItem, QVBoxLayout, QWidget

from ran_core.structures import FaceResult
from ran_viewer.model.occlusion_editor import OcclusionEditor
from ran_viewer.model.viewer_state import ViewerState
from ran_viewer.model.weights import WEIGHT_LABELS, normalized
from ran_viewer.widgets.common import BACKGROUND, subscribe

COLORMAP_NAME = "viridis"


FACE_COLOR = "#e8e8e8"


SELECTED_FACE_COLOR = "#ffffff"


DISAGREE_COLOR = "#ff5a5a"


LANDMARK_COLOR = "#00e5ff"


HALO_COLOR = "#000000"


# The head-orientation glyph: a line from the nose tip the way the face points.
POSE_COLOR = "#ff9f43"


ROLE_TITLES = {"ran": "RAN", "baseline": "Baseline"}


def weight_colormap() -> pg.ColorMap:
    """The perceptual colour map of the region weights."""
    return pg.colormap.get(COLORMAP_NAME)


NO_WEIGHT_COLOR = "#8a8d91"


def weight_color(value: float, levels: tuple[float, float], cmap: pg.ColorMap | None = None) -> QColor:
    """The colour of ``value`` on the scale ``levels`` (what the region boxes and bars are drawn in); grey for NaN."""
    if not math.isfinite(value):
        return QColor(NO_WEIGHT_COLOR)
    cmap = cmap or weight_colormap()
    rgba = cmap.map(np.array([normalized(value, levels)]), mode="byte")[0]
    return QColor(int(rgba[0]), int(rgba[1]), int(rgba[2]))


def _pen(color: QColor | str, width: float, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(QColor(color))
    pen.setWidthF(width)
    pen.setCosmetic(True)  # width in screen pixels, whatever the zoom
    pen.setStyle(style)
    pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
    return pen


class _ToolViewBox(pg.ViewBox):
    """A ViewBox that reports left clicks, and left drags while an editing tool is active, in image coordinates."""

    sig_clicked = Signal(float, float)
    sig_drag = Signal(str, float, float)  # phase (start|move|finish), x, y

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=True)
        self.editing = False

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - Qt API
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self.sig_clicked.emit(p.x(), p.y())
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 - Qt API
        if not (self.editing and ev.button() == Qt.MouseButton.LeftButton):
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        if ev.isStart():
            s = self.mapSceneToView(ev.buttonDownScenePos())
            self.sig_drag.emit("start", s.x(), s.y())
            self.sig_drag.emit("move", p.x(), p.y())
        elif ev.isFinish():
            self.sig_drag.emit("finish", p.x(), p.y())
        else:
            self.sig_drag.emit("move", p.x(), p.y())


class QtImageView(QWidget):
    """One model's reading of the current image.

    Args:
        state: the viewer state to show and edit.
        role: ``ran`` (face boxes, region boxes, colour bar) or ``baseline`` (face boxes and labels).

    Attributes:
        region_items: ``[(face, region, rect item, QColor)]`` of the drawn region boxes (for tests and picking).
        face_items: ``[(face, rect item)]`` of the drawn face boxes.
    """

    sig_region_clicked = Signal(int, int)  # face, region (-1: the face, no region)

    def __init__(self, state: ViewerState, role: str = "ran", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if role not in ROLE_TITLES:
            raise ValueError(f"role must be one of {list(ROLE_TITLES)}, got {role!r}")
        self.state = state
        self.role = role
        self.cmap = weight_colormap()
        self.editor = OcclusionEditor(state)
        self.region_items: list[tuple[int, int, QGraphicsRectItem, QColor]] = []
        self.face_items: list[tuple[int, QGraphicsRectItem]] = []
        # Overlay items are pooled and reused: adding and removing pyqtgraph items costs far more than moving them,
        # and a camera redraws every frame.
        self._rect_pool: list[QGraphicsRectItem] = []
        self._text_pool: list[pg.TextItem] = []
        self._line_pool: list[QGraphicsLineItem] = []
        self._n_rects = 0
        self._n_texts = 0
        self._n_lines = 0
        self._labels: list[tuple[pg.TextItem, list[tuple[QPointF, tuple[float, float]]], int]] = []
        self._label_font = QFont()
        self._label_font.setPointSizeF(8.5)
        self._label_font.setBold(True)
        self._shape: tuple[int, int] | None = None

        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(BACKGROUND)
        self.canvas.ci.setContentsMargins(4, 4, 4, 4)
        self.title = pg.LabelItem("", justify="left", size="10pt", color="#dddddd")
        self.canvas.addItem(self.title, row=0, col=0, colspan=2)
        self.vb = _ToolViewBox()
        self.vb.setMenuEnabled(True)
        self.canvas.addItem(self.vb, row=1, col=0)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image_item)
        self.landmarks_item = pg.ScatterPlotItem(size=5, pen=pg.mkPen("#00363d"), brush=pg.mkBrush(LANDMARK_COLOR))
        self.landmarks_item.setZValue(30)
        self.vb.addItem(self.landmarks_item)
        self.hint = pg.TextItem("", color="#9aa0a6", anchor=(0.5, 0.5))
        self.vb.addItem(self.hint)
        self.colorbar: pg.ColorBarItem | None = None
        if role == "ran":
            self.colorbar = pg.ColorBarItem(
                values=(0.0, 1.0), colorMap=self.cmap, interactive=False, width=14, colorMapMenu=False, label=""
            )
            self.canvas.addItem(self.colorbar, row=1, col=1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.setMinimumSize(240, 200)

        self.vb.sig_clicked.connect(self._on_clicked)
        self.vb.sig_drag.connect(self._on_drag)
        self.vb.sigRangeChanged.connect(self._on_range_changed)
        self.vb.sigResized.connect(self._on_range_changed)

        ev = state.events
        subscribe(
            self,
            [
                (ev.image, self._on_image),
                (ev.occluders, self._on_occluders),
                (ev.predictions, self._on_overlay_changed),
                (ev.selection, self._on_overlay_changed),
                (ev.weight_mode, self._on_overlay_changed),
                (ev.display, self._on_overlay_changed),
                (ev.models, self._update_title),
                (ev.occlusion_tool, self._on_tool),
            ],
        )
        self._on_tool()
        self._on_image()
        self._on_overlay_changed()

    # --- state -> view ---------------------------------------------------------------------------------------------

    @property
    def faces(self) -> list[FaceResult]:
        """This view's model's faces."""
        return self.state.ran_faces if self.role == "ran" else self.state.baseline_faces

    @property
    def model_name(self) -> str:
        """The name of this view's model (empty when not loaded)."""
        return self.state.ran_model_name if self.role == "ran" else self.state.baseline_model_name

    def _on_image(self, *_: object) -> None:
        img = self.state.display_image
        if img is None:
            self.image_item.clear()
            self.hint.setText("Open images (Ctrl+O) or a folder (Ctrl+Shift+O),\npaste (Ctrl+V), or drop files here")
            self.hint.setPos(0, 0)
            self.hint.setVisible(self.role == "ran")
            self._shape = None
            self.vb.setRange(QRectF(-1, -1, 2, 2), padding=0)
        else:
            self.hint.setVisible(False)
            self.image_item.setImage(img, autoLevels=False, levels=(0, 255))
            shape = img.shape[:2]
            if shape != self._shape:  # a camera keeps the zoom; a new photo size resets it
                self._shape = shape
                self.vb.setRange(QRectF(0, 0, shape[1], shape[0]), padding=0.02)
        # The overlay follows the ``predictions`` event, which every image change also emits.

    def _on_occluders(self, *_: object) -> None:
        img = self.state.display_image
        if img is not None:
            self.image_item.setImage(img, autoLevels=False, levels=(0, 255))

    def _on_tool(self, *_: object) -> None:
        editing = self.state.occlusion_tool != "none"
        self.vb.editing = editing
        self.canvas.setCursor(Qt.CursorShape.CrossCursor if editing else Qt.CursorShape.ArrowCursor)

    def _on_overlay_changed(self, *_: object) -> None:
        self._clear_overlay()
        faces = self.faces
        state = self.state
        disagree = set(state.disagreements())
        levels = state.weight_levels()
        if self.colorbar is not None:
            # A colour bar without region weights (no RAN model, no face) would explain nothing.
            self.colorbar.setVisible(any(f.regions and math.isfinite(f.regions[0].alpha) for f in faces))
            self.colorbar.setLevels(values=levels)
            self.colorbar.getAxis("left").setLabel(WEIGHT_LABELS[state.weight_mode], color="#cccccc")
        for i, face in enumerate(faces):
            selected = i == state.selected_face
            if self.role == "ran" and face.regions:
                self._draw_regions(i, face, levels, selected)
            self._draw_face(i, face, selected, i in disagree)
        pts = [f.landmarks for f in faces if f.landmarks is not None] if state.show_landmarks else []
        if pts:
            xy = np.concatenate([np.asarray(p, dtype=float).reshape(-1, 2) for p in pts])
            self.landmarks_item.setData(x=xy[:, 0], y=xy[:, 1])
        else:
            self.landmarks_item.clear()
        self._hide_unused()
        self._update_title()
        self._layout_labels()

    def _clear_overlay(self) -> None:
        self._n_rects = self._n_texts = self._n_lines = 0
        self._labels.clear()
        self.region_items.clear()
        self.face_items.clear()

    def _hide_unused(self) -> None:
        for item in self._rect_pool[self._n_rects :]:
            item.setVisible(False)
        for item in self._text_pool[self._n_texts :]:
            item.setVisible(False)
        for item in self._line_pool[self._n_lines :]:
            item.setVisible(False)

    def _line(self, p1: tuple[float, float], p2: tuple[float, float], pen: QPen, z: float) -> QGraphicsLineItem:
        if self._n_lines == len(self._line_pool):
            item = QGraphicsLineItem()
            self.vb.addItem(item)
            self._line_pool.append(item)
        item = self._line_pool[self._n_lines]
        self._n_lines += 1
        item.setLine(p1[0], p1[1], p2[0], p2[1])
        item.setPen(pen)
        item.setZValue(z)
        item.setVisible(True)
        return item

    def _draw_pose(self, face: FaceResult) -> None:
        """Head orientation: a line from the nose tip the way the face points (yaw right/left, pitch up/down)."""
        if face.pose is None or face.landmarks is None:
            return
        lm = np.asarray(face.landmarks, dtype=float)
        nose = lm[2] if len(lm) == 5 else lm[30]
        x1, y1, x2, y2 = face.box
        length = 0.45 * max(x2 - x1, y2 - y1)
        dx = length * math.sin(math.radians(face.pose.yaw))
        dy = -length * math.sin(math.radians(face.pose.pitch))
        tip = (nose[0] + dx, nose[1] + dy)
        self._line((nose[0], nose[1]), tip, _pen(HALO_COLOR, 5.0), 45)
        self._line((nose[0], nose[1]), tip, _pen(POSE_COLOR, 2.5), 46)

    def _rect(self, box: tuple[float, ...], pen: QPen, z: float) -> QGraphicsRectItem:
        if self._n_rects == len(self._rect_pool):
            item = QGraphicsRectItem()
            self.vb.addItem(item)
            self._rect_pool.append(item)
        item = self._rect_pool[self._n_rects]
        self._n_rects += 1
        x1, y1, x2, y2 = box
        item.setRect(QRectF(x1, y1, x2 - x1, y2 - y1))
        item.setPen(pen)
        item.setZValue(z)
        item.setVisible(True)
        return item

    def _text(self, text: str, color: QColor | str, fill: QColor | str, z: float) -> pg.TextItem:
        if self._n_texts == len(self._text_pool):
            item = pg.TextItem("", anchor=(0, 0))
            item.setFont(self._label_font)
            self.vb.addItem(item)
            self._text_pool.append(item)
        item = self._text_pool[self._n_texts]
        self._n_texts += 1
        item.setText(text, color=QColor(color))
        item.fill = pg.mkBrush(fill)
        item.setZValue(z)
        item.setVisible(True)
        item.update()
        return item

    def _draw_face(self, i: int, face: FaceResult, selected: bool, disagree: bool) -> None:
        x1, y1, x2, y2 = face.box
        color = DISAGREE_COLOR if disagree else (SELECTED_FACE_COLOR if selected else FACE_COLOR)
        # In the RAN view region 0 ("face") already outlines the face in its weight colour: draw the face box there
        # only to flag a disagreement (dashed, so the region colour shows between the dashes).
        if not (self.role == "ran" and face.regions) or disagree:
            if not disagree:
                self._rect(face.box, _pen(HALO_COLOR, 4.5 if selected else 3.5), 18)
            style = Qt.PenStyle.DashLine if disagree else Qt.PenStyle.SolidLine
            item = self._rect(face.box, _pen(color, 2.5 if selected else 1.5, style), 60)
            self.face_items.append((i, item))
        text = f"#{i + 1} {face.label} {face.confidence:.0%}"
        if disagree:
            other = self.state.ran_faces[i] if self.role == "baseline" else self.state.baseline_for(i)
            if other is not None and i < len(self.state.ran_faces):
                theirs = "baseline" if self.role == "ran" else "RAN"
                text = f"#{i + 1} {face.label} ≠ {theirs}: {other.label}"
        label = self._text(text, "#111111" if not disagree else "#ffffff", color, 40)
        self._draw_pose(face)
        # Above the box; inside its top edge when the box touches the top of the image.
        self._labels.append((label, [(QPointF(x1, y1), (0, 1)), (QPointF(x1, y1), (0, 0))], -1))

    def _draw_regions(self, i: int, face: FaceResult, levels: tuple[float, float], face_selected: bool) -> None:
        values = self.state.region_values(face)
        sel_region = self.state.selected_region if face_selected else None
        order = sorted(range(len(face.regions)), key=lambda k: (k == sel_region, values[k]))  # selected drawn on top
        for rank, k in enumerate(order):
            region = face.regions[k]
            x1, y1, x2, y2 = region.box
            color = weight_color(values[k], levels, self.cmap)
            selected = k == sel_region
            self._rect(region.box, _pen("#ffffff" if selected else HALO_COLOR, 7.0 if selected else 4.0), 20 + 2 * rank)
            item = self._rect(region.box, _pen(color, 4.0 if selected else 2.0), 21 + 2 * rank)
            self.region_items.append((i, k, item, color))
            value = values[k]
            text = "–" if not math.isfinite(value) else f"{value:.2f}"
            if selected:
                text = f"{region.name} {text}"
            # The label is filled with the box's colour (dark purple text on a dark photo would vanish) and written in
            # black or white, whichever reads on that colour.
            label = self._text(text, _ink_for(color), color, 41 + rank)
            cands = [
                (QPointF(x1, y1), (0, 0)),
                (QPointF(x2, y1), (1, 0)),
                (QPointF(x1, y2), (0, 1)),
                (QPointF(x2, y2), (1, 1)),
                (QPointF((x1 + x2) / 2, y2), (0.5, 1)),
                (QPointF((x1 + x2) / 2, y1), (0.5, 0)),
            ]
            priority = 2 if selected else (1 if face_selected else 0)
            self._labels.append((label, cands, priority * 10 + value if math.isfinite(value) else priority * 10))

    def _layout_labels(self) -> None:
        """Place each weight label at the first corner of its box where it overlaps no other label, else hide it.

        Done in screen pixels (labels do not scale with zoom), most important labels first: the selected region, then
        the selected face's regions by weight, then the face labels.
        """
        if not self._labels or self._shape is None:
            return
        placed: list[QRectF] = []
        face_labels = [entry for entry in self._labels if entry[2] == -1]
        region_labels = sorted((e for e in self._labels if e[2] != -1), key=lambda e: -e[2])
        for label, cands, _ in face_labels + region_labels:
            size = label.textItem.boundingRect()  # screen pixels (labels ignore zoom), margins included
            w, h = size.width(), size.height()
            chosen = None
            for pos, anchor in cands:
                sp = self.vb.mapViewToScene(pos)
                r = QRectF(sp.x() - anchor[0] * w, sp.y() - anchor[1] * h, w, h)
                if not any(r.intersects(p) for p in placed):
                    chosen = (pos, anchor, r)
                    break
            if chosen is None:
                label.setVisible(False)
                continue
            pos, anchor, r = chosen
            label.setAnchor(anchor)
            label.setPos(pos)
            label.setVisible(True)
            placed.append(r)

    def _on_range_changed(self, *_: object) -> None:
        self._layout_labels()

    def _update_title(self, *_: object) -> None:
        name = self.model_name
        head = f"<b>{ROLE_TITLES[self.role]}</b>"
        if name:
            head += f" · {name}"
        elif self.state.image is not None or self.state.analysed:
            head += " · <span style='color:#ff9f43'>not loaded</span>"
        face = None
        if self.state.selected_face is not None and self.state.selected_face < len(self.faces):
            face = self.faces[self.state.selected_face]
        if face is not None:
            head += f" — face #{self.state.selected_face + 1}: <b>{face.label}</b> {face.confidence:.0%}"
            if face.pose is not None:
                p = face.pose
                head += f" · yaw {p.yaw:+.0f}° pitch {p.pitch:+.0f}° roll {p.roll:+.0f}°"
        elif self.state.analysed and self.state.image is not None and not self.faces and name:
            head += " — <span style='color:#ff9f43'>no face found</span>"
        n = len(self.state.disagreements())
        if n and self.role == "ran":
            head += f" &nbsp;<span style='color:{DISAGREE_COLOR}'>{n} disagreement{'s' if n > 1 else ''}</span>"
        self.title.setText(head)
        # pyqtgraph makes a label's text width its minimum width: one long title (a camera frame's) would widen the
        # canvas's layout past the view for good, pushing the colour bar out of sight. A long title is cut instead.
        self.title.setMinimumWidth(0)

    # --- view -> state ---------------------------------------------------------------------------------------------

    def _on_clicked(self, x: float, y: float) -> None:
        if self.state.occlusion_tool != "none":
            if self.editor.press(x, y):
                self.editor.release(x, y)
            return
        face, region = self.pick(x, y)
        if face is None:
            self.state.select_region(None)
            return
        self.state.select(face, region)
        self.sig_region_clicked.emit(face, -1 if region is None else region)

    def _on_drag(self, phase: str, x: float, y: float) -> None:
        if phase == "start":
            self.editor.press(x, y)
        elif phase == "move":
            self.editor.move(x, y)
        else:
            self.editor.release(x, y)

    def pick(self, x: float, y: float) -> tuple[int | None, int | None]:
        """The face and region at image point ``(x, y)``: a region whose outline is within a few pixels, else the
        smallest region containing the point, else just the face whose box contains it."""
        tol = 6 * max(self.vb.viewPixelSize())
        faces = self.faces
        order = list(range(len(faces)))
        if self.state.selected_face is not None and self.state.selected_face < len(faces):
            order.remove(self.state.selected_face)
            order.insert(0, self.state.selected_face)
        for i in order:  # near an outline of a region (selected face first)
            best, best_d = None, tol
            for k, r in enumerate(faces[i].regions):
                d = _edge_distance(r.box, x, y)
                if d <= best_d:
                    best, best_d = k, d
            if best is not None:
                return i, best
        inside = [i for i in order if _contains(faces[i].box, x, y)]
        if not inside:
            return None, None
        i = min(inside, key=lambda j: _area(faces[j].box))
        regions = [k for k, r in enumerate(faces[i].regions) if _contains(r.box, x, y)]
        if not regions:
            return i, None
        return i, min(regions, key=lambda k: _area(faces[i].regions[k].box))

    def map_to_widget(self, x: float, y: float) -> QPoint:
        """Image coordinates -> pixel position in this widget (for tests reading screenshots)."""
        scene = self.vb.mapViewToScene(QPointF(x, y))
        view_pt = self.canvas.mapFromScene(scene)
        return self.canvas.mapTo(self, view_pt)


def _ink_for(color: QColor) -> str:
    """Black or white, whichever is legible on ``color`` (relative luminance)."""
    luma = 0.2126 * color.redF() + 0.7152 * color.greenF() + 0.0722 * color.blueF()
    return "#000000" if luma > 0.45 else "#ffffff"


def _contains(box: tuple[float, ...], x: float, y: float) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def _area(box: tuple[float, ...]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _edge_distance(box: tuple[float, ...], x: float, y: float) -> float:
    x1, y1, x2, y2 = box
    if x1 - 1e-9 <= x <= x2 + 1e-9 and y1 - 1e-9 <= y <= y2 + 1e-9:
        return min(x - x1, x2 - x, y - y1, y2 - y)
    dx = max(x1 - x, 0.0, x - x2)
    dy = max(y1 - y, 0.0, y - y2)
    return math.hypot(dx, dy)
