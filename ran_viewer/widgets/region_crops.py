"""The region-crop strip: each region of the selected face as the model saw it, framed in its weight's colour."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ran_viewer.model.viewer_state import ViewerState
from ran_viewer.widgets.common import BACKGROUND, subscribe
from ran_viewer.widgets.image_view import weight_color, weight_colormap


class QtRegionCropWidget(QWidget):
    """The selected region as the backbone saw it (its crop, resized to the model's input), above a strip of all the
    face's region crops framed in their weight colours. Without a selected region it shows the aligned face crop."""

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.cmap = weight_colormap()
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(BACKGROUND)
        self.title = pg.LabelItem("Region crop", size="10pt", color="#dddddd")
        self.canvas.addItem(self.title, row=0, col=0)
        self.big_vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.big = pg.ImageItem(axisOrder="row-major")
        self.big_vb.addItem(self.big)
        self.canvas.addItem(self.big_vb, row=1, col=0)
        self.strip = self.canvas.addLayout(row=2, col=0)
        self.canvas.ci.layout.setRowStretchFactor(1, 4)
        self.canvas.ci.layout.setRowStretchFactor(2, 1)
        self.thumbs: list[tuple[pg.ViewBox, pg.ImageItem]] = []
        self.shown: np.ndarray | None = None
        self._big_shape: tuple[int, ...] | None = None
        self.canvas.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        ev = state.events
        subscribe(
            self,
            [
                (ev.predictions, self._on_changed),
                (ev.selection, self._on_changed),
                (ev.weight_mode, self._on_changed),
            ],
        )
        self._on_changed()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(360, 300)

    def _on_changed(self, *_: object) -> None:
        state = self.state
        face = state.selected_face_result
        k = state.selected_region
        crops = None if face is None else face.region_crops
        n = 0 if crops is None else len(crops)
        self._ensure_thumbs(n if n > 1 else 0)  # a strip of one (the baseline's whole face) repeats the big view
        levels = state.weight_levels()
        values = state.region_values(face) if face is not None and face.regions else np.zeros(0)
        for j, (vb, img) in enumerate(self.thumbs):
            img.setImage(_display_crop(crops[j]), levels=(0, 255), autoLevels=False)
            color = weight_color(values[j], levels, self.cmap) if j < len(values) else QColor("#888888")
            vb.setBorder(pg.mkPen("#ffffff" if j == k else color, width=3 if j == k else 2))
            if crops[j].shape != getattr(vb, "_shown_shape", None):
                vb._shown_shape = crops[j].shape
                vb.autoRange(padding=0.04)
        if face is None:
            self._show(None, "Region crop — no face selected")
        elif k is not None and crops is not None and k < n:
            region = face.regions[k]
            parts = [f"<b>{region.name}</b>"]
            if math.isfinite(region.alpha):
                parts.append(f"α {region.alpha:.3f}  β {region.beta:.3f}")
            parts.append(f"{crops.shape[1]}×{crops.shape[2]} px as the model saw it")
            self._show(crops[k], " · ".join(parts))
        elif face.crop is not None:
            self._show(face.crop, f"Aligned face #{state.selected_face + 1} · click a region to see its crop")
        elif crops is not None and n:
            self._show(crops[0], "Whole face as the model saw it · click a region")
        else:
            self._show(None, "Region crop — the predictor returned no crops")

    def _show(self, crop: np.ndarray | None, title: str) -> None:
        self.title.setText(title)
        if crop is None:
            self.big.clear()
            self.shown = None
            return
        self.shown = _display_crop(crop)
        self.big.setImage(self.shown, levels=(0, 255), autoLevels=False)
        if self.shown.shape != self._big_shape:
            self._big_shape = self.shown.shape
            self.big_vb.autoRange(padding=0.02)

    def _ensure_thumbs(self, n: int) -> None:
        if len(self.thumbs) == n:
            return
        self.strip.clear()
        self.thumbs = []
        for j in range(n):
            vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
            img = pg.ImageItem(axisOrder="row-major")
            vb.addItem(img)
            self.strip.addItem(vb, row=0, col=j)
            self.thumbs.append((vb, img))

    def _on_mouse_clicked(self, ev) -> None:
        for j, (vb, _) in enumerate(self.thumbs):
            if vb.sceneBoundingRect().contains(ev.scenePos()):
                self.state.select_region(None if j == self.state.selected_region else j)
                return


def _display_crop(crop: np.ndarray) -> np.ndarray:
    """A region crop ready for an ImageItem: ``(H, W)`` gray or ``(H, W, 3)`` RGB uint8."""
    crop = np.asarray(crop)
    if crop.ndim == 3 and crop.shape[2] == 1:
        crop = crop[..., 0]
    if crop.dtype != np.uint8:
        crop = np.clip(crop, 0, 255).astype(np.uint8)
    return crop
