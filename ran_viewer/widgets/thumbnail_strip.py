"""The thumbnail strip of the opened images (thumbnails decoded on a worker thread)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QWidget

from ran_viewer.model.viewer_state import ViewerState
from ran_viewer.widgets.common import subscribe
from ran_viewer.workers.base import retire
from ran_viewer.workers.thumbnails import ThumbnailWorker


class QtThumbnailStripWidget(QListWidget):
    """A horizontal strip of the source images; thumbnails load on a worker thread; the current one is selected."""

    THUMB = 84

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(self.THUMB, self.THUMB))
        self.setGridSize(QSize(self.THUMB + 26, self.THUMB + 30))
        self.setUniformItemSizes(True)
        self.setHorizontalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.setFixedHeight(self.THUMB + 52)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self._paths: list[str] = []
        self._worker: ThumbnailWorker | None = None
        self._placeholder = self._make_placeholder()
        self.currentRowChanged.connect(self._on_current_row_changed)
        subscribe(self, [(state.events.sources, self._on_sources)])
        self._on_sources()

    def _make_placeholder(self) -> QIcon:
        pm = QPixmap(self.THUMB, self.THUMB)
        pm.fill(QColor("#3a3d42"))
        return QIcon(pm)

    def _on_sources(self, *_: object) -> None:
        if self.state.sources != self._paths:
            self._paths = list(self.state.sources)
            self.blockSignals(True)
            self.clear()
            for p in self._paths:
                item = QListWidgetItem(self._placeholder, Path(p).name)
                item.setToolTip(p)
                self.addItem(item)
            self.blockSignals(False)
            self._start_worker()
        idx = self.state.source_index
        if idx != self.currentRow() and 0 <= idx < self.count():
            self.blockSignals(True)
            self.setCurrentRow(idx)
            self.blockSignals(False)
        if 0 <= idx < self.count():
            self.scrollToItem(self.item(idx))

    def _start_worker(self) -> None:
        retire(self._worker)
        self._worker = None
        if not self._paths:
            return
        self._worker = ThumbnailWorker(self._paths, self.THUMB)
        self._worker.sig_thumbnail.connect(self._on_thumbnail)
        self._worker.start()

    def _on_thumbnail(self, index: int, image: QImage) -> None:
        if index < self.count() and not image.isNull():
            self.item(index).setIcon(QIcon(QPixmap.fromImage(image)))

    def _on_current_row_changed(self, row: int) -> None:
        if row >= 0:
            self.state.go_to(row)

    def shutdown(self) -> None:
        """Stop the thumbnail thread (call before the application quits)."""
        retire(self._worker)
        self._worker = None

    @property
    def loading(self) -> bool:
        """Whether thumbnails are still being decoded."""
        return self._worker is not None and self._worker.isRunning()
