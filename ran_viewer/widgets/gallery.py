"""A thumbnail gallery of evaluated images: lazily loaded thumbnails, label captions, borders coloured by outcome.

Used by the evaluation view (the images of a confusion cell) and the subset browser. Thumbnails are decoded on a
private thread pool only when the view asks for them (i.e. when they scroll into sight), and cached."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QGuiApplication,
    QImage,
    QImageReader,
    QPainter,
    QPalette,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from ran_viewer.model.eval_state import ROLE_LABELS, ROLES, GalleryItem
from ran_viewer.widgets.common import BASELINE_COLOR, RAN_COLOR

THUMB = 96


BORDER = 4


# Frame colours; the two "wins" use the viewer's model colours (RAN blue, baseline orange).
STATUS_COLORS: dict[str, QColor] = {
    "correct": QColor(46, 157, 79),
    "wrong": QColor(209, 56, 61),
    "ran_wins": QColor(RAN_COLOR),
    "baseline_wins": QColor(BASELINE_COLOR),
    "unknown": QColor(140, 140, 140),
}


STATUS_LABELS: dict[str, str] = {
    "correct": "correct",
    "wrong": "wrong",
    "ran_wins": "RAN right, baseline wrong",
    "baseline_wins": "baseline right, RAN wrong",
}


ItemRole = Qt.ItemDataRole.UserRole + 1


StatusRole = Qt.ItemDataRole.UserRole + 2


_CACHE_SIZE = 3000


def is_dark(palette: QPalette) -> bool:
    """Whether ``palette`` is a dark theme (light text on a dark window)."""
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def outcome_color(ok: bool, palette: QPalette) -> QColor:
    """Text colour for a right (``ok``) or wrong prediction that stays legible on the palette's background."""
    if is_dark(palette):
        return QColor(110, 210, 135) if ok else QColor(255, 120, 120)
    return QColor(30, 130, 60) if ok else QColor(185, 40, 45)


class _LoadSignals(QObject):
    sig_loaded = Signal(str, QImage)


class _ThumbJob(QRunnable):
    def __init__(self, path: str, size: int, signals: _LoadSignals) -> None:
        super().__init__()
        self.path, self.size, self.signals = path, size, signals

    def run(self) -> None:
        reader = QImageReader(self.path)
        reader.setAutoTransform(True)
        src = reader.size()
        if src.isValid() and (src.width() > self.size or src.height() > self.size):
            # Let the decoder downscale (JPEG does it during decoding), so large photos cost little.
            reader.setScaledSize(src.scaled(self.size, self.size, Qt.AspectRatioMode.KeepAspectRatio))
        img = reader.read()
        if not img.isNull() and (img.width() != self.size and img.height() != self.size):
            img = img.scaled(
                self.size, self.size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
        try:
            self.signals.sig_loaded.emit(self.path, img)
        except RuntimeError:  # the gallery was deleted while this thumbnail was loading
            pass


class _ThumbnailCache(QObject):
    """Decodes thumbnails on a private thread pool; ``sig_ready(path)`` says a requested thumbnail is now cached."""

    sig_ready = Signal(str)

    def __init__(self, size: int = THUMB, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._signals = _LoadSignals(self)
        self._signals.sig_loaded.connect(self._on_loaded)
        self._pixmaps: OrderedDict[str, QPixmap | None] = OrderedDict()
        self._pending: set[str] = set()

    def get(self, path: str) -> QPixmap | None:
        """The cached thumbnail, or ``None`` while loading (a load starts on the first call) or if unreadable."""
        if path in self._pixmaps:
            self._pixmaps.move_to_end(path)
            return self._pixmaps[path]
        if path not in self._pending:
            self._pending.add(path)
            self._pool.start(_ThumbJob(path, self.size, self._signals))
        return None

    def failed(self, path: str) -> bool:
        """Whether ``path`` was tried and could not be read."""
        return path in self._pixmaps and self._pixmaps[path] is None

    def loading(self, path: str) -> bool:
        return path in self._pending

    def cancel_pending(self) -> None:
        """Drop thumbnails not started yet (the list they belonged to is gone)."""
        self._pool.clear()
        self._pending.clear()

    def shutdown(self) -> None:
        """Stop loading and wait for the jobs in flight (call before the gallery goes away)."""
        self._pool.clear()
        self._pool.waitForDone(2000)

    def wait(self, msecs: int = 5000) -> bool:
        """Block until all queued thumbnails are decoded (tests and screenshots)."""
        return self._pool.waitForDone(msecs)

    def _on_loaded(self, path: str, image: QImage) -> None:
        self._pending.discard(path)
        self._pixmaps[path] = None if image.isNull() else QPixmap.fromImage(image)
        while len(self._pixmaps) > _CACHE_SIZE:
            self._pixmaps.popitem(last=False)
        self.sig_ready.emit(path)


class _GalleryModel(QAbstractListModel):
    """List model of :class:`GalleryItem` whose decoration is a lazily loaded thumbnail."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = _ThumbnailCache(THUMB, self)
        self.cache.sig_ready.connect(self._on_thumbnail_ready)
        self._items: list[GalleryItem] = []
        self._rows: dict[str, list[int]] = {}
        self.roles: list[str] = list(ROLES)
        self.border_role: str | None = None

    def set_items(self, items: Sequence[GalleryItem], roles: Sequence[str], border_role: str | None = None) -> None:
        """Show ``items``; captions list the predictions of ``roles``; borders follow ``border_role``'s correctness
        (``None``: the combined status of both models)."""
        self.beginResetModel()
        self.cache.cancel_pending()
        self._items = list(items)
        self.roles = [r for r in ROLES if r in roles]
        self.border_role = border_role
        self._rows = {}
        for row, it in enumerate(self._items):
            self._rows.setdefault(it.path, []).append(row)
        self.endResetModel()

    def items(self) -> list[GalleryItem]:
        return list(self._items)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._items)

    def status(self, item: GalleryItem) -> str:
        if self.border_role is None:
            return item.status
        ok = item.correct(self.border_role)
        return "unknown" if ok is None else ("correct" if ok else "wrong")

    def caption(self, item: GalleryItem) -> list[tuple[str, bool | None]]:
        """Caption lines and whether each is a correct (True) / wrong (False) prediction or plain (None)."""
        lines: list[tuple[str, bool | None]] = [(f"true: {item.true_name}", None)]
        for r in self.roles:
            if r in item.preds:
                lines.append((f"{ROLE_LABELS[r]}: {item.pred_name(r)}", item.correct(r)))
        return lines

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return "\n".join(text for text, _ in self.caption(item))
        if role == Qt.ItemDataRole.DecorationRole:
            return self.cache.get(item.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [item.path, f"key: {item.key}", f"true: {item.true_name}"]
            for r in self.roles:
                if r in item.preds:
                    conf = item.confidence.get(r)
                    extra = f" ({100 * conf:.0f}%)" if conf is not None else ""
                    lines.append(f"{ROLE_LABELS[r]}: {item.pred_name(r)}{extra}")
            if self.border_role is None and len(item.preds) == 2:
                lines.append(STATUS_LABELS.get(item.status, item.status))
            return "\n".join(lines)
        if role == ItemRole:
            return item
        if role == StatusRole:
            return self.status(item)
        return None

    def _on_thumbnail_ready(self, path: str) -> None:
        for row in self._rows.get(path, []):
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])


class _GalleryDelegate(QStyledItemDelegate):
    """Paints a thumbnail in a status-coloured frame and the caption lines under it."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._font = QFont(QGuiApplication.font())
        self._font.setPointSizeF(max(7.0, self._font.pointSizeF() * 0.9))
        self._bold = QFont(self._font)
        self._bold.setBold(True)
        self._line = QFontMetrics(self._font).height()

    def cell_size(self) -> QSize:
        return QSize(THUMB + 2 * BORDER + 36, THUMB + 2 * BORDER + 3 * self._line + 10)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        return self.cell_size()

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        model: _GalleryModel = index.model()
        item: GalleryItem | None = index.data(ItemRole)
        if item is None:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        rect = option.rect
        pal = option.palette
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(rect.adjusted(1, 1, -1, -1), pal.highlight().color().lighter(170))
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(rect.adjusted(1, 1, -1, -1), pal.midlight())
        color = STATUS_COLORS.get(index.data(StatusRole), STATUS_COLORS["unknown"])
        frame = QRect(
            rect.x() + (rect.width() - THUMB - 2 * BORDER) // 2, rect.y() + 4, THUMB + 2 * BORDER, THUMB + 2 * BORDER
        )
        painter.fillRect(frame, color)
        inner = frame.adjusted(BORDER, BORDER, -BORDER, -BORDER)
        painter.fillRect(inner, QColor(30, 30, 30))
        pix = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pix, QPixmap) and not pix.isNull():
            x = inner.x() + (inner.width() - pix.width()) // 2
            y = inner.y() + (inner.height() - pix.height()) // 2
            painter.drawPixmap(x, y, pix)
        else:
            painter.setPen(QColor(200, 200, 200))
            painter.setFont(self._font)
            text = "unreadable" if model.cache.failed(item.path) else "loading…"
            painter.drawText(inner, Qt.AlignmentFlag.AlignCenter, text)
        y = frame.bottom() + 4
        for k, (text, ok) in enumerate(model.caption(item)):
            painter.setFont(self._bold if k == 0 else self._font)
            if ok is None:
                painter.setPen(pal.text().color())
            else:
                painter.setPen(outcome_color(ok, pal))
                text = f"{text} {'✓' if ok else '✗'}"
            line = QRect(rect.x() + 2, y, rect.width() - 4, self._line)
            elided = QFontMetrics(painter.font()).elidedText(text, Qt.TextElideMode.ElideRight, line.width())
            painter.drawText(line, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, elided)
            y += self._line
        painter.restore()


class _GalleryListView(QListView):
    """An icon-mode list that says what to do when it is empty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.placeholder = ""

    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        if self.model() is not None and self.model().rowCount() == 0 and self.placeholder:
            p = QPainter(self.viewport())
            p.setPen(self.palette().placeholderText().color())
            p.drawText(
                self.viewport().rect().adjusted(20, 20, -20, -20),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.placeholder,
            )


class QtGalleryWidget(QWidget):
    """Thumbnail gallery of :class:`GalleryItem`; clicking (or pressing Enter on) a thumbnail emits ``sig_open_image``.

    Signals:
        sig_open_image(path): the user picked this image to open in the main view.
    """

    sig_open_image = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = _GalleryModel(self)
        self.delegate = _GalleryDelegate(self)
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.view = _GalleryListView(self)
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setWrapping(True)
        self.view.setSpacing(4)
        self.view.setMouseTracking(True)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(200)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setGridSize(self.delegate.cell_size() + QSize(6, 6))
        self.view.setMinimumHeight(self.delegate.cell_size().height() + 16)
        self.view.setModel(self.model)
        self.view.setItemDelegate(self.delegate)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.clicked.connect(self._on_clicked)
        self.view.activated.connect(self._on_clicked)
        self.view.doubleClicked.connect(self._on_clicked)
        self.view.customContextMenuRequested.connect(self._on_context_menu)
        self._last_emit: tuple[str, float] = ("", 0.0)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        top.addWidget(self.legend)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)

    def set_items(
        self, items: Sequence[GalleryItem], roles: Sequence[str], title: str = "", border_role: str | None = None
    ) -> None:
        """Show ``items`` with a title line; see :meth:`_GalleryModel.set_items` for ``roles`` and ``border_role``."""
        self.model.set_items(items, roles, border_role)
        self.title.setText(title)
        self.view.scrollToTop()
        if not items:
            self.set_legend([])
        else:
            self.set_legend(["correct", "wrong"] if border_role is not None or len(roles) < 2 else list(STATUS_LABELS))

    def set_placeholder(self, text: str) -> None:
        """Text shown in the empty gallery."""
        self.view.placeholder = text
        self.view.viewport().update()

    def set_legend(self, statuses: Sequence[str]) -> None:
        parts = [
            f"<span style='color:{STATUS_COLORS[s].name()}; font-size:large'>■</span>&nbsp;{STATUS_LABELS[s]}"
            for s in statuses
        ]
        self.legend.setText("&nbsp;&nbsp;".join(parts))

    def count(self) -> int:
        return self.model.rowCount()

    def item_rect(self, row: int) -> QRect:
        """Where thumbnail ``row`` is drawn, in viewport coordinates (tests click there)."""
        return self.view.visualRect(self.model.index(row))

    def wait_thumbnails(self, msecs: int = 5000) -> bool:
        """Block until the requested thumbnails are decoded; the caller processes events to paint them."""
        return self.model.cache.wait(msecs)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.model.cache.shutdown()
        super().closeEvent(event)

    def _on_clicked(self, index: QModelIndex) -> None:
        item: GalleryItem | None = index.data(ItemRole)
        if item is None:
            return
        now = time.monotonic()
        # A double-click also reports a click (and activation on some styles): open the image once.
        if self._last_emit[0] == item.path and now - self._last_emit[1] < 0.6:
            return
        self._last_emit = (item.path, now)
        self.sig_open_image.emit(item.path)

    def _on_context_menu(self, pos) -> None:
        index = self.view.indexAt(pos)
        item: GalleryItem | None = index.data(ItemRole) if index.isValid() else None
        if item is None:
            return
        menu = QMenu(self)
        menu.addAction("Open in viewer", lambda: self.sig_open_image.emit(item.path))
        menu.addAction("Copy path", lambda: QGuiApplication.clipboard().setText(item.path))
        menu.exec(self.view.viewport().mapToGlobal(pos))
